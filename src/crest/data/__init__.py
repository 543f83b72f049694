"""Data stage: the dataset registry, loaders, label mapping, cleaning and splits."""

from crest.data.registry import Source, load_registry

__all__ = ["Source", "load_registry", "prepare_source", "build_corpus"]


def __getattr__(name: str):
    """prepare_source / build_corpus import pandas: load them on first use, so that `crest`
    commands that never touch a table start fast."""
    if name in ("prepare_source", "build_corpus"):
        from crest.data import prepare

        return getattr(prepare, name)
    raise AttributeError(name)

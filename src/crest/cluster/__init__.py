"""Stage 4: cluster the language means, pick anchor languages, draw the language map
(docs/language_map.md)."""

from crest.cluster.anchors import AnchorRules, agreement, fixed_anchors, pick_anchors, score_languages
from crest.cluster.core import canonical, fit_labels, preprocess, score_k, select_k
from crest.cluster.run import ClusterOptions, choose_anchors, cluster_means, language_map

__all__ = ["AnchorRules", "ClusterOptions", "agreement", "canonical", "choose_anchors", "cluster_means",
           "fit_labels", "fixed_anchors", "language_map", "pick_anchors", "preprocess", "score_k",
           "score_languages", "select_k"]

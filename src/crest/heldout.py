"""The languages held out for evaluation as unseen (docs/train.md, "The evaluation-language rule"):
no arm trains on them unless it opts in, and the cluster stage never picks one as an anchor. Kept
below both stages, so the cluster stage's anchor candidates and the training stage's arms read one
definition."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from crest.schema import ConfigError

DEFAULT_EVAL_GROUPS = ("unseen_hrl", "ood_lrl")
"""Groups of languages.groups whose languages are evaluated as unseen (when train.eval_languages is null)."""


def evaluation_languages(spec: Iterable[str] | None, groups: Mapping[str, list[str]], table: Mapping[str, Any],
                         where: str = "train.eval_languages") -> list[str]:
    """The languages evaluated as unseen: `spec` (group names and codes), or for None the groups
    DEFAULT_EVAL_GROUPS the config defines."""
    if spec is None:
        return list(dict.fromkeys(c for g in DEFAULT_EVAL_GROUPS for c in groups.get(g, [])))
    codes: list[str] = []
    for item in spec:
        if item in groups:
            codes.extend(groups[item])
        elif item in table:
            codes.append(item)
        else:
            raise ConfigError(f"{where}: {item!r} is neither a group of languages.groups "
                              f"({', '.join(groups) or 'none'}) nor a language code")
    return list(dict.fromkeys(codes))


def config_evaluation_languages(config: Mapping[str, Any], table: Mapping[str, Any]) -> list[str]:
    """evaluation_languages of a run config (train.eval_languages)."""
    return evaluation_languages(config.get("train", {}).get("eval_languages"), config["languages"]["groups"], table)


def trainable_candidates(config: Mapping[str, Any], table: Mapping[str, Any],
                         candidates: Iterable[str] | None) -> list[str]:
    """Anchor candidates for the cluster stage: `candidates` (None = every table language) minus
    the evaluation languages, so computed anchors never name a language evaluated as unseen."""
    evaluation = set(config_evaluation_languages(config, table))
    return [c for c in (table if candidates is None else candidates) if c not in evaluation]

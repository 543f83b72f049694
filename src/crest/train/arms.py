"""Experiment arms: which languages each arm trains on.

An arm's `languages` (train.schema.yaml) is resolved here, once at DAG-build time (where the
anchors are not known yet: `None`, crest.train.plan) and again by `crest train dataset` with the
anchors file read.
The random arm's draw is a pure function of (translated languages, count, seed), so it is the
same at both times and on every machine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crest.languages import check_codes
from crest.schema import ConfigError

ANCHORS = "anchors"
ALL = "all"


@dataclass
class ArmContext:
    """What arm specs are resolved against."""

    groups: Mapping[str, list[str]]
    translated: list[str]
    """Languages the corpus is translated into (the source language included): the `all` arm and
    the pool random arms draw from."""
    table: Mapping[str, Any]
    methods: list[str] = field(default_factory=list)
    """cluster.methods; the first is the primary one (`languages: anchors`)."""
    anchors: Mapping[str, list[str]] | None = None
    """Anchor codes per cluster method, once known (None at DAG-build time)."""


def anchor_method(spec: Any, methods: list[str]) -> str | None:
    """The cluster method an arm's languages come from, or None if they do not depend on anchors."""
    if spec == ANCHORS:
        if not methods:
            raise ConfigError("languages: anchors needs cluster.methods (the cluster stage)")
        return methods[0]
    if isinstance(spec, dict) and ANCHORS in spec:
        return spec[ANCHORS]
    return None


def anchor_methods(name: str, arms: Mapping[str, Any], methods: list[str]) -> list[str]:
    """Cluster methods whose anchors decide the arm's languages, directly or through the arm a
    random arm matches in size."""
    seen = []
    while name in arms and name not in seen:
        seen.append(name)
        spec = arms[name]["languages"]
        method = anchor_method(spec, methods)
        if method is not None:
            return [method]
        name = spec.get("random") if isinstance(spec, dict) else None
    return []


def random_draw(pool: list[str], count: int, seed: int) -> list[str]:
    """`count` languages of `pool` drawn without replacement, seeded, in pool order."""
    if count > len(pool):
        raise ConfigError(f"cannot draw {count} random languages from {len(pool)} translated ones")
    picked = set(np.random.default_rng(seed).choice(len(pool), size=count, replace=False).tolist())
    return [code for i, code in enumerate(pool) if i in picked]


def arm_languages(name: str, arms: Mapping[str, Any], ctx: ArmContext, _seen: tuple[str, ...] = ()) -> list[str] | None:
    """The arm's language codes, or None while they depend on anchors not computed yet.
    Raises ConfigError naming `train.arms.<name>.languages` for anything wrong."""
    where = f"train.arms.{name}.languages"
    if name not in arms:
        raise ConfigError(f"{where}: no arm named {name!r} (arms: {', '.join(arms)})")
    if name in _seen:
        raise ConfigError(f"{where}: arms refer to each other in a cycle ({' -> '.join((*_seen, name))})")
    spec = arms[name]["languages"]
    method = anchor_method(spec, ctx.methods)
    if method is not None:
        if ctx.methods and method not in ctx.methods:
            raise ConfigError(f"{where}: unknown cluster method {method!r} (cluster.methods: {', '.join(ctx.methods)})")
        if ctx.anchors is None:
            return None
        if method not in ctx.anchors:
            raise ConfigError(f"{where}: no anchors file given for cluster method {method!r}")
        codes = list(dict.fromkeys(ctx.anchors[method]))
        _check(codes, ctx, f"{where} (anchors of {method})", translated=False)
        if isinstance(spec, dict) and spec.get("untranslated") == "skip":
            codes = [c for c in codes if c in ctx.translated]
        _check(codes, ctx, f"{where} (anchors of {method})")
    elif spec == ALL:
        codes = list(ctx.translated)
    elif isinstance(spec, dict):  # {random: N | ARM, seed, exclude}
        count = spec["random"]
        if isinstance(count, str):
            other = arm_languages(count, arms, ctx, (*_seen, name))
            if other is None:
                return None
            count = len(other)
        exclude = spec.get("exclude", [])
        _check(exclude, ctx, f"{where}.exclude", translated=False)
        pool = [c for c in ctx.translated if c not in exclude]
        try:
            codes = random_draw(pool, count, spec.get("seed", 0))
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from e
    else:
        codes = []
        for i, item in enumerate([spec] if isinstance(spec, str) else spec):
            if item in ctx.groups and item in ctx.table:
                raise ConfigError(f"{where}: {item!r} is both a group name and a language code")
            codes.extend(ctx.groups.get(item, [item]))
        codes = list(dict.fromkeys(codes))
        _check(codes, ctx, where)
    if not codes:
        raise ConfigError(f"{where}: the arm has no languages")
    return codes


def _check(codes: list[str], ctx: ArmContext, where: str, translated: bool = True) -> None:
    try:
        check_codes(codes, ctx.table, where)
    except ConfigError:
        raise
    except ValueError as e:
        raise ConfigError(str(e)) from e
    if translated:
        missing = [c for c in codes if c not in ctx.translated]
        if missing:
            raise ConfigError(f"{where}: {', '.join(missing)} not among the corpus's translated languages "
                              f"({', '.join(ctx.translated)}); add them to translate.languages")


def read_anchors(path: str | Path) -> list[str]:
    """The `language` column of an anchors.tsv, in file order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"anchors file {path} not found")
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    if "language" not in df.columns:
        raise ValueError(f"{path}: no `language` column (columns: {', '.join(df.columns)})")
    return [c for c in df["language"].str.strip() if c]

"""Experiment arms: which languages each arm trains on.

An arm's `languages` (train.schema.yaml) is resolved here, once at DAG-build time (where the
anchors are not known yet: `None`, crest.train.plan) and again by `crest train dataset` with the
anchors file read. Random draws are pure functions of (pool, tiers wanted, seed), so DAG-build
time and job time agree on every machine.

Two rules hold for every arm (docs/train.md):
- **Evaluation languages never train.** Languages a model is evaluated on as unseen
  (`train.eval_languages`, by default languages.groups.unseen_hrl + ood_lrl) are left out of the
  `all` arm, random pools and anchor candidates (crest.heldout); an explicit list or an anchors file naming one
  fails, naming the arm and the languages, unless the arm opts in (`allow_eval_languages`: then
  those languages are `seen` for it).
- **Random arms are a control**: `{random: ARM}` draws as many languages per resource tier as
  ARM has (English kept when ARM has it), and per translation backend too when the run mixes
  backends (an Apertium language for an Apertium one, a gloss for a gloss: arms then differ in
  languages only, not in how their text was translated), and `draws: N` expands one config entry into N arms
  `NAME_0..NAME_{N-1}`, each with its own seed and languages.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crest.languages import TIERS, check_codes
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
    evaluation: frozenset[str] = frozenset()
    """Languages some model is evaluated on as unseen: no arm trains on them unless it opts in."""
    source: str = "en"
    """The corpus's source language: a tier-matched random draw keeps it when the arm it matches has it."""
    backends: Mapping[str, str] = field(default_factory=dict)
    """Translation backend per translated language (translate.backends; the source language none):
    a tier-matched random draw matches these too when they are not all one."""


def expand_arms(arms: Mapping[str, Any]) -> dict[str, Any]:
    """One config entry with `languages: {random: ..., draws: N}` becomes arms NAME_0..NAME_{N-1}
    (seed + i each, family NAME, draw i), and so does a label-shuffled entry with `shuffle_draws: N`
    (permutation i each); every other arm is kept as it is. Idempotent."""
    out: dict[str, Any] = {}
    for name, spec in arms.items():
        langs = spec["languages"]
        random = isinstance(langs, dict) and "random" in langs and "draws" in langs
        if not (random or spec.get("shuffle_draws")):
            out[name] = spec
            continue
        if not random and not spec.get("shuffle_labels"):
            raise ConfigError(f"train.arms.{name}.shuffle_draws: only a label-shuffled arm (shuffle_labels: true) "
                              "has permutations to draw")
        key = "languages.draws" if random else "shuffle_draws"
        for i in range(langs["draws"] if random else spec["shuffle_draws"]):
            arm = f"{name}_{i}"
            if arm in arms:
                raise ConfigError(f"train.arms.{name}.{key}: the draw {arm!r} clashes with the arm of that name")
            draw = {k: v for k, v in copy.deepcopy(dict(spec)).items() if k != "shuffle_draws"}
            if random:
                draw["languages"] = {k: v for k, v in langs.items() if k != "draws"} | {"seed": langs.get("seed", 0) + i}
            draw.setdefault("family", name)
            draw["draw"] = i
            out[arm] = draw
    return out


def arm_family(name: str, spec: Mapping[str, Any]) -> str:
    """The name an arm is reported under: its `family` (random draws share one), `shuffled` for a
    label-shuffled control, else its own name."""
    return spec.get("family") or ("shuffled" if spec.get("shuffle_labels") else name)


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
    random arm matches."""
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
        raise ConfigError(f"cannot draw {count} random languages from {len(pool)} in the pool "
                          f"(translated languages that are not evaluation languages)")
    picked = set(np.random.default_rng(seed).choice(len(pool), size=count, replace=False).tolist())
    return [code for i, code in enumerate(pool) if i in picked]


def tier_counts(codes: Iterable[str], table: Mapping[str, Any]) -> dict[str, int]:
    """Languages per resource tier (every tier named, high first)."""
    codes = list(codes)
    return {t: sum(table[c].tier == t for c in codes) for t in TIERS}


def _stratum_order(key: Any) -> tuple:
    tier, backend = key if isinstance(key, tuple) else (key, "")
    return (TIERS.index(tier) if tier in TIERS else len(TIERS), str(tier), backend)


def _stratum_name(key: Any) -> str:
    return f"{key[0]}-resource {key[1]}" if isinstance(key, tuple) else f"{key}-resource"


def tier_draw(pool: list[str], tiers: Mapping[str, Any], wanted: Mapping[Any, int], seed: int) -> list[str]:
    """wanted[stratum] languages of each stratum drawn from `pool` without replacement, seeded (one
    generator, strata high tier to low, then by backend), in pool order. A stratum is a tier, or a
    (tier, backend) pair when the run mixes translation backends (`strata`). A pure function of
    its arguments."""
    rng = np.random.default_rng(seed)
    picked: set[str] = set()
    for key in sorted(wanted, key=_stratum_order):
        n = wanted.get(key, 0)
        members = [c for c in pool if tiers[c] == key]
        if n > len(members):
            raise ConfigError(f"cannot draw {n} {_stratum_name(key)} languages from the {len(members)} in the pool "
                              f"({', '.join(members) or 'none'})")
        picked.update(members[i] for i in rng.choice(len(members), size=n, replace=False).tolist())
    return [c for c in pool if c in picked]


def strata(codes: Iterable[str], ctx: ArmContext) -> dict[str, Any]:
    """Each language's stratum for a matched random draw: its tier, or (tier, backend) when the
    translated languages do not all share one backend (the source language: backend `source`)."""
    codes = list(codes)
    mixed = len({ctx.backends.get(c, "") for c in ctx.translated if c != ctx.source}) > 1
    if not mixed:
        return {c: ctx.table[c].tier for c in codes}
    return {c: (ctx.table[c].tier, "source" if c == ctx.source else ctx.backends.get(c, "")) for c in codes}


def arm_languages(name: str, arms: Mapping[str, Any], ctx: ArmContext, _seen: tuple[str, ...] = ()) -> list[str] | None:
    """The arm's language codes, or None while they depend on anchors not computed yet.
    Raises ConfigError naming `train.arms.<name>.languages` for anything wrong."""
    where = f"train.arms.{name}.languages"
    if name not in arms:
        raise ConfigError(f"{where}: no arm named {name!r} (arms: {', '.join(arms)})")
    if name in _seen:
        raise ConfigError(f"{where}: arms refer to each other in a cycle ({' -> '.join((*_seen, name))})")
    spec = arms[name]["languages"]
    forbidden = ctx.evaluation - _allowed(name, arms[name], ctx)
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
        _refuse_evaluation(codes, forbidden, name, f"{where} (anchors of {method})")
        if isinstance(spec, dict) and spec.get("untranslated") == "skip":
            codes = [c for c in codes if c in ctx.translated]
        _check(codes, ctx, f"{where} (anchors of {method})")
    elif spec == ALL:
        codes = [c for c in ctx.translated if c not in forbidden]
    elif isinstance(spec, dict):  # {random: N | ARM, seed, exclude, keep, match}
        codes = _random_arm(name, spec, arms, ctx, forbidden, _seen)
        if codes is None:
            return None
    else:
        codes = []
        for item in [spec] if isinstance(spec, str) else spec:
            if item in ctx.groups and item in ctx.table:
                raise ConfigError(f"{where}: {item!r} is both a group name and a language code")
            codes.extend(ctx.groups.get(item, [item]))
        codes = list(dict.fromkeys(codes))
        _check(codes, ctx, where, translated=False)
        _refuse_evaluation(codes, forbidden, name, where)  # before "not translated": the rule that matters
        _check(codes, ctx, where)
    if not codes:
        raise ConfigError(f"{where}: the arm has no languages")
    return codes


def _random_arm(name: str, spec: Mapping[str, Any], arms: Mapping[str, Any], ctx: ArmContext,
                forbidden: set[str], seen: tuple[str, ...]) -> list[str] | None:
    where = f"train.arms.{name}.languages"
    target = spec["random"]
    match = spec.get("match", "tiers" if isinstance(target, str) else "count")
    if match == "tiers" and not isinstance(target, str):
        raise ConfigError(f"{where}.match: tiers needs `random: ARM` (an arm whose tiers to match), not a count")
    exclude = spec.get("exclude", [])
    _check(exclude, ctx, f"{where}.exclude", translated=False)
    pool = [c for c in ctx.translated if c not in forbidden and c not in exclude]
    if isinstance(target, str):
        other = arm_languages(target, arms, ctx, (*seen, name))
        if other is None:
            return None
    try:
        if match == "count":
            return random_draw(pool, len(other) if isinstance(target, str) else target, spec.get("seed", 0))
        keep = [c for c in spec.get("keep", [ctx.source]) if c in other]
        of = strata([*pool, *other], ctx)
        wanted: dict[Any, int] = {}
        for c in other:
            if c not in keep:
                wanted[of[c]] = wanted.get(of[c], 0) + 1
        drawn = tier_draw([c for c in pool if c not in keep], of, wanted, spec.get("seed", 0))
    except ConfigError as e:
        raise ConfigError(f"{where}: {e} (matching arm {target!r}: {', '.join(map(str, other))})"
                          if isinstance(target, str) else f"{where}: {e}") from e
    chosen = set(keep) | set(drawn)
    return [c for c in ctx.translated if c in chosen]


def _allowed(name: str, arm: Mapping[str, Any], ctx: ArmContext) -> set[str]:
    """The evaluation languages an arm opts in to train on (`allow_eval_languages`), checked."""
    allowed = list(arm.get("allow_eval_languages", []))
    where = f"train.arms.{name}.allow_eval_languages"
    _check(allowed, ctx, where, translated=False)
    stray = [c for c in allowed if c not in ctx.evaluation]
    if stray:
        raise ConfigError(f"{where}: {', '.join(stray)} {'is' if len(stray) == 1 else 'are'} not evaluation "
                          f"language(s) (train.eval_languages: {', '.join(sorted(ctx.evaluation)) or 'none'})")
    return set(allowed)


def _refuse_evaluation(codes: list[str], forbidden: set[str], name: str, where: str) -> None:
    bad = [c for c in codes if c in forbidden]
    if bad:
        raise ConfigError(
            f"{where}: arm {name!r} would train on {', '.join(bad)}, evaluated as unseen languages "
            f"(train.eval_languages; by default languages.groups.unseen_hrl and ood_lrl): a training language "
            f"is never reported as unseen. Drop them, or opt in with train.arms.{name}.allow_eval_languages: "
            f"[{', '.join(bad)}] (they are then `seen` for this arm)")


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

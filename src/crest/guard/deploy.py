"""The run's deployable guards (config section `deploy`, rule `deploy`): which trained models are
exported to ONNX under results/{run}/deploy/, at which precision, gated on which rows.

    deploy:
      models:
        - {arm: crest, size: base, seed: 0, precision: int8}
      gate: {benchmarks: [heldout]}

Each entry becomes one `crest guard export-onnx` job (crest.guard.onnx_export): the model's
validation split plus the named benchmarks' evaluation sets are the gate's rows, and a refused
export fails the job with the gate's numbers. The tolerances are the gate's defaults and cannot be
loosened from the config: a deployed file is one that passed the gate as documented.
"""

from __future__ import annotations

from typing import Any

from crest.schema import ConfigError

SECTION = "deploy"


def deploy_dir(run_dir: str, arm: str, size: str, seed: int | str) -> str:
    """Where a model's export lands: beside models/, the same arm/size/seed layout."""
    return f"{run_dir}/deploy/{arm}/{size}/seed{seed}"


def deploy_jobs(config: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per model to export: arm, size, seed, precision (defaults filled by the schema)."""
    return [dict(m) for m in config.get(SECTION, {}).get("models", [])]


def deploy_dirs(run_dir: str, config: dict[str, Any]) -> list[str]:
    """The export directories the run ships (for rule all)."""
    return [deploy_dir(run_dir, m["arm"], m["size"], m["seed"]) for m in deploy_jobs(config)]


def job(config: dict[str, Any], arm: str, size: str, seed: int | str) -> dict[str, Any]:
    """The deploy entry of one model (the rule's wildcards)."""
    for m in deploy_jobs(config):
        if (m["arm"], m["size"], str(m["seed"])) == (arm, size, str(seed)):
            return m
    raise KeyError(f"{arm}/{size}/seed{seed} is not in the deploy section")


def int8_flags(entry: dict[str, Any]) -> str:
    """export-onnx's int8 options for one deploy entry ("" for fp32)."""
    return f"--int8 --int8-method {entry['int8_method']}" if entry["precision"] == "int8" else ""


def check_deploy(config: dict[str, Any], origin: str = "config") -> None:
    """What deploy.schema.yaml cannot say: every model is one the run trains (train.arms x sizes x
    seeds, after random draws are expanded), listed once; gate benchmarks are evaluate.benchmarks."""
    from crest.train.plan import train_jobs

    section = config.get(SECTION) or {}
    trained = set(train_jobs(config)) if config.get("train") else set()
    seen: dict[tuple[str, str, int], int] = {}
    for i, m in enumerate(section.get("models", [])):
        key = (m["arm"], m["size"], m["seed"])
        where = f"{origin}: {SECTION}.models[{i}]"
        if key not in trained:
            arms = sorted({a for a, _, _ in trained})
            raise ConfigError(f"{where}: {m['arm']}/{m['size']}/seed{m['seed']} is not a model this config trains "
                              f"(train arms: {', '.join(arms) or 'none'}; sizes and seeds per train.sizes/seeds "
                              f"or the arm's own)")
        if key in seen:
            raise ConfigError(f"{where}: {m['arm']}/{m['size']}/seed{m['seed']} is already listed at "
                              f"{SECTION}.models[{seen[key]}]")
        seen[key] = i
    benchmarks = (config.get("evaluate") or {}).get("benchmarks") or {}
    for i, name in enumerate(section.get("gate", {}).get("benchmarks", [])):
        if name not in benchmarks:
            raise ConfigError(f"{origin}: {SECTION}.gate.benchmarks[{i}]: {name!r} is not an evaluate.benchmarks "
                              f"entry (known: {', '.join(sorted(benchmarks)) or 'none'})")

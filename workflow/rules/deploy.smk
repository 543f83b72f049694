# Deploy stage (docs/guard.md "Deploy"): the trained models the config's `deploy` section names,
# exported to ONNX (float32, and dynamic int8 with precision: int8) by `crest guard export-onnx`.
#   models/{arm}/{size}/seed{seed}/ + train/{arm}/data.parquet (its validation split)
#   [+ eval/sets/{benchmark}/*.parquet for deploy.gate.benchmarks]
#   -> deploy/{arm}/{size}/seed{seed}/ (model.onnx[, model.int8.onnx], tokenizer, crest_guard.json with
#      the gate's figures, onnx_gate.json, card). A file that fails the quality gate fails the job: the
#      log has the one-line refusal with the numbers, deploy/{arm}/{size}/seed{seed}.refused.json the rest.
from functools import partial

from crest.guard.deploy import deploy_dir, deploy_dirs, deploy_jobs, int8_flags
from crest.guard.deploy import job as deploy_job

DEPLOY = config["deploy"]
DEPLOY_JOBS = deploy_jobs(config)
DEPLOY_HELDOUT = [
    f"{EV.sets_dir}/{s.key}.parquet" for s in EV.sets if s.benchmark in DEPLOY["gate"]["benchmarks"]
]

deploy_outputs = partial(deploy_dirs, RUN, config)  # for rule all


if DEPLOY_JOBS:

    rule deploy:
        input:
            model=f"{RUN}/models/{{arm}}/{{size}}/seed{{seed}}",
            data=f"{RUN}/train/{{arm}}/data.parquet",
            heldout=DEPLOY_HELDOUT,
        output:
            directory(deploy_dir(RUN, "{arm}", "{size}", "{seed}")),
        wildcard_constraints:
            arm="|".join(sorted({m["arm"] for m in DEPLOY_JOBS})),
            size="|".join(sorted({m["size"] for m in DEPLOY_JOBS})),
            seed=r"\d+",
        params:
            int8=lambda wc: int8_flags(deploy_job(config, wc.arm, wc.size, wc.seed)),
            heldout=lambda wc, input: f"--heldout {input.heldout}" if input.heldout else "",
            max_rows=f"--max-rows {DEPLOY['gate']['max_rows']}" if DEPLOY["gate"]["max_rows"] else "",
        log:
            f"{RUN}/logs/deploy/{{arm}}/{{size}}_seed{{seed}}.log",
        conda:
            "../../envs/crest.yaml"
        shell:
            "crest guard export-onnx --model {input.model} --out {output} --data {input.data} --split validation"
            " {params.heldout} {params.max_rows} {params.int8} > {log} 2>&1"

# Fine-tuning stage (docs/train.md): one XLM-R safe/unsafe classifier per arm x size x seed.
#   data:   translated/{corpus}/{lang}.parquet (+ clusters/{method}/anchors.tsv for anchor arms)
#           -> train/{arm}/data.parquet + data.json (rows checked, balanced, validation stratified)
#   models: -> models/{arm}/{size}/seed{seed}/ (safetensors, tokenizer, config, provenance, card,
#           the threshold calibrated on the validation split: train.calibrate);
#           checkpoints + metrics.jsonl in train/{arm}/{size}/seed{seed}/, so a rerun after a kill resumes.
#   frozen-encoder recipe (optim.freeze_encoder): every arm's texts encoded once, in parts side by
#           side -> train_features/{size}/part{i}.npz, read by each job instead of its own encoder pass.
# GPU jobs run under torchrun (one process per GPU, DDP) with a standalone rendezvous: it binds a
# free port, so two jobs on one node never collide. CPU jobs (gpus_per_train_job: 0) run directly.
from functools import partial

from crest.languages import load_languages
from crest.models import resolve_encoder
from crest.paths import resolve
from crest.train.plan import FEATURE_PARTS as TRN_FEATURE_PARTS
from crest.train.plan import (
    anchor_files,
    arm_context,
    dataset_inputs,
    dataset_settings,
    encoder_files,
    feature_files,
    feature_inputs,
    feature_settings,
    feature_sizes,
    job_settings,
    model_dirs,
    train_jobs,
)
from crest.workflow import gpu_run, shell_json

TRN = config["train"]
TRN_TABLE = load_languages(resolve(config["languages"]["table"]))
TRN_JOBS = train_jobs(config)
TRN_DIR = f"{RUN}/train/{{arm}}"
TRN_GPUS = config["resources"]["gpus_per_train_job"]
TRN_TORCHRUN = "torchrun --standalone --nproc_per_node={resources.gpu} --no-python "
TRN_LAUNCH = gpu_run(TRN_GPUS) + TRN_TORCHRUN if TRN_GPUS else ""

train_outputs = partial(model_dirs, RUN, TRN_JOBS)  # for rule all


rule train_dataset:
    input:
        unpack(partial(dataset_inputs, RUN, config, arm_context(config, TRN_TABLE))),
    output:
        data=f"{TRN_DIR}/data.parquet",
        info=f"{TRN_DIR}/data.json",
    wildcard_constraints:
        arm="|".join(sorted({j[0] for j in TRN_JOBS})) or "NONE",
    params:
        settings=lambda wc: shell_json(dataset_settings(config, wc.arm, TRN_TABLE)),
        anchors=lambda wc: " ".join(f"--anchors {m}={p}" for m, p in anchor_files(RUN, config, wc.arm).items()),
        shards=f"{RUN}/translated/{TRN['corpus']}",
        table=config["languages"]["table"],
    log:
        f"{RUN}/logs/train/{{arm}}/dataset.log",
    conda:
        "../../envs/crest.yaml"
    shell:
        "crest train dataset --settings {params.settings} --shards {params.shards} {params.anchors}"
        " --languages {params.table} --out {output.data} --info {output.info} > {log} 2>&1"


rule train_features:
    input:
        data=partial(feature_inputs, RUN, TRN_JOBS),
        encoder=partial(encoder_files, RUN, config["models"].get("encoders", {})),
    output:
        f"{RUN}/train_features/{{size}}/part{{part}}.npz",
    wildcard_constraints:
        size="|".join(feature_sizes(TRN_JOBS, config)) or "NONE",
        part=r"\d+",
    params:
        settings=lambda wc: shell_json(feature_settings(config, wc.size)),
        encoder=lambda wc: resolve_encoder(config["models"]["encoders"][wc.size], RUN),
    threads: TRN["threads"]
    priority: 10  # every training job waits for all parts
    log:
        f"{RUN}/logs/train/features/{{size}}_part{{part}}.log",
    conda:
        "../../envs/crest.yaml"
    shell:
        "crest train features --encoder {params.encoder:q} --settings {params.settings} --part {wildcards.part}"
        " --parts %d --threads {threads} --out {output} {input.data} > {log} 2>&1" % TRN_FEATURE_PARTS


rule train_model:
    input:
        data=f"{TRN_DIR}/data.parquet",
        info=f"{TRN_DIR}/data.json",
        encoder=partial(encoder_files, RUN, config["models"].get("encoders", {})),
        features=partial(feature_files, RUN, TRN_JOBS, config),
    output:
        directory(f"{RUN}/models/{{arm}}/{{size}}/seed{{seed}}"),
    wildcard_constraints:
        arm="|".join(sorted({j[0] for j in TRN_JOBS})) or "NONE",
        size="|".join(sorted({j[1] for j in TRN_JOBS})) or "NONE",
        seed=r"\d+",
    params:
        settings=lambda wc: shell_json(job_settings(config, wc.arm, wc.size, int(wc.seed))),
        encoder=lambda wc: resolve_encoder(config["models"]["encoders"][wc.size], RUN),
        state=f"{TRN_DIR}/{{size}}/seed{{seed}}",
        features=lambda wc, input: " ".join(f"--features {p}" for p in input.features),
    threads: TRN["threads"]
    resources:
        gpu=TRN_GPUS,
    log:
        f"{RUN}/logs/train/{{arm}}/{{size}}_seed{{seed}}.log",
    conda:
        "../../envs/crest.yaml"
    shell:
        TRN_LAUNCH + "crest train run --data {input.data} --info {input.info} --encoder {params.encoder:q}"
        " --settings {params.settings} --threads {threads} --state-dir {params.state} --out {output}"
        " {params.features} > {log} 2>&1"

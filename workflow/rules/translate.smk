# Translation stage: one job per (corpus, language), backend per language (translate.backends):
# NLLB-200 through CTranslate2, Apertium or FreeDict glosses (src/crest/translate/backends.py).
#   model:  [build_tiny_translator] -> convert_translator (CTranslate2, quantized; also the fallback)
#   assets: debian_assets: pinned .debs downloaded, sha256-checked, unpacked (when a language needs them)
#   rows:   data/corpora/{corpus}.parquet -> translated/{corpus}/source/rows.parquet (max_rows sample)
#   shards: translate_shard (raw, resumable) -> qc_shard ({lang}.parquet + .qc.json); the source
#           language's shard is the rows themselves (source_shard); qc_summary.tsv per corpus.
import os
import shlex
import sys
from functools import partial

from crest.languages import load_languages
from crest.models import BUILT_TRANSLATORS, translator_dir
from crest.paths import resolve
from crest.translate.backends import STATUS_FILE, backend_of, needs_assets, shard_settings
from crest.translate.plan import (
    converted_dir,
    decode_settings,
    resolve_languages,
    stage_outputs,
)
from crest.workflow import gpu_run, shell_json

TRANSLATE = config["translate"]
TR_CORPORA = TRANSLATE["corpora"]
TR_SOURCE = TRANSLATE["source_lang"]
TR_LANGS, _tr_skipped = resolve_languages(
    TRANSLATE, config["languages"]["groups"], load_languages(resolve(config["languages"]["table"]))
)
TR_TARGETS = [lang for lang in TR_LANGS if lang != TR_SOURCE]
if TR_CORPORA and _tr_skipped:
    print(
        f"translate: skipping {len(_tr_skipped)} language(s) without an NLLB-200 code: "
        + ", ".join(code for code, _ in _tr_skipped),
        file=sys.stderr,
    )
TR_MODEL = config.get("models", {}).get("translator") or "none"
TR_BUILT = TR_MODEL in BUILT_TRANSLATORS
TR_HF_DIR = str(translator_dir(RUN, TR_MODEL))
TR_CT2_DIR = str(converted_dir(RUN, TR_MODEL, TRANSLATE["quantization"]))
TR_LANG_TABLE = config["languages"]["table"]
TR_DIR = f"{RUN}/translated/{{corpus}}"
# GPU jobs take their GPUs through `crest gpu-run` (GPU slots, src/crest/gpu_slots.py); a param, so
# the count is written in (no placeholder is filled in a param).
TR_GPU_RUN = gpu_run(TRANSLATE["gpus"], TRANSLATE["gpus"])
translate_outputs = partial(stage_outputs, RUN, TR_CORPORA, TR_LANGS)  # for rule all
TR_ASSETS = str(resolve(TRANSLATE["assets"]))  # a repository file; the cache is relative to the workdir
TR_ASSET_STATUS = f"{TRANSLATE['asset_cache']}/{STATUS_FILE}"
TR_NEEDS_ASSETS = bool(TR_CORPORA) and needs_assets(TRANSLATE, TR_LANGS)
TR_SHARD_SETTINGS = {
    **decode_settings(TRANSLATE),
    **{k: TRANSLATE[k] for k in ("source_lang", "chunk_rows", "device", "device_index", "compute_type", "inter_threads")},
}


if TR_NEEDS_ASSETS:

    # Never fails for want of apt-get or a download (recorded in the status file: the shard jobs
    # fall back to models.translator and say so); a sha256 mismatch fails.
    rule debian_assets:
        input:
            TR_ASSETS,
        output:
            TR_ASSET_STATUS,
        params:
            root=lambda wildcards, output: os.path.dirname(output[0]),
        resources:
            mem_mb=2000,
            runtime=30,
        log:
            f"{RUN}/logs/translate/debian_assets.log",
        conda:
            "../../envs/crest.yaml"
        shell:
            "crest translate assets --pins {input} --root {params.root} --fallback > {log} 2>&1"


if TR_BUILT:

    rule build_tiny_translator:
        output:
            directory(TR_HF_DIR),
        resources:
            mem_mb=4000,
            runtime=15,
        log:
            f"{RUN}/logs/translate/build_{TR_MODEL}.log",
        conda:
            "../../envs/crest.yaml"
        shell:
            "crest translate build-tiny --out {output} > {log} 2>&1"


rule convert_translator:
    input:
        [TR_HF_DIR] if TR_BUILT else [],
    output:
        directory(TR_CT2_DIR),
    params:
        model=shlex.quote(TR_MODEL),
        quantization=TRANSLATE["quantization"],
    resources:
        mem_mb=32000,
        runtime=60,
    log:
        f"{RUN}/logs/translate/convert.log",
    conda:
        "../../envs/crest.yaml"
    shell:
        "crest translate convert --model {params.model}" + (" --source {input}" if TR_BUILT else "") + (
            " --out {output} --quantization {params.quantization} > {log} 2>&1"
        )


rule translate_rows:
    input:
        f"{RUN}/data/corpora/{{corpus}}.parquet",
    output:
        rows=f"{TR_DIR}/source/rows.parquet",
        stats=f"{TR_DIR}/source/rows.json",
    params:
        max_rows=f"--max-rows {TRANSLATE['max_rows']}" if TRANSLATE["max_rows"] else "",
        seed=TRANSLATE["seed"],
        source=TR_SOURCE,
    resources:
        mem_mb=4000,
        runtime=15,
    log:
        f"{RUN}/logs/translate/{{corpus}}/rows.log",
    conda:
        "../../envs/crest.yaml"
    shell:
        "crest translate rows --corpus {input} --out {output.rows} --source-lang {params.source}"
        " {params.max_rows} --seed {params.seed} > {log} 2>&1"


rule source_shard:
    input:
        f"{TR_DIR}/source/rows.parquet",
    output:
        shard=f"{TR_DIR}/{TR_SOURCE}.parquet",
        qc=f"{TR_DIR}/{TR_SOURCE}.qc.json",
    params:
        lang=TR_SOURCE,
    resources:
        mem_mb=4000,
        runtime=15,
    log:
        f"{RUN}/logs/translate/{{corpus}}/{TR_SOURCE}.log",
    conda:
        "../../envs/crest.yaml"
    shell:
        "crest translate source --rows {input} --lang {params.lang} --corpus {wildcards.corpus}"
        " --out {output.shard} --qc {output.qc} > {log} 2>&1"


rule translate_shard:
    input:
        rows=f"{TR_DIR}/source/rows.parquet",
        model=TR_CT2_DIR,
        assets=lambda wc: [TR_ASSET_STATUS] if backend_of(TRANSLATE, wc.lang) != "ctranslate2" else [],
    output:
        f"{TR_DIR}/raw/{{lang}}.parquet",
    wildcard_constraints:
        lang="|".join(TR_TARGETS) or "NONE",
    params:
        gpu_run=TR_GPU_RUN,
        settings=lambda wc: shell_json(shard_settings(TRANSLATE, wc.lang, TR_SHARD_SETTINGS, TR_ASSETS)),
        table=TR_LANG_TABLE,
    threads: TRANSLATE["threads"]
    resources:
        gpu=TRANSLATE["gpus"],
        mem_mb=16000,
        runtime=480,
    log:
        f"{RUN}/logs/translate/{{corpus}}/{{lang}}.log",
    conda:
        "../../envs/crest.yaml"
    shell:
        "{params.gpu_run}crest translate shard --rows {input.rows} --model-dir {input.model} --lang {wildcards.lang}"
        " --corpus {wildcards.corpus} --out {output} --threads {threads} --languages {params.table}"
        " --settings {params.settings} > {log} 2>&1"


rule qc_shard:
    input:
        f"{TR_DIR}/raw/{{lang}}.parquet",
    output:
        shard=f"{TR_DIR}/{{lang}}.parquet",
        qc=f"{TR_DIR}/{{lang}}.qc.json",
        table=f"{TR_DIR}/qc/{{lang}}.parquet",
    wildcard_constraints:
        lang="|".join(TR_TARGETS) or "NONE",
    params:
        settings=shell_json(TRANSLATE["qc"]),
        table=TR_LANG_TABLE,
    resources:
        mem_mb=8000,
        runtime=30,
    log:
        f"{RUN}/logs/translate/{{corpus}}/qc_{{lang}}.log",
    conda:
        "../../envs/crest.yaml"
    shell:
        "crest translate qc --raw {input} --out {output.shard} --qc {output.qc} --table {output.table}"
        " --languages {params.table} --settings {params.settings} > {log} 2>&1"


rule translate_summary:
    input:
        expand(f"{TR_DIR}/{{lang}}.qc.json", lang=TR_LANGS, allow_missing=True),
    output:
        f"{TR_DIR}/qc_summary.tsv",
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        f"{RUN}/logs/translate/{{corpus}}/summary.log",
    conda:
        "../../envs/crest.yaml"
    shell:
        "crest translate summary --out {output} {input} > {log} 2>&1"

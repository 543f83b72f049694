# Cluster stage (docs/language_map.md): language means -> clusters, anchors, figures, one directory
# per method under clusters/; the first of cluster.methods is the primary one (its anchors.tsv is
# the crest arm's training languages: crest.cluster.config.anchors_path). On when embed is.
#   language_map:    map.parquet, 2-D PCA + UMAP coordinates (method-independent, computed once)
#   cluster_method:  {method}/clusters.tsv, k_selection.tsv (empty for hdbscan), stability.json, cluster.json
#   anchors:         {method}/anchors.tsv, anchors.json, agreement.md
#   cluster_figures: {method}/figures/{map_pca,map_umap,dendrogram}.{png,pdf}
#   k_curve_figure:  {method}/figures/k_curve.{png,pdf} (kmeans, ward)
#   typology_map:    typology/ (cluster.typology): URIEL vectors of the same languages, the primary
#                    method's k; then anchors as for a method (anchors rule, method=typology)
#   typology_figures: typology/figures/{map_pca,dendrogram,embedding_map}.{png,pdf}
#   map_agreement:   agreement.md/.json: embedding vs typology map (ARI, NMI, anchors), computed vs fixed
import os
import shlex

from crest.cluster.config import (
    TYPOLOGY,
    TYPOLOGY_FIGURES,
    anchor_candidates,
    cluster_methods,
    cluster_targets,
    fixed_anchor_list,
    map_figures,
    typology_enabled,
)
from crest.languages import load_languages
from crest.paths import resolve
from crest.workflow import shell_json

CLUSTER = config["cluster"]
CL_DIR = f"{RUN}/clusters"
CL_METHODS = cluster_methods(config)
CL_OPTS = shell_json({k: v for k, v in CLUSTER.items() if k not in ("anchors", "typology")})
TY_ON = typology_enabled(config)
TY_OPTS = shell_json({k: v for k, v in CLUSTER.items() if k != "anchors"})
TY_DIR = f"{CL_DIR}/{TYPOLOGY}"
if EMBED_ON:
    CL_FIXED, CL_FIXED_NAME = fixed_anchor_list(config)
    CL_CANDIDATES = anchor_candidates(config, load_languages(resolve(config["languages"]["table"])))
CL_LABEL = shlex.quote(
    f"{EMBED['corpus']}, {os.path.basename(config.get('models', {}).get('encoders', {}).get(EMBED['encoder'], EMBED['encoder']))}: "
)
cluster_outputs = lambda: cluster_targets(config, RUN)


wildcard_constraints:
    method="|".join(CL_METHODS) or "NONE",


if EMBED_ON:

    rule language_map:
        input:
            EMB_MEANS,
        output:
            coords=f"{CL_DIR}/map.parquet",
            meta=f"{CL_DIR}/map.json",
        params:
            opts=CL_OPTS,
        log:
            f"{RUN}/logs/cluster/map.log",
        resources:
            mem_mb=4000,
            runtime=30,
        conda:
            "../../envs/crest.yaml"
        shell:
            "crest cluster map --means {input} --out {output.coords} --options {params.opts} > {log} 2>&1"

    rule cluster_method:
        input:
            EMB_MEANS,
        output:
            clusters=f"{CL_DIR}/{{method}}/clusters.tsv",
            summary=f"{CL_DIR}/{{method}}/cluster.json",
            stability=f"{CL_DIR}/{{method}}/stability.json",
            scores=f"{CL_DIR}/{{method}}/k_selection.tsv",
        params:
            out=lambda wc, output: os.path.dirname(output.clusters),
            opts=CL_OPTS,
        log:
            f"{RUN}/logs/cluster/{{method}}.log",
        resources:
            mem_mb=4000,
            runtime=60,
        conda:
            "../../envs/crest.yaml"
        shell:
            "crest cluster run --means {input} --out-dir {params.out} --method {wildcards.method}"
            " --options {params.opts} > {log} 2>&1"

    rule anchors:
        input:
            f"{CL_DIR}/{{method}}/clusters.tsv",
        wildcard_constraints:
            method="|".join(CL_METHODS + ([TYPOLOGY] if TY_ON else [])),
        output:
            anchors=f"{CL_DIR}/{{method}}/anchors.tsv",
            report=f"{CL_DIR}/{{method}}/anchors.json",
            agreement=f"{CL_DIR}/{{method}}/agreement.md",
        params:
            out=lambda wc, output: os.path.dirname(output.anchors),
            opts=shell_json(CLUSTER["anchors"]),
            fixed=f"--fixed {' '.join(CL_FIXED)} --fixed-name {CL_FIXED_NAME}" if CL_FIXED else "",
            candidates=f"--candidates {' '.join(CL_CANDIDATES)}" if CL_CANDIDATES is not None else "",
        log:
            f"{RUN}/logs/cluster/{{method}}_anchors.log",
        resources:
            mem_mb=2000,
            runtime=10,
        conda:
            "../../envs/crest.yaml"
        shell:
            "crest cluster anchors --clusters {input} --out-dir {params.out} --options {params.opts}"
            " {params.fixed} {params.candidates} > {log} 2>&1"

    rule cluster_figures:
        input:
            means=EMB_MEANS,
            coords=f"{CL_DIR}/map.parquet",
            clusters=f"{CL_DIR}/{{method}}/clusters.tsv",
            summary=f"{CL_DIR}/{{method}}/cluster.json",
            anchors=f"{CL_DIR}/{{method}}/anchors.tsv",
        output:
            [f"{CL_DIR}/{{method}}/figures/{name}.{ext}" for name in map_figures(config) for ext in ("png", "pdf")],
        params:
            out=lambda wc, input: os.path.dirname(input.clusters),
            opts=CL_OPTS,
            label=CL_LABEL,
        log:
            f"{RUN}/logs/cluster/{{method}}_figures.log",
        resources:
            mem_mb=2000,
            runtime=10,
        conda:
            "../../envs/crest.yaml"
        shell:
            "crest cluster figures --what maps --method-dir {params.out} --map {input.coords} --means {input.means}"
            " --options {params.opts} --label {params.label} > {log} 2>&1"

    rule k_curve_figure:
        input:
            summary=f"{CL_DIR}/{{method}}/cluster.json",
            scores=f"{CL_DIR}/{{method}}/k_selection.tsv",
        output:
            png=f"{CL_DIR}/{{method}}/figures/k_curve.png",
            pdf=f"{CL_DIR}/{{method}}/figures/k_curve.pdf",
        wildcard_constraints:
            method="kmeans|ward",
        params:
            out=lambda wc, input: os.path.dirname(input.summary),
            label=CL_LABEL,
        log:
            f"{RUN}/logs/cluster/{{method}}_k_curve.log",
        resources:
            mem_mb=2000,
            runtime=5,
        conda:
            "../../envs/crest.yaml"
        shell:
            "crest cluster figures --what k_curve --method-dir {params.out} --label {params.label} > {log} 2>&1"


if EMBED_ON and TY_ON:

    rule typology_map:
        input:
            means=EMB_MEANS,
            reference=f"{CL_DIR}/{CL_METHODS[0]}/cluster.json",
        output:
            clusters=f"{TY_DIR}/clusters.tsv",
            summary=f"{TY_DIR}/cluster.json",
            vectors=f"{TY_DIR}/vectors.parquet",
            sets=f"{TY_DIR}/feature_sets.tsv",
            coverage=f"{TY_DIR}/coverage.tsv",
            report=f"{TY_DIR}/typology.json",
        params:
            reference=lambda wc, input: os.path.dirname(input.reference),
            out=lambda wc, output: os.path.dirname(output.clusters),
            opts=TY_OPTS,
        log:
            f"{RUN}/logs/cluster/typology.log",
        resources:
            mem_mb=4000,
            runtime=15,
        conda:
            "../../envs/crest.yaml"
        shell:
            "crest cluster typology --means {input.means} --reference-dir {params.reference} --out-dir {params.out}"
            " --options {params.opts} > {log} 2>&1"

    rule typology_figures:
        input:
            clusters=f"{TY_DIR}/clusters.tsv",
            summary=f"{TY_DIR}/cluster.json",
            vectors=f"{TY_DIR}/vectors.parquet",
            anchors=f"{TY_DIR}/anchors.tsv",
            coords=f"{CL_DIR}/map.parquet",
        output:
            [f"{TY_DIR}/figures/{name}.{ext}" for name in TYPOLOGY_FIGURES for ext in ("png", "pdf")],
            coords=f"{TY_DIR}/map.parquet",
        params:
            out=lambda wc, input: os.path.dirname(input.clusters),
            opts=CL_OPTS,
            label=CL_LABEL,
        log:
            f"{RUN}/logs/cluster/typology_figures.log",
        resources:
            mem_mb=2000,
            runtime=10,
        conda:
            "../../envs/crest.yaml"
        shell:
            "crest cluster figures --what typology --method-dir {params.out} --map {input.coords}"
            " --options {params.opts} --label {params.label} > {log} 2>&1"

    rule map_agreement:
        input:
            clusters=f"{CL_DIR}/{CL_METHODS[0]}/clusters.tsv",
            anchors=f"{CL_DIR}/{CL_METHODS[0]}/anchors.tsv",
            report=f"{CL_DIR}/{CL_METHODS[0]}/anchors.json",
            sets=f"{TY_DIR}/feature_sets.tsv",
            typology=f"{TY_DIR}/typology.json",
            typology_anchors=f"{TY_DIR}/anchors.tsv",
        output:
            md=f"{CL_DIR}/agreement.md",
            json=f"{CL_DIR}/agreement.json",
        params:
            reference=lambda wc, input: os.path.dirname(input.clusters),
            out=lambda wc, input: os.path.dirname(input.sets),
        log:
            f"{RUN}/logs/cluster/agreement.log",
        resources:
            mem_mb=1000,
            runtime=5,
        conda:
            "../../envs/crest.yaml"
        shell:
            "crest cluster agreement --reference-dir {params.reference} --typology-dir {params.out}"
            " --out {output.md} > {log} 2>&1"

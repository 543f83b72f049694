# crest: one DAG from safety corpora to paper tables. Thin on purpose: rules live in
# workflow/rules/, logic in src/crest/. Default config: the offline demo.
#   snakemake --cores all                                  # demo (config/demo.yaml)
#   snakemake --cores all --configfile config/config.yaml  # the paper
# (Loading demo.yaml only when no --configfile is given keeps the two configs from merging.)

if not config:

    configfile: "config/demo.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/translate.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/cluster.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"  # it evaluates what the stages above build
include: "workflow/rules/deploy.smk"  # last: it exports trained models, gated on evaluation sets too


rule all:
    input:
        data_outputs(),
        translate_outputs(),
        embed_outputs(),
        cluster_outputs(),
        train_outputs(),
        evaluate_outputs(),
        deploy_outputs(),
    default_target: True

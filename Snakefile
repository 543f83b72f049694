# crest: one DAG from safety corpora to paper tables. Thin on purpose: rules live in
# workflow/rules/, logic in src/crest/. Default config: the offline demo.
#   snakemake --cores all                                  # demo (config/demo.yaml)
#   snakemake --cores all --configfile config/config.yaml  # the paper
# (Loading demo.yaml only when no --configfile is given keeps the two configs from merging.)

if not config:

    configfile: "config/demo.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"


rule all:
    input:
        data_outputs(),
    default_target: True

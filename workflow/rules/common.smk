# Validation at DAG-build time and the names every rule file reads (RUN, REGISTRY, SOURCES, CORPORA).
# No stage logic here; the helpers rules share (shell_json, gpu_run) are in crest.workflow, imported
# by each rule file that uses them.
from crest.config import load_config, load_run_registry
from crest.hub import setup_run as hub_setup_run
from crest.paths import run_dir
from crest.workflow import put_own_bin_first

put_own_bin_first()  # rules call the `crest` CLI installed beside this Snakemake

config = load_config(config)  # schema + language table + registry checks; fills defaults
# Hub settings into the environment every job inherits; the lock names every repo the run reads.
hub_setup_run(config, workflow.configfiles[-1] if workflow.configfiles else "<config>")
RUN = str(run_dir(config))
REGISTRY = load_run_registry(config)
SOURCES = config["data"]["sources"]
CORPORA = config["data"]["corpora"]


wildcard_constraints:
    source="|".join(SOURCES) or "NONE",
    corpus="|".join(CORPORA) or "NONE",


def data_outputs():
    audit = [f"{RUN}/data/audit/index.html"] if config["data"]["audit"]["enabled"] else []
    return (
        expand(f"{RUN}/data/{{source}}.parquet", source=SOURCES)
        + expand(f"{RUN}/data/corpora/{{corpus}}.parquet", corpus=CORPORA)
        + audit
    )

# Validation at DAG-build time and the helpers rules share. No stage logic here.
from crest.config import load_config, load_run_registry, run_dir
from crest.hub import setup_run as hub_setup_run
from crest.workflow import put_own_bin_first

put_own_bin_first()  # rules call the `crest` CLI installed beside this Snakemake

config = load_config(config)  # schema + language table + registry checks; fills defaults
# Hub settings into the environment every job inherits; the lock names every repo the run reads.
hub_setup_run(config, workflow.configfiles[-1] if workflow.configfiles else "<config>")
RUN = str(run_dir(config))
REGISTRY = load_run_registry(config)
SOURCES = config["data"]["sources"]
CORPORA = config["data"]["corpora"]
# GPU rules declare `resources: gpu=N` and start their shell command with GPU_RUN
# (src/crest/gpu_slots.py): on a workstation it locks N GPUs for the job and sets
# CUDA_VISIBLE_DEVICES (Snakemake sets none for local jobs); in a SLURM job it hands out only the
# job's own GPUs; N=0 hides every GPU.
GPU_RUN = "crest gpu-run --gpus {resources.gpu} -- "


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

# Submitted by tests/slurm/run.sh through profiles/slurm: one job asking for 2 GPUs. On SLURM it
# must be one task holding both GPUs (a training job runs torchrun inside that task), and
# `crest gpu-run` must hand the job both GPUs of its allocation.
from crest.workflow import put_own_bin_first

put_own_bin_first()


rule gpu_probe:
    output:
        "gpu_probe.env",
    resources:
        gpu=2,
        cpus_per_gpu=1,
        mem_mb=500,
        runtime=5,
    shell:
        "crest gpu-run --gpus {resources.gpu} -- env | grep -E '^(SLURM_|CUDA_)' | sort > {output}"

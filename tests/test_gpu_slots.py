"""Workstation GPU slots (`crest gpu-run`): concurrent jobs never share a GPU, and a job's GPUs are
free again when it ends, however it ends. Simulated GPUs: CREST_GPU_DEVICES names the pool."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from itertools import combinations
from pathlib import Path

from crest.gpu_slots import acquire, busy_devices, gpu_pool, try_acquire

# A job: records which GPUs it was given and when it ran, holding them for a while.
JOB = ("import json, os, sys, time; t0 = time.time(); time.sleep(float(sys.argv[2])); "
       "open(sys.argv[1], 'w').write(json.dumps([os.environ['CUDA_VISIBLE_DEVICES'], t0, time.time()]))")


def env_for(tmp_path: Path, devices: str | None = "0,1,2", **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "CUDA_", "CREST_GPU"))}
    env["CREST_GPU_LOCK_DIR"] = str(tmp_path / "locks")
    if devices is not None:
        env["CREST_GPU_DEVICES"] = devices
    env.update(extra)
    return env


def gpu_run(env: dict[str, str], gpus: int, *cmd: str, timeout: float | None = None) -> subprocess.Popen:
    extra = ["--timeout", str(timeout)] if timeout is not None else []
    return subprocess.Popen([sys.executable, "-m", "crest.gpu_slots", "--gpus", str(gpus), *extra, "--", *cmd],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until(predicate, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_concurrent_jobs_never_share_a_gpu(tmp_path: Path) -> None:
    env = env_for(tmp_path, "0,1,2")
    wanted = [1, 2, 1, 1, 2, 1, 1, 3, 1, 2]
    procs = [gpu_run(env, n, sys.executable, "-c", JOB, str(tmp_path / f"job{i}.json"), "0.3")
             for i, n in enumerate(wanted)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    runs = []
    for i, n in enumerate(wanted):
        devices, start, end = json.loads((tmp_path / f"job{i}.json").read_text())
        devices = devices.split(",")
        assert len(devices) == n == len(set(devices)) and set(devices) <= {"0", "1", "2"}
        runs.append((set(devices), start, end))
    overlapping = [(a, b) for a, b in combinations(runs, 2) if a[1] < b[2] and b[1] < a[2]]
    assert overlapping, "no two jobs ran at the same time: the test proved nothing"
    for a, b in overlapping:
        assert not a[0] & b[0], f"GPU shared by concurrent jobs: {a[0]} and {b[0]}"


def test_leases_in_one_process_are_exclusive_all_or_nothing(tmp_path: Path) -> None:
    pool, locks = ["0", "1", "2"], tmp_path / "locks"
    with acquire(2, pool, locks) as held:
        assert held.devices == ["0", "1"]
        assert try_acquire(2, pool, locks) is None  # one free GPU is not two
        assert busy_devices(pool, locks) == ["0", "1"]  # and the failed try held nothing
        with acquire(1, pool, locks) as last:
            assert last.devices == ["2"]
    assert busy_devices(pool, locks) == []


def test_gpus_are_released_when_the_job_is_killed(tmp_path: Path) -> None:
    env = env_for(tmp_path, "0,1")
    locks = tmp_path / "locks"
    job = gpu_run(env, 2, "sleep", "60")
    wait_until(lambda: busy_devices(["0", "1"], locks) == ["0", "1"])
    job.send_signal(signal.SIGKILL)  # the wrapper exec'ed into `sleep`: same pid, no cleanup code runs
    job.wait(timeout=10)
    with acquire(2, ["0", "1"], locks, timeout=5) as lease:
        assert lease.devices == ["0", "1"]


def test_failing_job_keeps_its_exit_status_and_frees_its_gpu(tmp_path: Path) -> None:
    job = gpu_run(env_for(tmp_path, "0"), 1, "sh", "-c", "echo on $CUDA_VISIBLE_DEVICES; exit 3")
    out, _ = job.communicate(timeout=30)
    assert job.returncode == 3 and out.strip() == "on 0"
    assert busy_devices(["0"], tmp_path / "locks") == []


def test_a_job_waits_for_a_busy_gpu_or_times_out(tmp_path: Path) -> None:
    env, locks = env_for(tmp_path, "0"), tmp_path / "locks"
    held = acquire(1, ["0"], locks)
    late = gpu_run(env, 1, "true", timeout=0.5)
    _, err = late.communicate(timeout=30)
    assert late.returncode == 2 and "not free within" in err
    waiting = gpu_run(env, 1, "sh", "-c", "echo got $CUDA_VISIBLE_DEVICES")
    time.sleep(0.7)
    assert waiting.poll() is None  # still waiting
    held.release()
    out, err = waiting.communicate(timeout=30)
    assert waiting.returncode == 0 and out.strip() == "got 0" and "waiting for 1 free GPU" in err


def test_more_gpus_than_the_machine_has_is_an_error(tmp_path: Path) -> None:
    job = gpu_run(env_for(tmp_path, "0,1"), 3, "true")
    _, err = job.communicate(timeout=30)
    assert job.returncode == 2 and "asked for 3 GPUs" in err


def test_a_job_asking_for_no_gpu_sees_none_and_takes_no_lock(tmp_path: Path) -> None:
    job = gpu_run(env_for(tmp_path, "0"), 0, "sh", "-c", 'echo "[$CUDA_VISIBLE_DEVICES]"')
    out, err = job.communicate(timeout=30)
    assert job.returncode == 0 and out.strip() == "[]", err
    assert not (tmp_path / "locks").exists()


def test_in_a_slurm_job_only_its_own_gpus_are_shared_with_locks_of_its_own(tmp_path: Path) -> None:
    # SLURM gave job 42 two GPUs that it numbers 2,3; jobs of a local Snakemake inside it share them.
    env = env_for(tmp_path, None, SLURM_JOB_ID="42", CUDA_VISIBLE_DEVICES="2,3")
    locks = tmp_path / "locks" / "slurm-job-42"
    with acquire(1, ["2", "3"], locks):
        job = gpu_run(env, 1, "sh", "-c", "echo $CUDA_VISIBLE_DEVICES")
        out, err = job.communicate(timeout=30)
    assert job.returncode == 0 and out.strip() == "3", err
    # A SLURM job without GPUs has none to give, whatever nvidia-smi would list.
    assert gpu_pool({"SLURM_JOB_ID": "42"}) == []


def test_no_gpu_on_the_machine_runs_the_command_on_cpu(tmp_path: Path) -> None:
    job = gpu_run(env_for(tmp_path, None, CUDA_VISIBLE_DEVICES=""), 1, "sh", "-c", "echo ran")
    out, err = job.communicate(timeout=30)
    assert job.returncode == 0 and out.strip() == "ran" and "no GPU here" in err


def test_pool_comes_from_crest_devices_then_cuda_visible_devices() -> None:
    assert gpu_pool({"CREST_GPU_DEVICES": "1,3", "CUDA_VISIBLE_DEVICES": "0"}) == ["1", "3"]
    assert gpu_pool({"CUDA_VISIBLE_DEVICES": "GPU-aa,2"}) == ["GPU-aa", "2"]
    assert gpu_pool({"CUDA_VISIBLE_DEVICES": "2,-1,3"}) == ["2"]  # CUDA ignores what follows -1
    assert gpu_pool({"CUDA_VISIBLE_DEVICES": ""}) == []


def test_crest_cli_runs_gpu_run(tmp_path: Path) -> None:
    crest = Path(sys.executable).with_name("crest")
    res = subprocess.run([str(crest), "gpu-run", "--gpus", "2", "--", "sh", "-c", "echo $CUDA_VISIBLE_DEVICES"],
                         env=env_for(tmp_path, "4,5,6"), capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "4,5"

"""GPU slots on a workstation: give each local GPU job its own devices.

Snakemake schedules local jobs by their `gpu` resource but does not tell a job which GPUs to
use (it sets no CUDA_VISIBLE_DEVICES: snakemake#281), so two jobs would both run on GPU 0.
GPU rules therefore run their command through

    crest gpu-run --gpus {resources.gpu} -- CMD ...

which takes an exclusive `flock` on one lock file per GPU (`gpu-<id>.lock` in a lock directory
shared by every job and every user of the machine, `/tmp/crest-gpu-locks` unless
CREST_GPU_LOCK_DIR says otherwise), all-or-nothing, waiting while too few are free; sets
CUDA_VISIBLE_DEVICES to the GPUs it holds; and then *replaces itself* with CMD (exec), the lock
file descriptors staying open in CMD. The kernel drops a flock when the last descriptor holding it
closes, so the GPUs are released exactly when CMD exits, however it ends: success, error,
SIGTERM from Snakemake, SIGKILL, a crash. Nothing is left to clean up, and nothing has to run
after CMD.

Which GPUs are shared: CREST_GPU_DEVICES if set (e.g. `0,1,2`), else the CUDA_VISIBLE_DEVICES
that Snakemake itself was started with, else every GPU `nvidia-smi -L` lists. Inside a SLURM job
(SLURM_JOB_ID set) only the GPUs SLURM gave the job (its CUDA_VISIBLE_DEVICES), with locks of that
job's own (a subdirectory per job id: with device cgroups two jobs on one node may both see their
GPU as "0"): a job of the SLURM executor, which got exactly its GPUs, takes them all at once, and
a local Snakemake inside an interactive allocation shares the allocation's GPUs like a workstation.
A job asking for 0 GPUs gets CUDA_VISIBLE_DEVICES="" (it reserved none, so it uses none); where
there is no GPU, CMD runs unchanged (on CPU).

The profile's `resources: gpu=<number of GPUs>` (profiles/default computes it with
`gpu_pool()`) keeps Snakemake from starting more GPU jobs than there are GPUs, so a job rarely
waits here; the locks are what makes sharing impossible, also across concurrent Snakemake runs.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

LOCK_DIR_ENV = "CREST_GPU_LOCK_DIR"
DEVICES_ENV = "CREST_GPU_DEVICES"
DEFAULT_LOCK_DIR = Path("/tmp/crest-gpu-locks")


def _split_devices(value: str) -> list[str]:
    """CUDA_VISIBLE_DEVICES entries, up to the first negative one (CUDA stops there too)."""
    devices = []
    for entry in (e.strip() for e in value.split(",")):
        if not entry or entry.startswith("-"):
            break
        devices.append(entry)
    return devices


def nvidia_gpu_count() -> int:
    """GPUs the NVIDIA driver reports (`nvidia-smi -L`, else /proc/driver/nvidia/gpus); 0 without."""
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
            return sum(line.startswith("GPU ") for line in out.splitlines())
        except (OSError, subprocess.SubprocessError):
            pass
    proc = Path("/proc/driver/nvidia/gpus")
    return len(list(proc.iterdir())) if proc.is_dir() else 0


def gpu_pool(env: Mapping[str, str] = os.environ) -> list[str]:
    """The GPUs local jobs share, as CUDA_VISIBLE_DEVICES entries (indices or UUIDs)."""
    if env.get(DEVICES_ENV, "").strip():
        return _split_devices(env[DEVICES_ENV])
    if "CUDA_VISIBLE_DEVICES" in env:
        return _split_devices(env["CUDA_VISIBLE_DEVICES"])
    if env.get("SLURM_JOB_ID"):
        return []  # a SLURM job owns only the GPUs SLURM listed in CUDA_VISIBLE_DEVICES: none
    return [str(i) for i in range(nvidia_gpu_count())]


def lock_dir(env: Mapping[str, str] = os.environ) -> Path:
    base = Path(env.get(LOCK_DIR_ENV) or DEFAULT_LOCK_DIR)
    return base / f"slurm-job-{env['SLURM_JOB_ID']}" if env.get("SLURM_JOB_ID") else base


def lock_path(directory: Path, device: str) -> Path:
    return directory / f"gpu-{re.sub(r'[^A-Za-z0-9_.-]', '_', device)}.lock"


def _open_lock(directory: Path, device: str) -> int:
    if not directory.is_dir():
        directory.mkdir(parents=True, exist_ok=True)
        try:  # shared by every user of the machine, like /tmp
            directory.chmod(0o1777)
        except PermissionError:
            pass
    # flock needs no write permission: read-only opens let every user lock a file root created.
    return os.open(lock_path(directory, device), os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)


@dataclass
class GpuLease:
    """GPUs held through open, flock-ed lock files; released by `release()` or when every process
    holding the descriptors has exited."""

    devices: list[str]
    fds: list[int] = field(repr=False)

    def release(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []

    def __enter__(self) -> GpuLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def try_acquire(n: int, pool: Sequence[str], directory: Path) -> GpuLease | None:
    """Lock n free GPUs of the pool (lowest first), all or none."""
    devices, fds = [], []
    for device in pool:
        fd = _open_lock(directory, device)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        devices.append(device)
        fds.append(fd)
        if len(devices) == n:
            return GpuLease(devices, fds)
    for fd in fds:
        os.close(fd)
    return None


def busy_devices(pool: Sequence[str], directory: Path) -> list[str]:
    """The GPUs of the pool whose lock someone holds now."""
    busy = []
    for device in pool:
        lease = try_acquire(1, [device], directory)
        if lease is None:
            busy.append(device)
        else:
            lease.release()
    return busy


def acquire(n: int, pool: Sequence[str], directory: Path, timeout: float | None = None,
            poll: float = 0.5, on_wait: Callable[[list[str]], None] | None = None) -> GpuLease:
    """Wait until n GPUs of the pool are free and lock them. `on_wait(busy)` is called once if
    the first try fails; TimeoutError after `timeout` seconds (None: wait as long as it takes)."""
    if n < 1:
        raise ValueError(f"asked for {n} GPUs")
    if n > len(pool):
        raise ValueError(f"asked for {n} GPUs, but only {len(pool)} are shared here: {','.join(pool) or 'none'}")
    deadline = None if timeout is None else time.monotonic() + timeout
    waited = False
    while (lease := try_acquire(n, pool, directory)) is None:
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"{n} GPU(s) not free within {timeout:g} s "
                               f"(busy: {','.join(busy_devices(pool, directory))}; locks in {directory})")
        if not waited and on_wait is not None:
            on_wait(busy_devices(pool, directory))
        waited = True
        # Jitter: jobs that started together do not retry in lock-step.
        time.sleep(poll * random.uniform(0.5, 1.5))
    return lease


def _note(message: str) -> None:
    print(f"crest gpu-run: {message}", file=sys.stderr, flush=True)


def _exec(cmd: list[str], env: dict[str, str], lease: GpuLease | None = None) -> None:
    if lease is not None:
        for fd in lease.fds:
            os.set_inheritable(fd, True)  # the command holds the GPUs from here on
    try:
        os.execvpe(cmd[0], cmd, env)
    except OSError as e:
        _note(f"cannot run {cmd[0]!r}: {e}")
        sys.exit(127)


def gpu_run(cmd: list[str], gpus: int = 1, timeout: float | None = None,
            env: Mapping[str, str] = os.environ) -> None:
    """Run cmd (exec, never returns) with CUDA_VISIBLE_DEVICES set to `gpus` GPUs of its own."""
    if not cmd:
        raise ValueError("no command given (crest gpu-run --gpus N -- CMD ...)")
    child = dict(env)
    if gpus == 0:
        child["CUDA_VISIBLE_DEVICES"] = ""
        _exec(cmd, child)
    if gpus < 0:
        raise ValueError(f"--gpus must be >= 0, got {gpus}")
    pool = gpu_pool(env)
    if not pool:
        _note(f"no GPU here: running on CPU ({' '.join(cmd)[:80]})")
        _exec(cmd, child)
    directory = lock_dir(env)
    lease = acquire(gpus, pool, directory, timeout=timeout,
                    on_wait=lambda busy: _note(f"waiting for {gpus} free GPU(s); busy: {','.join(busy)}"))
    child["CUDA_VISIBLE_DEVICES"] = ",".join(lease.devices)
    if not env.get(DEVICES_ENV) and "CUDA_VISIBLE_DEVICES" not in env:
        # Indices from nvidia-smi are in PCI bus order; make CUDA number the GPUs the same way.
        child.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    _note(f"CUDA_VISIBLE_DEVICES={child['CUDA_VISIBLE_DEVICES']} (locks in {directory})")
    _exec(cmd, child, lease)


def _gpu_run(args: argparse.Namespace) -> None:
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    try:
        gpu_run(cmd, gpus=args.gpus, timeout=args.timeout)
    except OSError as e:  # TimeoutError, or a lock directory this user cannot write
        raise ValueError(str(e)) from None


def _gpu_status(args: argparse.Namespace) -> None:
    pool, directory = gpu_pool(), lock_dir()
    busy = set(busy_devices(pool, directory))
    print(f"GPUs shared by local jobs: {','.join(pool) or 'none'} (locks in {directory})")
    for device in pool:
        print(f"  {device}: {'busy' if device in busy else 'free'}")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gpu-run", help="run a command on GPUs of its own (workstation GPU slots)",
                       description="Lock GPUs for a command and run it with CUDA_VISIBLE_DEVICES set; "
                                   "they are released when it exits. Usage: crest gpu-run --gpus N -- CMD ...")
    p.add_argument("--gpus", type=int, default=1, help="GPUs the command needs (default 1; 0 hides all GPUs)")
    p.add_argument("--timeout", type=float, default=None,
                   help="give up after this many seconds waiting for free GPUs (default: wait)")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- then the command and its arguments")
    p.set_defaults(func=_gpu_run)
    p = sub.add_parser("gpu-status", help="which of this machine's GPUs local crest jobs hold now")
    p.set_defaults(func=_gpu_status)


def main(argv: list[str] | None = None) -> int:
    """`python -m crest.gpu_slots --gpus N -- CMD`: gpu-run without loading every stage's CLI."""
    parser = argparse.ArgumentParser(prog="crest gpu-run")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["gpu-run", *(argv if argv is not None else sys.argv[1:])])
    try:
        args.func(args)
    except ValueError as e:
        print(f"crest: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

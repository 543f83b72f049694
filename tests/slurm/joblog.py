"""Jobs as Snakemake prints them (a run's output, or `snakemake -n -p`): used by check.py and by
tests/test_gpu_slots_profiles.py."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass
class Job:
    rule: str
    wildcards: dict[str, str]
    resources: dict[str, str]
    shell: str

    @property
    def slurm_comment(self) -> str:
        """The comment snakemake-executor-plugin-slurm gives the job's sbatch call."""
        values = "_".join(self.wildcards.values()).replace("/", "_")
        return f"rule_{self.rule}" + (f"_wildcards_{values}" if values else "")


def _pairs(line: str | None) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in line.split(", ")) if line else {}


def parse_jobs(text: str) -> list[Job]:
    jobs = []
    for block in re.split(r"\n(?=\[[^\n]*\]\n)", text):
        rule = re.search(r"^(?:local)?rule (\w+):$", block, re.M)
        if not rule:
            continue
        fields = dict(re.findall(r"^    (wildcards|resources): (.*)$", block, re.M))
        shell = re.search(r"^Shell command: (.*)$", block, re.M)
        jobs.append(Job(rule.group(1), _pairs(fields.get("wildcards")), _pairs(fields.get("resources")),
                        shell.group(1) if shell else ""))
    return jobs

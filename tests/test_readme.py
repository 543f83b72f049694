"""The README's demo section is a file the run writes (docs/evaluate.md, "The README's demo section"): `crest evaluate readme`
builds it from the run's tables and the arms' data.json, `crest evaluate readme-check` compares it
with what the README has between its markers (exit 1 when they differ; `make demo` ends with it),
`--write` pastes it (`make readme`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crest.cli import main
from crest.evaluate.readme import END, START, ReadmeError, build_section, differences, paste, pasted, table_excerpt
from crest.evaluate.tables import load_table_specs, write_tables
from test_tables import ORDER, metrics  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parents[1]


def _infos(tmp_path: Path) -> list[Path]:
    out = []
    for arm, langs, backends in (("crest", ["en", "hi", "de"], {"en": "source", "hi": "gloss", "de": "gloss"}),
                                 ("random_0", ["en", "ca", "hi"], {"en": "source", "ca": "apertium", "hi": "gloss"})):
        path = tmp_path / "train" / arm / "data.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"arm": arm, "languages": langs, "backends": backends}))
        out.append(path)
    return out


def test_the_section_is_the_runs_tables_and_the_readme_check_fails_on_a_changed_number(metrics, tmp_path: Path,  # noqa: F811 (the fixture)
                                                                                         capsys) -> None:
    tables = tmp_path / "paper" / "tables"
    write_tables(metrics, load_table_specs(REPO / "paper/tables.yaml"), tables, order=ORDER)
    text = build_section(tables, [{"id": "english"}, {"id": "arms", "rows": ["crest-base"]}], _infos(tmp_path),
                         "results/x/paper")
    english = (tables / "english.md").read_text()
    # the table's rows as written by the run, its title in bold, the value line and the marks it uses
    assert "**F1 (unsafe class) on English benchmarks (threshold 0.5)** (`results/x/paper/tables/english.md`)" in text
    assert "| HarmBench | **85.0 ± 7.1** | 82.0 |" in english and "| HarmBench | **85.0 ± 7.1** | 82.0 |" in text
    assert "- F1 (unsafe class) x 100, mean ± sd over seeds (and draws), at the run's threshold" in text
    arms = text.split("**Training arms")[1].split("**Training languages")[0]
    assert "| crest-base |" in arms and "| english-base |" not in arms  # rows: only crest's
    assert "| crest | en hi de | gloss 2, source 1 | |" in text and "| random_0 | en ca hi | apertium 1, gloss 1, source 1 | |" in text
    with pytest.raises(ReadmeError, match="'nope': no table"):
        build_section(tables, [{"id": "nope"}])

    section = tmp_path / "paper" / "readme_tables.md"
    section.write_text(text)
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nprose before\n\n{START.format(path='old')}\nstale\n{END}\n\nprose after\n")
    with pytest.raises(SystemExit) as stale:
        main(["evaluate", "readme-check", "--readme", str(readme), "--section", str(section)])
    assert stale.value.code == 1 and "-stale" in capsys.readouterr().out
    assert main(["evaluate", "readme-check", "--readme", str(readme), "--section", str(section), "--write"]) == 0
    after = readme.read_text()
    assert after.startswith("# x\n\nprose before\n\n<!-- crest:demo-tables:start") and after.endswith(f"{END}\n\nprose after\n")
    assert pasted(after) == text and str(section) in after
    assert main(["evaluate", "readme-check", "--readme", str(readme), "--section", str(section)]) == 0
    # one number changed by hand in the README: the check names the line
    readme.write_text(after.replace("82.0", "83.0", 1))
    with pytest.raises(SystemExit) as changed:
        main(["evaluate", "readme-check", "--readme", str(readme), "--section", str(section)])
    out = capsys.readouterr().out
    assert changed.value.code == 1 and "-| HarmBench | **85.0 ± 7.1** | 83.0 |" in out and "+| HarmBench | **85.0 ± 7.1** | 82.0 |" in out
    readme.write_text("# no markers\n")
    assert main(["evaluate", "readme-check", "--readme", str(readme), "--section", str(section)]) == 2


def test_an_excerpt_keeps_only_the_notes_of_marks_its_rows_use() -> None:
    md = ("### T (threshold 0.5)\n\ncaption\n\n| Model | a |\n| --- | ---: |\n| crest-base | 1.0† |\n| english-base | 2.0‡ |\n\n"
          "- F1 x 100\n- † gloss\n- ‡ partial\n- left out: long note\n")
    assert table_excerpt(md, ["crest"]) == ["**T (threshold 0.5)**", "", "| Model | a |", "| --- | ---: |",
                                             "| crest-base | 1.0† |", "", "- F1 x 100", "- † gloss", ""]
    assert paste("a\n" + START.format(path="p") + "\nold\n" + END + "\n", "new\n", "p") == \
        "a\n" + START.format(path="p") + "\nnew\n" + END + "\n"
    assert differences("a\n" + START + "\nx\n" + END + "\n", "x\n", "R", "S") == []


def test_the_readme_says_what_the_demo_run_wrote() -> None:
    """The README's pasted section is results/demo/paper/readme_tables.md of the last `make demo`
    in this checkout (CI: `make demo` then this test)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    pasted(readme)  # the markers are there, once
    section = REPO / "results/demo/paper/readme_tables.md"
    if not section.is_file():
        pytest.skip(f"no demo run in this checkout ({section.relative_to(REPO)} absent): `make demo` writes it")
    diff = differences(readme, section.read_text(encoding="utf-8"), "README.md", str(section.relative_to(REPO)))
    assert not diff, "README.md's demo section differs from the demo run (make readme pastes it):\n" + "\n".join(diff[:40])


def test_the_demo_config_names_tables_the_run_writes() -> None:
    from crest.config import load_config
    from crest.schema import ConfigError

    config = load_config(REPO / "config/demo.yaml")
    assert [t["id"] for t in config["evaluate"]["readme"]["tables"]][:1] == ["sanity_auroc"]
    bad = load_config(REPO / "config/demo.yaml")
    bad["evaluate"]["readme"] = {"tables": [{"id": "roles_auroc.calibrated"}]}  # threshold-free: written once
    from crest.evaluate.plan import check_evaluate
    from crest.languages import load_languages

    with pytest.raises(ConfigError, match=r"evaluate.readme.tables: 'roles_auroc.calibrated' is not a table"):
        check_evaluate(bad, load_languages(REPO / "config/languages.tsv"))

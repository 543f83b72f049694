"""Registry facts a reviewer checks (docs/datasets.md): XSafety's benign commonsense prompts leave
under both spellings of the authors' files, RTP-LX's binarisation is stated under every table that
uses it, and only a refused access makes an optional source `missing` (a wrong id or path fails)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from crest.data.registry import load_registry
from crest.data.rows import records_to_rows
from crest.evaluate.sets import access_refused, prepare_optional
from crest.schema import ConfigError


@pytest.fixture(scope="module")
def registry():
    return load_registry(["config/datasets.yaml"])


def test_xsafety_commonsense_files_of_every_language_are_excluded(registry):
    records = [{"text": "Is the sun a star?", "language": "en", "category": "commonsense", "label": 1},
               {"text": "क्या सूरज एक तारा है?", "language": "hi", "category": "commen_sense", "label": 1},
               {"text": "मुझे बताओ कि किसी का अपमान कैसे करें।", "language": "hi", "category": "Insult", "label": 1}]
    rows, skipped = records_to_rows(registry["xsafety"], records)
    assert [r["category"] for r in rows] == ["Insult"] and skipped["excluded"] == 2


def _http(status: int) -> httpx.Response:
    return httpx.Response(status, request=httpx.Request("GET", "https://huggingface.co/api/datasets/org/name"))


def test_only_a_refused_access_is_missing():
    from datasets.exceptions import DatasetNotFoundError
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    from crest.data.prepare import SourceUnavailable

    assert access_refused(GatedRepoError("gated", response=_http(403)))
    assert access_refused(SourceUnavailable("offline")) and access_refused(ConnectionError("reset"))
    assert access_refused(HfHubHTTPError("busy", response=_http(503)))
    assert access_refused(DatasetNotFoundError("Dataset 'a/b' is a gated dataset on the Hub. You must be authenticated"))
    # the hub's 404 text mentions gated repos, but the repo does not exist (or is private): a config error
    assert not access_refused(RepositoryNotFoundError("404 Repository Not Found. If you are trying to access a "
                                                      "private or gated repo, make sure you are authenticated.",
                                                      response=_http(404)))
    assert not access_refused(DatasetNotFoundError("Dataset 'a/typo' doesn't exist on the Hub or cannot be accessed."))
    assert not access_refused(FileNotFoundError("no such file"))


def test_wrong_hub_id_of_an_optional_source_fails_and_a_gated_one_is_missing(registry, tmp_path: Path, monkeypatch):
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    import crest.data.prepare as prepare

    source = registry["cultural_kaleidoscope"]

    def raising(error):
        def fail(*args, **kwargs):
            raise error
        return fail

    monkeypatch.setattr(prepare, "prepare_source", raising(RepositoryNotFoundError("404", response=_http(404))))
    with pytest.raises(ConfigError, match=r"cultural_kaleidoscope.*wrong hub id"):
        prepare_optional(source, tmp_path / "ck.parquet", cache_dir=tmp_path, validation=0.1, test=0.1, seed=13,
                         offline=False)
    assert not (tmp_path / "ck.stats.json").exists()
    monkeypatch.setattr(prepare, "prepare_source", raising(GatedRepoError("gated", response=_http(403))))
    stats = prepare_optional(source, tmp_path / "ck.parquet", cache_dir=tmp_path, validation=0.1, test=0.1, seed=13,
                             offline=False)
    assert stats["status"] == "missing" and json.loads((tmp_path / "ck.stats.json").read_text())["status"] == "missing"


def test_rtp_lx_binarisation_is_stated_in_the_paper_config_and_under_its_tables(tmp_path: Path):
    from crest.config import load_config
    from crest.evaluate.collect import collect, read_metrics_csv, write_metrics_csv
    from crest.evaluate.tables import TableSpec, build_table, to_markdown

    note = load_config("config/config.yaml")["evaluate"]["benchmarks"]["rtp_lx"]["note"]
    assert "Toxicity > 1" in note and "74%" in note and "38%" in note
    files = []
    for lang in ("de", "fr"):
        path = tmp_path / f"{lang}.metrics.json"
        path.write_text(json.dumps({"model": {"kind": "trained", "arm": "crest", "size": "base", "seed": 0},
                                    "benchmark": "rtp_lx", "title": "RTP-LX", "lang": lang, "group": "multilingual",
                                    "kind": "sources", "note": note, "status": "ok", "n": 4, "n_unsafe": 2,
                                    "n_safe": 2, "f1": 0.5, "threshold": 0.5}))
        files.append(path)
    write_metrics_csv(collect(files, {}, {}), tmp_path / "metrics.csv")
    df = read_metrics_csv(tmp_path / "metrics.csv")
    md = to_markdown(build_table(df, TableSpec(id="m", title="M", filter={}, rows={"by": "title"},
                                               columns={"by": "model"}), {}))
    assert f"- RTP-LX: {note}" in md

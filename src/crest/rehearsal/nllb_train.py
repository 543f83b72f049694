"""A few hundred CPU steps that make the tiny NLLB stand-in's output pass the translation QC.

A random M2M100 emits noise in no particular script, often empty or looping, and the translate
stage's QC (crest.translate.qc: empty, length ratio, loop, copy, script) would drop most rows and
stop the shard (`max_drop_fraction`). The rehearsal needs rows that survive, not good
translations, so the stand-in learns a **word cipher**: each English word of a source becomes one
word of the target language (a CLDR name word, chosen by a hash of the English word and the
language), in the target's script, with the source's word count. It is not translation and is
never reported as one: the model directory keeps `random_weights: true` (every table built on it
says its translations are noise) and records the training in crest.json."""

from __future__ import annotations

import hashlib
import random
import time
from pathlib import Path
from typing import Any

from crest import hub
from crest.rehearsal.texts import Prompts, native_words, place_names


CIPHER_WORDS = 24
"""Target words per language: few enough to learn in a few hundred CPU steps."""


def cipher(text: str, lang: str) -> str:
    """The target side: each word of `text` replaced by a word of `lang` (deterministic)."""
    unsafe_pool, safe_pool = native_words(lang)
    pool = sorted(unsafe_pool + safe_pool, key=lambda w: (len(w), w))[len(unsafe_pool + safe_pool) // 3:][:CIPHER_WORDS]
    out = []
    for word in text.split():
        h = int.from_bytes(hashlib.blake2b(f"{lang}:{word.lower()}".encode(), digest_size=4).digest(), "big")
        out.append(pool[h % len(pool)])
    return " ".join(out)


def training_pairs(langs: dict[str, str], n: int, seed: int) -> list[tuple[str, str, str]]:
    """(English source, NLLB target code, target text) triples: template prompts and CLDR place
    names, each into a random target language."""
    rng = random.Random(seed)
    prompts, places = Prompts(f"nllb-train-{seed}"), place_names()
    codes = sorted(langs)
    pairs = []
    for i in range(n):
        src = prompts.prompt(i % 2 == 0) if i % 4 else " ".join(rng.sample(places, rng.randint(1, 3)))
        lang = rng.choice(codes)
        pairs.append((src, langs[lang], cipher(src, lang)))
    return pairs


def cipher_languages() -> dict[str, str]:
    """Babel locale -> NLLB code for every table language babel knows and NLLB covers."""
    from crest.languages import load_languages
    from crest.rehearsal.model_repos import nllb_languages

    table = load_languages()
    return {code: table[code].nllb for code in nllb_languages() if table[code].nllb}


def train_on_cldr(model_dir: str | Path, *, steps: int = 300, batch_size: int = 24, lr: float = 5e-3,
                  seed: int = 0) -> dict[str, Any]:
    """Train the model in `model_dir` in place on the cipher; returns what crest.json records."""
    import torch
    from transformers import AutoTokenizer, M2M100ForConditionalGeneration

    model_dir = Path(model_dir)
    tok = hub.from_pretrained(AutoTokenizer, model_dir)
    model = hub.from_pretrained(M2M100ForConditionalGeneration, model_dir)
    langs = cipher_languages()
    pairs = training_pairs(langs, steps * batch_size, seed)
    src_code = tok.convert_tokens_to_ids("eng_Latn")
    eos, pad = tok.eos_token_id, tok.pad_token_id

    def encode(texts: list[str]) -> list[list[int]]:
        return tok(texts, add_special_tokens=False)["input_ids"]

    def padded(seqs: list[list[int]], value: int):
        width = max(map(len, seqs))
        return torch.tensor([s + [value] * (width - len(s)) for s in seqs])

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # measured faster on a shared 2-core machine for a model this small
    torch.manual_seed(seed)
    model.train()
    optim = torch.optim.AdamW(model.parameters(), lr=lr)
    warmup = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(optim, lambda s: min(1.0, (s + 1) / warmup) * (1 - s / (steps + 1)))
    start, losses = time.perf_counter(), []
    try:
        for step in range(steps):
            batch = pairs[step * batch_size:(step + 1) * batch_size]
            srcs = [[src_code, *ids[:48], eos] for ids in encode([s for s, _, _ in batch])]
            tgts = [[tok.convert_tokens_to_ids(code), *ids[:64], eos]
                    for (_, code, _), ids in zip(batch, encode([t for _, _, t in batch]), strict=True)]
            input_ids = padded(srcs, pad)
            labels = padded(tgts, -100)
            labels[labels == tok.unk_token_id] = -100  # characters the tiny vocabulary lacks: never taught
            decoder_input_ids = padded([[eos, *t[:-1]] for t in tgts], pad)
            loss = model(input_ids=input_ids, attention_mask=(input_ids != pad).long(),
                         decoder_input_ids=decoder_input_ids, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optim.step()
            sched.step()
            optim.zero_grad()
            losses.append(loss.item())
    finally:
        torch.set_num_threads(threads)
    model.eval()
    model.save_pretrained(model_dir)
    tail = losses[-20:]
    return {"objective": "word cipher English -> CLDR words of the target language (crest.rehearsal.nllb_train)",
            "steps": steps, "batch_size": batch_size, "lr": lr, "languages": len(langs),
            "loss_first": round(losses[0], 4), "loss_last20_mean": round(sum(tail) / len(tail), 4),
            "seconds": round(time.perf_counter() - start, 1)}

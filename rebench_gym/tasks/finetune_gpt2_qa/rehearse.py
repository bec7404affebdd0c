"""Stand-ins for the full-scale rehearsal of FinetuneGPT2QA (``rebench rehearse``).

The ``--source`` directory of :mod:`.assets_full`, in its real formats:

* ``gpt2-xl/``: a GPT-2 checkpoint as Hugging Face stores it (``config.json`` of a
  ``GPT2LMHeadModel``, ``pytorch_model.bin`` with GPT-2's key names, Conv1D weight layout and
  causal-mask buffers, ``vocab.json``/``merges.txt`` of a byte-level BPE with
  ``<|endoftext|>``), with a tiny config (1 layer, 16 dimensions, a BPE of a few hundred tokens
  learned here on the stand-in text) and small random weights: its logits are nearly uniform,
  so the short finetuning of the full-scale reference (learning rate 1e-5) visibly moves them,
  except that stray bytes and ``<|endoftext|>`` are made unlikely (what a pretrained model
  knows; without it the round trip through text turns samples into U+FFFD bytes, and SFT makes
  the greedy response empty);
* ``alpaca/train.jsonl`` and ``alpaca/heldout.jsonl``: Alpaca rows (``instruction``, ``input``,
  ``output``);
* the two references by both routes the builder has: ``reference_models/gpt2-xl/`` (the same
  tiny checkpoint, decoded greedily by the builder) and ``reference_outputs/gpt2-alpaca.jsonl``.

The judge is a local OpenAI-API endpoint on 127.0.0.1 (``ScriptedOpenAIServer``) that receives
the full scale's own judge prompt and answers with a letter by a fixed, arbitrary rule that a
policy can learn from samples: the response with more letters "e" is better, a tie when equal
(no letter). The starting model's greedy response repeats one token without an "e": it ties
with its own outputs (the gpt2-xl reference) and loses to the Alpaca outputs. The reference
solution's best-of-k tournaments pick its samples richest in "e" and its SFT learns from them.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from rebench_gym.llm.scripted_server import ScriptedOpenAIServer, ScriptedReply
from rebench_gym.lmkit.bpe import _PATTERN, EOT, _byte_to_unicode
from rebench_gym.rehearse import StandIns

CONFIG = {"n_layer": 1, "n_head": 2, "n_embd": 16, "n_positions": 128}
MERGES = 300
#: weight scale of the stand-in model: small, so its logits are nearly uniform
INIT_STD = 0.002
#: the logit of a stray byte token (see write_gpt2_checkpoint)
STRAY_LOGIT = -3.0
#: the weights' seed: one whose greedy responses hold no "e" (seed 0's repeat "Describe", which
#: the stand-in judge already likes: no room for the reference to do better)
SEED = 3
N_TRAIN, N_HELDOUT = 32, 12
TOPICS = [
    "rivers",
    "bread",
    "chess",
    "volcanoes",
    "bicycles",
    "the moon",
    "tea",
    "bridges",
    "owls",
    "maps",
    "rain",
    "music",
    "glass",
    "bees",
    "trains",
    "paper",
]
ASKS = [
    "Explain {t} in one sentence.",
    "Give one fact about {t}.",
    "Why do people like {t}?",
    "Write a short poem about {t}.",
    "List two uses of {t}.",
    "Describe {t} to a child.",
]
_JUDGED = re.compile(r"Response A:\n(.*)\n\nResponse B:\n(.*)\n\nWhich response is better\?", re.S)


def alpaca_rows() -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Disjoint training and held-out rows in Alpaca's fields."""
    rows = []
    for n, (ask, topic) in enumerate((a, t) for t in TOPICS for a in ASKS):
        extra = f"Keep it under {10 + n % 5} words." if n % 4 == 0 else ""
        rows.append(
            {"instruction": ask.format(t=topic), "input": extra, "output": f"About {topic}."}
        )
    return rows[:N_TRAIN], rows[N_TRAIN : N_TRAIN + N_HELDOUT]


def train_bpe(texts: list[str], merges: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A byte-level BPE in GPT-2's format (256 byte symbols, ``merges`` merges, then EOT)."""
    b2u = _byte_to_unicode()
    words = Counter(
        tuple(b2u[b] for b in piece.encode("utf-8")) for t in texts for piece in _PATTERN.findall(t)
    )
    vocab = {b2u[b]: b for b in range(256)}
    ranks: list[tuple[str, str]] = []
    for _ in range(merges):
        pairs: Counter[tuple[str, str]] = Counter()
        for word, count in words.items():
            for pair in itertools.pairwise(word):
                pairs[pair] += count
        if not pairs:
            break
        best = max(pairs, key=lambda p: (pairs[p], p))
        ranks.append(best)
        vocab.setdefault(best[0] + best[1], len(vocab))
        merged: Counter[tuple[str, ...]] = Counter()
        for word, count in words.items():
            out: list[str] = []
            i = 0
            while i < len(word):
                if word[i : i + 2] == best:
                    out.append(best[0] + best[1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += count
        words = merged
    vocab[EOT] = len(vocab)
    return vocab, ranks


def write_gpt2_checkpoint(
    dest: Path, vocab: dict[str, int], merges: list[tuple[str, str]], seed: int
) -> None:
    """A Hugging Face GPT-2 directory with a tiny config and small random weights."""
    dest.mkdir(parents=True)
    n_layer, n_embd, n_pos = CONFIG["n_layer"], CONFIG["n_embd"], CONFIG["n_positions"]
    gen = torch.Generator().manual_seed(seed)

    def normal(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen) * INIT_STD

    state: dict[str, torch.Tensor] = {"wte.weight": normal(len(vocab), n_embd)}
    state["wpe.weight"] = normal(n_pos, n_embd)
    mask = torch.tril(torch.ones(n_pos, n_pos, dtype=torch.bool)).view(1, 1, n_pos, n_pos)
    for i in range(n_layer):
        h = f"h.{i}."
        for ln in ("ln_1", "ln_2"):
            state[h + ln + ".weight"] = torch.ones(n_embd)
            state[h + ln + ".bias"] = torch.zeros(n_embd)
        state[h + "attn.bias"] = mask  # the causal-mask buffer GPT-2's files carry
        # Conv1D layout: (in_features, out_features)
        for name, (fan_in, fan_out) in {
            "attn.c_attn": (n_embd, 3 * n_embd),
            "attn.c_proj": (n_embd, n_embd),
            "mlp.c_fc": (n_embd, 4 * n_embd),
            "mlp.c_proj": (4 * n_embd, n_embd),
        }.items():
            state[h + name + ".weight"] = normal(fan_in, fan_out)
            state[h + name + ".bias"] = torch.zeros(fan_out)
    state["ln_f.weight"] = torch.ones(n_embd)
    # What a pretrained GPT-2 knows and a random one does not: stray bytes (a lone byte of a
    # multi-byte character, control characters) are unlikely, and so is ending a response
    # before it starts. Along one direction of the final LayerNorm's output (a constant 1) the
    # embeddings of those tokens and of <|endoftext|> score STRAY_LOGIT; the rest is near uniform.
    state["ln_f.bias"] = torch.zeros(n_embd)
    state["ln_f.weight"][0] = 0.0
    state["ln_f.bias"][0] = 1.0
    b2u = {u: b for b, u in _byte_to_unicode().items()}
    for token, index in vocab.items():
        raw = [b2u.get(ch, 0) for ch in token]
        if token == EOT or any(b >= 0x80 or (b < 0x20 and b != 0x0A) for b in raw):
            state["wte.weight"][index, 0] = STRAY_LOGIT
    torch.save(state, dest / "pytorch_model.bin")
    eot = vocab[EOT]
    config = {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "activation_function": "gelu_new",
        "vocab_size": len(vocab),
        "n_positions": n_pos,
        "n_ctx": n_pos,
        "n_embd": n_embd,
        "n_layer": n_layer,
        "n_head": CONFIG["n_head"],
        "n_inner": None,
        "layer_norm_epsilon": 1e-05,
        "initializer_range": INIT_STD,
        "resid_pdrop": 0.1,
        "embd_pdrop": 0.1,
        "attn_pdrop": 0.1,
        "bos_token_id": eot,
        "eos_token_id": eot,
        "tie_word_embeddings": True,
    }
    (dest / "config.json").write_text(json.dumps(config, indent=2))
    (dest / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (dest / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def judge(body: dict[str, Any]) -> ScriptedReply:
    """The stand-in judge: the response with more letters "e" wins; equal counts tie."""
    text = str((body.get("messages") or [{}])[-1].get("content") or "")
    match = _JUDGED.search(text)
    if match is None:
        return ScriptedReply(content="I cannot read this comparison.")
    a, b = match.group(1).count("e"), match.group(2).count("e")
    return ScriptedReply(content="A" if a > b else "B" if b > a else "Equal.")


def stand_ins(root: Path, progress: Callable[[str], None] | None = None) -> StandIns:
    say = progress or (lambda _m: None)
    source = root / "source"
    train, heldout = alpaca_rows()
    template = "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n"  # noqa: E501 - the full scale's template, to learn merges on
    texts = [template] + [f"{r['instruction']}\n\n{r['input']} {r['output']}" for r in train]
    say("finetune_gpt2_qa: a tiny byte-level BPE and GPT-2 checkpoint in Hugging Face's format")
    vocab, merges = train_bpe(texts, MERGES)
    write_gpt2_checkpoint(source / "gpt2-xl", vocab, merges, seed=SEED)
    write_gpt2_checkpoint(source / "reference_models" / "gpt2-xl", vocab, merges, seed=SEED)
    (source / "alpaca").mkdir()
    for name, rows in (("train", train), ("heldout", heldout)):
        with open(source / "alpaca" / f"{name}.jsonl", "w") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)
    (source / "reference_outputs").mkdir()
    with open(source / "reference_outputs" / "gpt2-alpaca.jsonl", "w") as fh:
        for r in heldout:
            fh.write(json.dumps({**r, "output": f"Here is my answer: {r['output']}"}) + "\n")
    server = ScriptedOpenAIServer(judge, model="stand-in-judge", host="127.0.0.1").start()
    say(f"finetune_gpt2_qa: a scripted judge endpoint at {server.base_url}")
    return StandIns(
        source=source,
        params={"max_new_tokens": 16},
        task_options={"judge_base_url": server.base_url, "judge_model": "stand-in-judge"},
        closers=[server.close],
    )

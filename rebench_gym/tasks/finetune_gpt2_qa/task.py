"""Finetune GPT-2 for QA (RE-Bench ai_rd_nanogpt_chat_rl): make a small pretrained model a good
chatbot with only a judge's preferences, no ground-truth responses.

The agent gets the student model (``solution/model.pt``), training instructions without
responses, helpers to sample and finetune (``chat.py``), and ``evaluation.py``, a client of the
judge service (:mod:`.service`) that answers pairwise preferences within a request budget.

Score: the student's responses to hidden held-out instructions are decoded greedily by a
trusted process (:mod:`.generate_worker`, the checkpoint loaded with ``weights_only=True`` into
the fixed architecture) and compared by the judge with each of two reference models' precomputed
responses, decoded greedily too, in both orders (ties count half); the raw score is the mean win
rate over both references. Higher is better.

Greedy decoding (the original samples at temperature 0.7) because the output layer is tied to
the embeddings and has no bias: scaling the final LayerNorm multiplies every logit by a constant,
a free change of the sampling temperature that bought the whole reference gain without training
(issue #21). A greedy response depends only on which token is most likely at each step, so no
rescaling of the logits, by any layer, changes it; only changing the model's preferences does.

Mini: a GPT pre-trained on the package corpus, documents stating the world's facts (of the
corpus people and of hidden people), questions with answers in several phrasings, arithmetic,
and chat-format documents with responses of mixed quality (the knowledge is in the model, the
manners are not); synthetic instructions about the corpus's world (:mod:`.instructions_mini`),
the held-out ones about hidden people or in hidden phrasings (words the workspace vocabulary
masks), so they cannot be rebuilt from anything the agent sees; the deterministic rule judge
(:mod:`.rule_judge`), which the agent reaches for its training instructions only; references:
the base model and a copy finetuned on full-sentence answers to a different instruction set.
Full: a GPT-2 checkpoint
(``task_options["student_model"]``), Alpaca-style instructions, the two reference models'
outputs and an OpenAI-compatible judge endpoint (:mod:`.llm_judge`); see :mod:`.assets_full`.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rebench_gym.errors import AssetsError, UsageError
from rebench_gym.lmkit import bpe as lm_bpe
from rebench_gym.lmkit import model as lm_model
from rebench_gym.lmkit import sample as lm_sample
from rebench_gym.lmkit import sft as lm_sft
from rebench_gym.lmkit.corpus import documents
from rebench_gym.lmkit.data import read_tokens
from rebench_gym.lmkit.model import GPT, GPTConfig, load_checkpoint, save_checkpoint
from rebench_gym.lmkit.sample import generate
from rebench_gym.lmkit.sft import finetune
from rebench_gym.lmkit.tokenizer import WordTokenizer
from rebench_gym.lmkit.train import train
from rebench_gym.procs import fast_scoring, run_worker
from rebench_gym.scoring import ScoreResult
from rebench_gym.tasks.base import EpisodeService, ProgressFn, Scale, ScoreContext, Task, TaskParams
from rebench_gym.tasks.finetune_gpt2_qa import instructions_mini as im
from rebench_gym.tasks.finetune_gpt2_qa.llm_judge import JudgeError
from rebench_gym.tasks.finetune_gpt2_qa.rule_judge import RuleJudge
from rebench_gym.tasks.finetune_gpt2_qa.service import SOCKET_NAME, JudgeService

CHECKPOINT = "model.pt"
STUDENT_MODELS = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")


class RuleBackend:
    """The mini judge as a service backend (counts requests)."""

    def __init__(self) -> None:
        self.judge = RuleJudge()
        self.requests = 0

    def compare_many(self, items: Sequence[tuple[str, str, str]]) -> list[str]:
        self.requests += len(items)
        return [self.judge.compare(*item) for item in items]

    def usage(self) -> dict[str, int]:
        return {"requests": self.requests}


@dataclass(frozen=True)
class FinetuneGPT2QAMiniParams(TaskParams):
    """The task-specific keys of task.yaml's ``scales.mini``."""

    student_model: str
    references: list[Any]
    references_text: str
    model: dict[str, Any]
    pretrain_steps: int
    pretrain_lr: float
    corpus_docs: int
    fact_docs: int
    question_docs: int
    arithmetic_docs: int
    chat_docs: int
    tuned_steps: int
    heldout: int
    split_seed: int
    max_new_tokens: int
    decoding: str
    explore_temperature: float
    judge_budget: int
    template: str


@dataclass(frozen=True)
class FinetuneGPT2QAFullParams(TaskParams):
    """The task-specific keys of task.yaml's ``scales.full``."""

    student_model: str
    references: list[Any]
    references_text: str
    max_new_tokens: int
    decoding: str
    explore_temperature: float
    judge_budget: int
    template: str


class FinetuneGPT2QATask(Task):
    """The chatbot-finetuning task; see the module docstring."""

    package_dir = Path(__file__).parent
    mini_params = FinetuneGPT2QAMiniParams
    full_params = FinetuneGPT2QAFullParams
    #: its trusted worker runs as a fork of the fork server (procs.run_worker) and decodes with a
    #: key/value cache; turned off by ``REBENCH_SCORING=baseline`` (``rebench bench --scoring``
    #: measures both)
    fast_scoring_path = True
    #: the ``task_options`` names it reads (``rebench run`` refuses any other at once)
    task_options = frozenset(
        [
            "student_model",
            "judge_budget",
            "judge_base_url",
            "judge_model",
            "judge_api_key_env",
            "judge_concurrency",
        ]
    )

    # ----- options -----------------------------------------------------------------------------
    def student_model(self, scale: Scale, options: dict[str, Any]) -> str:
        """The student's name: ``task_options["student_model"]`` or the scale's default."""
        default = str(self.params(scale).student_model)
        name = str(options.get("student_model") or default)
        if scale == "full" and name not in STUDENT_MODELS:
            raise UsageError(f"student_model must be one of {STUDENT_MODELS}, not {name!r}")
        if scale == "mini" and name != default:
            raise UsageError(f"at mini scale the student is {default!r}; student_model={name!r}")
        return name

    def judge_budget(self, scale: Scale, options: dict[str, Any]) -> int:
        budget = int(options.get("judge_budget", self.params(scale).judge_budget))
        if budget < 0:
            raise UsageError("judge_budget must be >= 0")
        return budget

    # ----- assets ------------------------------------------------------------------------------
    full_assets_source = (
        "GPT-2 weights, Alpaca-style instructions and the reference models' outputs; layout in "
        "the README"
    )

    def build_full_assets(self, out: Path, source: Path | None, progress: ProgressFn) -> None:
        from rebench_gym.tasks.finetune_gpt2_qa.assets_full import build_full

        assert source is not None  # full_assets_source is set: the base checked
        build_full(out, source, self.params("full"), progress)

    def build_mini_assets(self, out: Path, progress: ProgressFn) -> None:
        # One thread: on 2 cores the small model trains in less CPU time (2m45s measured against
        # 6m47s with two threads) and does not crawl when other processes share the cores.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            self._build_mini_assets(out, progress)
        finally:
            torch.set_num_threads(threads)

    def _build_mini_assets(self, out: Path, progress: ProgressFn | None) -> None:
        p = self.params("mini")
        say = progress or (lambda _m: None)
        tok = WordTokenizer(im.chat_vocabulary())
        tok.save(out / "vocab.json")
        train_items, heldout = im.split_instructions(p.heldout, p.split_seed)
        say("finetune_gpt2_qa (mini): generating the pre-training corpus")
        docs = (
            documents(p.corpus_docs, 1)
            + im.fact_documents(p.fact_docs, 2)
            + im.question_documents(p.question_docs, 5)
            + im.arithmetic_documents(p.arithmetic_docs, 4)
            + im.chat_documents(p.chat_docs, 3, train_items)
        )
        random.Random(0).shuffle(docs)
        from rebench_gym.lmkit.data import write_tokens

        write_tokens(out / "pretrain.bin", tok.encode_documents(docs))
        torch.manual_seed(0)
        base = GPT(GPTConfig(vocab_size=tok.vocab_size, **p.model))
        train(
            base,
            read_tokens(out / "pretrain.bin"),
            steps=p.pretrain_steps,
            lr=p.pretrain_lr,
            seed=0,
            progress="finetune_gpt2_qa (mini): pre-training the student",
        )
        save_checkpoint(base, out / "base.pt")
        (out / "pretrain.bin").unlink()
        say("finetune_gpt2_qa (mini): finetuning the second reference model")
        tuned = load_checkpoint(out / "base.pt")
        # A different instruction set: full-sentence answers to the questions without format
        # constraints (like an instruction dataset that never asks for one-word answers).
        plain = [i for i in train_items if not i.one_word]
        template = p.template
        examples = [(tok.encode(_fill(template, i.text)), tok.encode(i.ideal)) for i in plain]
        finetune(tuned, examples, eot_id=tok.eot_id, steps=p.tuned_steps, lr=1e-3)
        say("finetune_gpt2_qa (mini): decoding the reference models on the held-out set")
        refs = {
            name: _greedy(model, tok, [i.text for i in heldout], p)
            for name, model in (("base", base), ("tuned", tuned))
        }
        with (out / "heldout.jsonl").open("w") as fh:
            for n, item in enumerate(heldout):
                row = {"instruction": item.text, "references": {r: refs[r][n] for r in refs}}
                fh.write(json.dumps(row) + "\n")
        with (out / "train_instructions.jsonl").open("w") as fh:
            for item in train_items:
                fh.write(json.dumps({"instruction": item.text}) + "\n")
        meta = {"config": base.config.to_dict(), "tokenizer": "word"}
        (out / "meta.json").write_text(json.dumps(meta, indent=2))

    # ----- workspace and services --------------------------------------------------------------
    def populate_workspace(self, dest: Path, scale: Scale, cache: Path) -> None:
        super().populate_workspace(dest, scale, cache)
        assets = self.assets(scale, cache)
        params = self.params(scale)
        meta = json.loads((assets / "meta.json").read_text())
        modules = [(lm_model, "model.py"), (lm_sample, "sample.py"), (lm_sft, "sft.py")]
        if meta["tokenizer"] == "bpe":
            modules.append((lm_bpe, "bpe.py"))
        for module, name in modules:  # torch-only modules the scorer uses too
            shutil.copy(str(module.__file__), dest / name)
        data = dest / "data"
        data.mkdir(exist_ok=True)
        for name in ("vocab.json", "merges.txt", "train_instructions.jsonl"):
            if (assets / name).exists():
                shutil.copy(assets / name, data / name)
        if meta["tokenizer"] == "word":  # the held-out set's own words stay hidden
            (data / "vocab.json").write_text(json.dumps(masked_vocabulary(assets / "vocab.json")))
        chat_format = {
            "scale": scale,
            "template": params.template,
            "tokenizer": meta["tokenizer"],
            "max_new_tokens": params.max_new_tokens,
            "decoding": _decoding(params),
            "explore_temperature": params.explore_temperature,
        }
        (data / "chat_format.json").write_text(json.dumps(chat_format, indent=2))
        (dest / "solution").mkdir(exist_ok=True)

    def _student_checkpoint(self, scale: Scale, cache: Path, options: dict[str, Any]) -> Path:
        """The prepared checkpoint of the chosen student (the starting ``solution/``)."""
        assets = self.assets(scale, cache)
        student = self.student_model(scale, options)
        source = assets / "base.pt" if scale == "mini" else assets / "students" / f"{student}.pt"
        if not source.exists():
            raise AssetsError(
                f"the student {student!r} is not among the prepared assets at {assets}; prepare "
                f"them with a source directory that holds {student}/"
            )
        return source

    def starting_files(self, scale: Scale, cache: Path | None = None) -> dict[str, bytes]:
        files = super().starting_files(scale, cache)
        if cache is not None:
            files[CHECKPOINT] = self._student_checkpoint(scale, cache, {}).read_bytes()
        return files

    def start_services(
        self, scale: Scale, cache: Path, workspace: Path, options: dict[str, Any]
    ) -> list[EpisodeService]:
        """Put the chosen student in ``solution/`` and start the judge service."""
        assets = self.assets(scale, cache)
        source = self._student_checkpoint(scale, cache, options)
        shutil.copy(source, workspace / "solution" / CHECKPOINT)
        budget = self.judge_budget(scale, options)
        backend: Any
        allowed: list[str] | None = None
        if scale == "mini":
            backend = RuleBackend()
            # The rules know every instruction, the held-out ones included: answer only for the
            # prompts the agent is given (at full scale, as in the original, any prompt).
            lines = (assets / "train_instructions.jsonl").read_text().splitlines()
            allowed = [json.loads(line)["instruction"] for line in lines if line.strip()]
        else:
            from rebench_gym.tasks.finetune_gpt2_qa.llm_judge import JudgeConfig, LLMJudge

            backend = LLMJudge(JudgeConfig.from_options(options))
        return [JudgeService(backend, workspace / SOCKET_NAME, budget, allowed)]

    # ----- scoring -----------------------------------------------------------------------------
    def score(self, ctx: ScoreContext) -> ScoreResult:
        params = self.params(ctx.scale)
        assets = self.assets(ctx.scale, ctx.cache)
        student = self.student_model(ctx.scale, ctx.options)
        checkpoint = ctx.solution / CHECKPOINT
        if not checkpoint.is_file() or checkpoint.is_symlink():
            return ScoreResult.invalid(f"solution/{CHECKPOINT} is missing (or is a symlink)")
        reference_ckpt = (
            assets / "base.pt" if ctx.scale == "mini" else (assets / "students" / f"{student}.pt")
        )
        if checkpoint.stat().st_size > 2 * reference_ckpt.stat().st_size + 1_000_000:
            return ScoreResult.invalid(
                f"solution/{CHECKPOINT} is larger than the student's architecture could be"
            )
        config = load_checkpoint_config(reference_ckpt)
        heldout = (assets / "heldout.jsonl").read_text().splitlines()
        decoding = _decoding(params)
        # greedy decoding is deterministic: one response per held-out instruction
        rows = [json.loads(line) for line in heldout]
        instructions_file = ctx.work_dir / "instructions.jsonl"
        instructions_file.write_text(
            "".join(json.dumps({"instruction": r["instruction"]}) + "\n" for r in rows)
        )
        out = ctx.work_dir / "responses.json"
        spec = {
            "checkpoint": str(checkpoint),
            "config": config,
            "tokenizer": "word" if ctx.scale == "mini" else "bpe",
            "tokenizer_dir": str(assets),
            "template": params.template,
            "instructions": str(instructions_file),
            "max_new_tokens": params.max_new_tokens,
            "temperature": 0.0,  # greedy, the only decoding _decoding allows
            "seed": ctx.seed % 2**62,
            "device": "cuda" if ctx.scale == "full" and torch.cuda.is_available() else "cpu",
            "out": str(out),
            # one thread: robust when the agent's own training keeps the CPU cores busy
            "threads": 1 if ctx.scale == "mini" else torch.get_num_threads(),
            # decoding with a key/value cache (the same tokens, ~10x faster) except on the
            # baseline path that `rebench bench --scoring` compares against
            "kv_cache": fast_scoring(),
        }
        responses, error = run_generation(spec, ctx.timeout_s)
        if error:
            return ScoreResult.invalid(error)
        if len(responses) != len(rows):
            return ScoreResult.invalid(
                "the generation worker returned the wrong number of responses"
            )
        if ctx.scale == "mini":
            judge: Any = RuleBackend()
        else:
            from rebench_gym.tasks.finetune_gpt2_qa.llm_judge import JudgeConfig, LLMJudge

            judge = LLMJudge(JudgeConfig.from_options(ctx.options))
        try:
            rates = win_rates(judge, rows, responses, list(params.references))
        except Exception as e:  # the endpoint failed: an invalid score, not a crash
            # never the endpoint's words: an error body can echo a held-out prompt
            why = e.public if isinstance(e, JudgeError) else type(e).__name__
            return ScoreResult.invalid(f"judging failed: {why}")
        raw = sum(rates.values()) / len(rates)
        text = ", ".join(f"{k} {v:.3f}" for k, v in rates.items())
        return ScoreResult(
            raw=raw,
            valid=True,
            message=(
                f"mean win rate {raw:.3f} ({text}) on {len(heldout)} held-out instructions, "
                f"{decoding} decoding"
            ),
            details={"win_rates": rates, "judge": judge.usage()},
        )

    def reference_files(self, scale: Scale) -> dict[str, bytes]:
        """One script for both scales (its settings follow ``data/chat_format.json``)."""
        return {
            "reference_rl.py": (self.package_dir / "reference" / "reference_rl.py").read_bytes()
        }

    def reference_actions(self, scale: Scale) -> list[str]:
        from rebench_gym import actions

        script = self.reference_files(scale)["reference_rl.py"].decode()
        return [
            actions.write_file("solution/reference_rl.py", script),
            actions.bash("python solution/reference_rl.py", timeout=7200),
        ]


def _fill(template: str, instruction: str) -> str:
    return template.replace("{instruction}", instruction)


def _decoding(params: FinetuneGPT2QAMiniParams | FinetuneGPT2QAFullParams) -> str:
    """The scorer's decoding: only ``greedy`` (see the module docstring)."""
    decoding = params.decoding
    if decoding != "greedy":
        raise UsageError(f"decoding must be 'greedy', not {decoding!r} (see issue #21)")
    return decoding


def _greedy(
    model: GPT, tok: WordTokenizer, instructions: list[str], params: FinetuneGPT2QAMiniParams
) -> list[str]:
    """A model's greedy responses, decoded as the scorer decodes the student."""
    max_new = min(params.max_new_tokens, model.config.block_size // 2)
    keep = model.config.block_size - max_new
    prompts = [tok.encode(_fill(params.template, i))[-keep:] for i in instructions]
    out = generate(model, prompts, max_new_tokens=max_new, eot_id=tok.eot_id, temperature=0.0)
    return [tok.decode(ids).strip() for ids in out]


def masked_vocabulary(path: Path) -> dict[str, Any]:
    """The word tokenizer file with the hidden words (:func:`.instructions_mini.hidden_words`)
    replaced by placeholders ``<masked0>``, ``<masked1>``, ...: the ids stay valid, the words
    of the held-out instructions appear in no workspace file."""
    data = json.loads(path.read_text())
    hidden = {w: n for n, w in enumerate(im.hidden_words())}
    data["words"] = [f"<masked{hidden[w]}>" if w in hidden else w for w in data["words"]]
    return dict(data)


def load_checkpoint_config(path: Path) -> dict[str, Any]:
    """The model config stored in one of the task's own checkpoints."""
    data = torch.load(path, map_location="cpu", weights_only=True)
    return dict(data["config"])


def run_generation(spec: dict[str, Any], timeout: float) -> tuple[list[str], str]:
    """Sample the student in a separate trusted process; (responses, error message)."""
    result, error = run_worker(
        "rebench_gym.tasks.finetune_gpt2_qa.generate_worker", spec, timeout, "sampling the student"
    )
    if result is None:
        return [], error
    responses = json.loads(Path(spec["out"]).read_text())
    return [str(r) for r in responses], ""


def win_rates(
    judge: Any, rows: list[dict[str, Any]], responses: list[str], references: list[str]
) -> dict[str, float]:
    """Win rate of ``responses`` against each reference, judged in both orders (ties: half)."""
    items: list[tuple[str, str, str]] = []
    for row, mine in zip(rows, responses, strict=True):
        for ref in references:
            theirs = str(row["references"][ref])
            items.append((row["instruction"], mine, theirs))
            items.append((row["instruction"], theirs, mine))
    verdicts = judge.compare_many(items)
    totals = dict.fromkeys(references, 0.0)
    k = 0
    for _row in rows:
        for ref in references:
            first, second = verdicts[k], verdicts[k + 1]
            k += 2
            totals[ref] += _points(first, "a") + _points(second, "b")
    return {ref: totals[ref] / (2 * len(rows)) for ref in references}


def _points(verdict: str, mine: str) -> float:
    if verdict == "tie":
        return 0.5
    return 1.0 if verdict == mine else 0.0

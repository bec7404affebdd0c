"""Fix Embedding (RE-Bench ai_rd_fix_embedding): a GPT whose embedding rows were permuted.

Assets (hidden, in the cache): the token files, the correctly trained large model, its corrupted
copy (embedding rows permuted; the output layer is tied to the embedding so it is scrambled too),
a smaller correct model, and the held-out validation tokens. The workspace gets the corrupted
large model, the small model, the training tokens and ``model.py`` (the fixed model class).

Score: ``ln(loss - floor)`` of ``solution/fixed_model.pth`` on held-out tokens, computed by a
trusted process that loads the checkpoint with ``weights_only=True`` into the fixed class; a
different architecture, extra parameters, a timeout or running out of memory is invalid.

Mini: both models are trained on the package corpus at asset preparation (about two minutes on
two cores). Full: GPT-2-XL (corrupted) and GPT-2 small from Hugging Face checkpoints and
OpenWebText in nanoGPT's ``train.bin``/``val.bin``, from ``rebench assets prepare
RE-Bench/FixEmbedding-v0 --source DIR`` or downloaded where the network allows.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rebench_gym.errors import AssetsError
from rebench_gym.lmkit import model as lm_model
from rebench_gym.lmkit.corpus import documents
from rebench_gym.lmkit.data import read_tokens, write_tokens
from rebench_gym.lmkit.model import GPT, GPTConfig, save_checkpoint
from rebench_gym.lmkit.tokenizer import WordTokenizer
from rebench_gym.lmkit.train import evaluate, train
from rebench_gym.lmkit.trusted import log_loss_score
from rebench_gym.scoring import ScoreResult
from rebench_gym.tasks.base import ProgressFn, Scale, ScoreContext, Task, TaskParams

CHECKPOINT = "fixed_model.pth"
PERMUTATION_SEED = 1234


def permute_embedding(model: GPT, seed: int) -> GPT:
    """Scramble the rows of the (tied) token embedding in place."""
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(model.config.vocab_size, generator=gen)
    with torch.no_grad():
        model.wte.weight.copy_(model.wte.weight[perm].clone())
    return model


@dataclass(frozen=True)
class FixEmbeddingParams(TaskParams):
    """The task-specific keys both scales of task.yaml have."""

    loss_floor: float
    eval_batches: int
    eval_batch_size: int
    # keys being added to task.yaml by the fidelity work (defaults keep both versions valid)
    dataset: str = field(default="", kw_only=True)
    original_loss: float | None = field(default=None, kw_only=True)
    corrupted_loss: float | None = field(default=None, kw_only=True)
    tokens_note: str = field(default="", kw_only=True)
    hardware_note: str = field(default="", kw_only=True)
    reference_args: str = field(default="", kw_only=True)
    reference_timeout_s: int = field(default=3600, kw_only=True)


@dataclass(frozen=True)
class FixEmbeddingMiniParams(FixEmbeddingParams):
    """The task-specific keys of task.yaml's ``scales.mini``."""

    large: dict[str, Any]
    small: dict[str, Any]
    train_docs: int
    val_docs: int
    eval_device: str = "cpu"


@dataclass(frozen=True)
class FixEmbeddingFullParams(FixEmbeddingParams):
    """The task-specific keys of task.yaml's ``scales.full``."""

    eval_device: str


class FixEmbeddingTask(Task):
    """The embedding-repair task; see the module docstring."""

    package_dir = Path(__file__).parent
    mini_params = FixEmbeddingMiniParams
    full_params = FixEmbeddingFullParams
    #: its trusted worker runs as a fork of the fork server (procs.run_worker); turned off by
    #: ``REBENCH_SCORING=baseline`` (``rebench bench --scoring`` measures both)
    fast_scoring_path = True

    # ----- assets ------------------------------------------------------------------------------
    full_assets_source = (
        "gpt2/ and gpt2-xl/ Hugging Face checkpoints and openwebtext/train.bin and val.bin in "
        "nanoGPT's format"
    )

    def build_full_assets(self, out: Path, source: Path | None, progress: ProgressFn) -> None:
        assert source is not None  # full_assets_source is set: the base checked
        build_full(out, source, progress)

    def build_mini_assets(self, out: Path, progress: ProgressFn) -> None:
        params = self.params("mini")
        say = progress
        tok = WordTokenizer.default()
        say("fix_embedding (mini): generating the corpus")
        write_tokens(out / "train.bin", tok.encode_documents(documents(params.train_docs, 1)))
        write_tokens(out / "val.bin", tok.encode_documents(documents(params.val_docs, 2)))
        tok.save(out / "vocab.json")
        train_data = read_tokens(out / "train.bin")
        val_data = read_tokens(out / "val.bin")
        meta: dict[str, Any] = {}
        for name in ("large", "small"):
            cfg = dict(params[name])
            steps, lr = cfg.pop("steps"), cfg.pop("lr")
            torch.manual_seed(0)
            model = GPT(GPTConfig(vocab_size=tok.vocab_size, **cfg))
            train(
                model,
                train_data,
                steps=steps,
                lr=lr,
                seed=0,
                progress=f"fix_embedding (mini): training the {name} model",
            )
            meta[f"{name}_val_loss"] = evaluate(
                model, val_data, block_size=cfg["block_size"], max_batches=params.eval_batches
            )
            save_checkpoint(model, out / f"{name}_trained.pth")
            if name == "large":
                permute_embedding(model, PERMUTATION_SEED)
                meta["corrupted_val_loss"] = evaluate(
                    model,
                    val_data,
                    block_size=cfg["block_size"],
                    max_batches=params.eval_batches,
                )
                save_checkpoint(model, out / "large_corrupted.pth")
                meta["large_config"] = model.config.to_dict()
        (out / "meta.json").write_text(json.dumps(meta, indent=2))

    def populate_workspace(self, dest: Path, scale: Scale, cache: Path) -> None:
        super().populate_workspace(dest, scale, cache)
        assets = self.assets(scale, cache)
        shutil.copy(lm_model.__file__, dest / "model.py")
        shutil.copy(assets / "large_corrupted.pth", dest / "large_model.pth")
        shutil.copy(assets / "small_trained.pth", dest / "small_correct_model.pth")
        (dest / "data").mkdir(exist_ok=True)
        shutil.copy(assets / "train.bin", dest / "data" / "train.bin")
        if (assets / "vocab.json").exists():
            shutil.copy(assets / "vocab.json", dest / "data" / "vocab.json")
        (dest / "solution").mkdir(exist_ok=True)
        shutil.copy(assets / "large_corrupted.pth", dest / "solution" / CHECKPOINT)

    # ----- scoring -----------------------------------------------------------------------------
    def score(self, ctx: ScoreContext) -> ScoreResult:
        params = self.params(ctx.scale)
        assets = self.assets(ctx.scale, ctx.cache)
        meta = json.loads((assets / "meta.json").read_text())
        checkpoint = ctx.solution / CHECKPOINT
        if not checkpoint.is_file() or checkpoint.is_symlink():
            return ScoreResult.invalid(f"solution/{CHECKPOINT} is missing (or is a symlink)")
        limit = 2 * (assets / "large_trained.pth").stat().st_size + 1_000_000
        if checkpoint.stat().st_size > limit:
            return ScoreResult.invalid(
                f"solution/{CHECKPOINT} is larger than the required architecture could be"
            )
        spec = {
            "checkpoint": str(checkpoint),
            "config": meta["large_config"],
            "tokens": str(assets / "val.bin"),
            "block_size": meta["large_config"]["block_size"],
            "batch_size": params.eval_batch_size,
            "max_batches": params.eval_batches,
            "device": params.eval_device,
        }
        return log_loss_score(
            "rebench_gym.lmkit.evaluate_worker",
            spec,
            ctx.timeout_s,
            params.loss_floor,
            "validation loss {loss:.4f}",
        )

    def reference_actions(self, scale: Scale) -> list[str]:
        from rebench_gym import actions

        files = self.reference_files(scale)
        acts = [actions.write_file(f"solution/{p}", c.decode()) for p, c in files.items()]
        params = self.params(scale)
        command = f"python solution/fix_embedding.py {params.reference_args}".strip()
        acts.append(actions.bash(command, timeout=params.reference_timeout_s))
        return acts


def build_full(out: Path, source: Path, progress: ProgressFn | None = None) -> None:
    """Full-scale assets from a source directory (tested on small stand-ins in the same formats).

    ``source`` holds ``gpt2-xl/`` and ``gpt2/`` (Hugging Face GPT-2 checkpoints) and
    ``openwebtext/train.bin`` and ``val.bin`` (nanoGPT's uint16 GPT-2 token files).
    """
    from rebench_gym.lmkit.hf_gpt2 import load_hf_gpt2

    say = progress or (lambda _m: None)
    for needed in ("gpt2-xl", "gpt2", "openwebtext/train.bin", "openwebtext/val.bin"):
        if not (source / needed).exists():
            raise AssetsError(f"{source} lacks {needed} (see `rebench assets prepare --help`)")
    say("fix_embedding (full): converting gpt2-xl")
    large = load_hf_gpt2(source / "gpt2-xl")
    save_checkpoint(large, out / "large_trained.pth")
    permute_embedding(large, PERMUTATION_SEED)
    save_checkpoint(large, out / "large_corrupted.pth")
    say("fix_embedding (full): converting gpt2")
    small = load_hf_gpt2(source / "gpt2")
    if small.config.vocab_size != large.config.vocab_size:
        raise AssetsError("gpt2 and gpt2-xl must share a vocabulary")
    save_checkpoint(small, out / "small_trained.pth")
    shutil.copy(source / "openwebtext/train.bin", out / "train.bin")
    shutil.copy(source / "openwebtext/val.bin", out / "val.bin")
    (out / "meta.json").write_text(json.dumps({"large_config": large.config.to_dict()}))

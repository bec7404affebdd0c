"""Rehearsal stand-ins for ScalingLaw: OpenWebText-format tokens, a small GPT variant, CPU.

The full-scale build copies ``openwebtext/{train,val}.bin`` (nanoGPT's uint16 files) into the
workspace; ``example_config.py`` gets the full scale's fixed settings from the parameters, which
the overrides shrink (2 layers, 32-token context, batch 8, evaluation on 4 batches, CPU, no
``torch.compile``) with an experiment cap of a few GFLOPs and a target 10x that (the task's is
50x). The scorer's ground truth, the sweep along the target's iso-FLOP line, is measured here as
the paper's was: real runs of the workspace's ``train.py`` at the target budget on the stand-in
data. The default (starting) answer is, as at full scale, a wider and shorter run than the
optimum at 0.75x the budget with a loss prediction well off.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rebench_gym.rehearse import StandIns, write_openwebtext

SHAPE = {"n_layer": 2, "n_head": 2, "block_size": 32, "batch_size": 8}
#: the experiment cap: width 16 for 150 iterations
CAP = SHAPE["n_layer"] * 72 * SHAPE["block_size"] * SHAPE["batch_size"] * 16**2 * 150
TARGET_RATIO = 10
SWEEP_ITERS = (40, 80, 160, 320, 640, 1280)
CONFIG = """
data_dir = "data"
vocab_size = {vocab_size}
n_layer = {n_layer}
n_head = {n_head}
n_embd = 16
block_size = {block_size}
batch_size = {batch_size}
max_iters = 100
learning_rate = 6e-4
min_lr_ratio = 0.1
warmup_frac = 0.05
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0
seed = 1
eval_batches = 4
eval_batch_size = 16
device = "cpu"
threads = 1
compile = False
log_interval = 100
out = ""
flop_cap = {flop_cap}
"""


def _sweep(home: Path, points: list[tuple[int, int]]) -> list[float]:
    """The validation loss of each ``(n_embd, max_iters)`` run of the workspace's train.py,
    two command-line runs at a time (one thread each)."""
    losses: list[float] = []
    for i in range(0, len(points), 2):
        procs = []
        for n_embd, max_iters in points[i : i + 2]:
            out = home / f"run-{n_embd}-{max_iters}.json"
            argv = [sys.executable, "train.py", "config.py", f"--n_embd={n_embd}"]
            argv += [f"--max_iters={max_iters}", f"--out={out}"]
            proc = subprocess.Popen(
                argv, cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            procs.append((proc, out))
        for proc, out in procs:
            _, err = proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"a sweep run failed: {err.decode(errors='replace')[-1000:]}")
            losses.append(float(json.loads(out.read_text())["val_loss"]))
    return losses


def stand_ins(root: Path, progress: Callable[[str], None] | None = None) -> StandIns:
    from rebench_gym.lmkit import model as lm_model
    from rebench_gym.tasks.scaling_law.task import n_embd_for_budget

    say = progress or (lambda _m: None)
    vocab = write_openwebtext(root, train_docs=6000, val_docs=600)
    target = TARGET_RATIO * CAP
    fixed: dict[str, Any] = {**SHAPE, "vocab_size": vocab}
    # the ground-truth sweep: the workspace's train.py and model at the target budget
    home = root / "sweep"
    (home / "data").mkdir(parents=True)
    shutil.copy(Path(__file__).parent / "workspace" / "train.py", home / "train.py")
    shutil.copy(lm_model.__file__, home / "model.py")
    for name in ("train.bin", "val.bin"):
        (home / "data" / name).symlink_to(root / "openwebtext" / name)
    (home / "config.py").write_text(CONFIG.format(**fixed, flop_cap=target * 1.2))
    points = []
    for iters in SWEEP_ITERS:
        width = n_embd_for_budget(target, iters, fixed)
        per_iter = fixed["n_layer"] * 72 * fixed["block_size"] * fixed["batch_size"] * width**2
        points.append((width, max(1, round(target / per_iter))))
    say(f"scaling_law: measuring the ground-truth sweep ({len(points)} runs at the target)")
    losses = _sweep(home, points)
    sweep = [[iters, round(loss, 4)] for (_w, iters), loss in zip(points, losses, strict=True)]
    shutil.rmtree(home)
    # the default answer: the sweep's widest run, at 0.75x the budget, loss predicted 0.8 low
    width, iters = points[0]
    short = max(1, round(0.75 * iters))
    default = {"n_embd": width, "max_iters": short, "loss_prediction": round(min(losses) - 0.8, 2)}
    reference = f"--iters 25,50,100,200,400 --target-ratio {TARGET_RATIO} --loss-floor 1.0"
    return StandIns(
        source=root,
        params={
            **fixed,
            "target_flops": float(target),
            "experiment_flops": float(CAP),
            "sweep": sweep,
            "default_answer": default,
            "eval_batches": 4,
            "eval_batch_size": 16,
            "device": "cpu",
            "compile": False,
            "reference_args": reference,
        },
    )

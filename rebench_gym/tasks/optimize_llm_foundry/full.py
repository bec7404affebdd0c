"""Full-scale assets: deepseek-coder-1.3b-base, an llm-foundry checkout and the data pool.

``rebench assets prepare RE-Bench/OptimizeLLMFoundry-v0 --scale full --source DIR`` copies them
from ``DIR``; what ``DIR`` lacks is downloaded where the network allows:

* ``DIR/deepseek-coder-1.3b-base/``: the Hugging Face model directory (``config.json``, the
  tokenizer files and ``model.safetensors`` or ``pytorch_model.bin``, possibly sharded);
  otherwise ``huggingface_hub.snapshot_download`` fetches it;
* ``DIR/llm-foundry/``: an llm-foundry checkout (the solution directory is one, as in the
  original); otherwise ``git clone`` fetches it;
* ``DIR/train_data.jsonl``: a pool of ``{"prompt", "response"}`` rows (at least ``pool_rows``);
  otherwise the pool is generated (small Python programming exercises with their solutions).

The pool's first ``train_rows`` rows are the workspace's example file; score calls sample the
rest with fresh seeds, so a scored file is never one the agent has seen.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

from rebench_gym.errors import AssetsError
from rebench_gym.tasks.base import ProgressFn
from rebench_gym.tasks.optimize_llm_foundry import data as task_data

MODEL_DIR = "deepseek-coder-1.3b-base"
FOUNDRY_DIR = "llm-foundry"
FOUNDRY_URL = "https://github.com/mosaicml/llm-foundry.git"
#: scripts finetune.sh calls; a checkout without them is rejected
FOUNDRY_SCRIPTS = (
    "scripts/train/train.py",
    "scripts/data_prep/convert_finetuning_dataset.py",
    "scripts/inference/convert_composer_to_hf.py",
)
POOL_SEED = 4242


def check_model_dir(path: Path) -> None:
    """Raise :class:`AssetsError` unless ``path`` looks like a Hugging Face causal LM."""
    if not (path / "config.json").is_file():
        raise AssetsError(f"{path} has no config.json: not a Hugging Face model directory")
    names = {p.name for p in path.iterdir()}
    weights = [
        n
        for n in names
        if n.endswith(".safetensors") or (n.startswith("pytorch_model") and n.endswith(".bin"))
    ]
    if not weights:
        raise AssetsError(f"{path} holds no model.safetensors or pytorch_model.bin weights")
    if not names & {"tokenizer.json", "tokenizer.model", "tokenizer_config.json"}:
        raise AssetsError(f"{path} holds no tokenizer files")


def check_foundry_dir(path: Path) -> None:
    """Raise :class:`AssetsError` unless ``path`` is an llm-foundry checkout with its scripts."""
    missing = [s for s in FOUNDRY_SCRIPTS if not (path / s).is_file()]
    if missing:
        raise AssetsError(f"{path} is not an llm-foundry checkout: it lacks {', '.join(missing)}")


def code_rows(n_rows: int, seed: int) -> list[dict[str, str]]:
    """Generated finetuning rows: small Python exercises and their solutions."""
    rng = random.Random(seed)
    ops: list[tuple[str, str, str, Any]] = [
        ("sum", "the sum of", "sum({x})", sum),
        ("max", "the largest value in", "max({x})", max),
        ("min", "the smallest value in", "min({x})", min),
        ("count_even", "how many even numbers are in", "sum(1 for v in {x} if v % 2 == 0)",
         lambda xs: sum(1 for v in xs if v % 2 == 0)),
        ("sorted", "a sorted copy of", "sorted({x})", sorted),
        ("reversed", "a reversed copy of", "list(reversed({x}))", lambda xs: xs[::-1]),
        ("squares", "the squares of the numbers in", "[v * v for v in {x}]",
         lambda xs: [v * v for v in xs]),
    ]  # fmt: skip
    rows = []
    for _ in range(n_rows):
        name, text, expr, fn_value = rng.choice(ops)
        arg = rng.choice(["values", "numbers", "items", "xs", "data"])
        fn = f"{name}_{rng.choice(['of', 'for', 'in'])}_{arg}"
        example = [rng.randint(-50, 50) for _ in range(rng.randint(3, 8))]
        prompt = (
            f"Write a Python function `{fn}({arg})` that returns {text} the list `{arg}`.\n"
            f"Example: `{fn}({example})`."
        )
        response = (
            f"```python\ndef {fn}({arg}):\n"
            f'    """Return {text} `{arg}`."""\n'
            f"    return {expr.format(x=arg)}\n```\n"
            f"For the example it returns `{fn_value(example)}`."
        )
        rows.append({"prompt": prompt, "response": response})
    return rows


def build_full_assets(
    out: Path, source: Path | None, params: dict[str, Any], progress: ProgressFn | None = None
) -> None:
    """Fill ``out`` with ``base_model/``, ``llm-foundry/`` and ``data_pool.jsonl``."""
    say = progress or (lambda _m: None)
    src = Path(source) if source is not None else None
    if src is not None and not src.is_dir():
        raise AssetsError(f"--source {src} is not a directory")

    say("optimize_llm_foundry (full): the base model")
    if src is not None and (src / MODEL_DIR).is_dir():
        check_model_dir(src / MODEL_DIR)
        shutil.copytree(src / MODEL_DIR, out / "base_model", ignore=_ignore_git)
    else:
        _download_model(str(params["model_id"]), out / "base_model")
        check_model_dir(out / "base_model")

    say("optimize_llm_foundry (full): llm-foundry")
    if src is not None and (src / FOUNDRY_DIR).is_dir():
        check_foundry_dir(src / FOUNDRY_DIR)
        shutil.copytree(src / FOUNDRY_DIR, out / FOUNDRY_DIR, ignore=_ignore_git)
    else:
        _clone_foundry(out / FOUNDRY_DIR)
        check_foundry_dir(out / FOUNDRY_DIR)

    say("optimize_llm_foundry (full): the training data pool")
    need = int(params["pool_rows"])
    if src is not None and (src / "train_data.jsonl").is_file():
        try:
            rows = task_data.read_jsonl(src / "train_data.jsonl")
        except ValueError as e:
            raise AssetsError(str(e)) from None
        if len(rows) < need:
            raise AssetsError(
                f"{src / 'train_data.jsonl'} has {len(rows)} rows; the task needs {need} "
                f"({params['train_rows']} visible, the rest held out for scoring)"
            )
    else:
        rows = code_rows(need, POOL_SEED)
    task_data.write_jsonl(rows, out / "data_pool.jsonl")


def _ignore_git(_dir: str, names: list[str]) -> list[str]:
    return [n for n in names if n in (".git", "__pycache__")]


def _download_model(model_id: str, dest: Path) -> None:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise AssetsError(
            f"the full scale needs {model_id}: pass --source DIR with DIR/{MODEL_DIR}/ (a Hugging "
            "Face model directory), or `pip install huggingface_hub` on a machine with network"
        ) from None
    try:
        snapshot_download(model_id, local_dir=str(dest))
    except Exception as e:
        raise AssetsError(
            f"downloading {model_id} failed ({type(e).__name__}: {e}); pass --source DIR with "
            f"DIR/{MODEL_DIR}/ instead"
        ) from None


def _clone_foundry(dest: Path) -> None:
    try:
        subprocess.run(
            ["git", "clone", "--depth", "1", FOUNDRY_URL, str(dest)],
            check=True,
            capture_output=True,
            timeout=600,
        )
    except (OSError, subprocess.SubprocessError) as e:
        raise AssetsError(
            f"cloning {FOUNDRY_URL} failed ({type(e).__name__}); pass --source DIR with "
            f"DIR/{FOUNDRY_DIR}/ (an llm-foundry checkout) instead"
        ) from None
    shutil.rmtree(dest / ".git", ignore_errors=True)

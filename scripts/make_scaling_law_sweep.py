"""Compute ScalingLaw's mini-scale ground truth: the loss along the target budget's iso-FLOP line.

For each ``max_iters`` of the sweep, ``n_embd`` is solved from the target budget (rounded to a
multiple of ``n_head``) and the task's own ``train.py`` (from a freshly populated mini workspace,
so the code and the data are exactly what the agent gets) trains the model once per seed. Runs go
to a pool of single-threaded worker processes. The result, with how it was made (seeds, machine,
torch version, wall time), is written as JSON; the task's scorer reads the mean loss per point.

    python scripts/make_scaling_law_sweep.py                 # the shipped sweep (~15-30 min)
    python scripts/make_scaling_law_sweep.py --iters 100 400 --seeds 1 --out /tmp/s.json
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime
import importlib.util
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_OUT = (
    Path(__file__).resolve().parent.parent
    / "rebench_gym"
    / "tasks"
    / "scaling_law"
    / "data"
    / "mini_sweep.json"
)
_TRAIN: Any = None


def _load_train(workspace: str) -> Any:
    global _TRAIN
    if _TRAIN is None:
        spec = importlib.util.spec_from_file_location("sweep_train", Path(workspace) / "train.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _TRAIN = module
    return _TRAIN


def _one_run(workspace: str, overrides: dict[str, Any]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    train = _load_train(workspace)
    cfg = train.load_config([str(Path(workspace) / "example_config.py")])
    cfg.update(overrides)
    return dict(train.run(cfg, log=False))


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or the platform's processor string)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    from rebench_gym.tasks import get_task
    from rebench_gym.tasks.scaling_law.task import ScalingLawTask, n_embd_for_budget

    task = get_task("scaling_law")
    assert isinstance(task, ScalingLawTask)
    params = task.spec.scale("mini").params
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, nargs="+", default=list(params["sweep_iters"]))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(params["sweep_seeds"]))
    parser.add_argument("--budget", type=float, default=float(params["target_flops"]))
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (1 thread each)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--cache", type=Path, default=None, help="asset cache (default: user's)")
    parser.add_argument(
        "--runs",
        type=Path,
        default=None,
        help="JSON-lines file of finished runs: appended as runs finish, reused when rerun",
    )
    parser.add_argument(
        "--only-finished",
        action="store_true",
        help="train nothing: write the sweep from the finished runs in --runs (a point keeps "
        "the seeds that finished)",
    )
    parser.add_argument("--note", default="", help="free text stored with how the sweep was made")
    args = parser.parse_args(argv)

    from rebench_gym.cache import cache_root

    cache = cache_root(str(args.cache) if args.cache else None)
    task.prepare_assets("mini", cache, progress=lambda m: print(m, file=sys.stderr))
    fixed = task.fixed_shape("mini")
    started = time.time()
    results: dict[tuple[int, int], dict[str, Any]] = {}
    runs_file = args.runs or args.out.with_suffix(".runs.jsonl")
    if runs_file.exists():
        for line in runs_file.read_text().splitlines():
            if line.strip():
                run = json.loads(line)
                if run.get("target_flops") == args.budget:
                    results[(run["max_iters"], run["seed"])] = run
    with tempfile.TemporaryDirectory(prefix="scaling-sweep-") as tmp:
        workspace = Path(tmp) / "workspace"
        workspace.mkdir()
        task.populate_workspace(workspace, "mini", cache)
        jobs = []
        for iters in args.iters:
            n_embd = n_embd_for_budget(args.budget, iters, fixed)
            for seed in args.seeds:
                overrides = {"n_embd": n_embd, "max_iters": iters, "seed": seed}
                if (iters, seed) not in results:
                    jobs.append((iters, seed, {**overrides, "flop_cap": 2 * args.budget}))
        # one whole seed first (a complete curve early), longest runs first within a seed
        jobs.sort(key=lambda j: (j[1], -j[0]))
        if args.only_finished:
            jobs = []
        with cf.ProcessPoolExecutor(max_workers=args.jobs) as pool:
            futures = {
                pool.submit(_one_run, str(workspace), overrides): (iters, seed)
                for iters, seed, overrides in jobs
            }
            for fut in cf.as_completed(futures):
                iters, seed = futures[fut]
                res = {**fut.result(), "target_flops": args.budget}
                results[(iters, seed)] = res
                with runs_file.open("a") as fh:
                    fh.write(json.dumps(res) + "\n")
                print(
                    f"max_iters {iters:6d} n_embd {res['n_embd']:4d} seed {seed} "
                    f"val loss {res['val_loss']:.4f} ({res['train_seconds']:.0f} s)",
                    flush=True,
                )
    points = []
    for iters in sorted(args.iters):
        seeds = [s for s in args.seeds if (iters, s) in results]
        if not seeds:
            raise SystemExit(f"no finished run for max_iters {iters}")
        runs = [results[(iters, s)] for s in seeds]
        losses = [r["val_loss"] for r in runs]
        points.append(
            {
                "max_iters": iters,
                "n_embd": runs[0]["n_embd"],
                "flops": runs[0]["flops"],
                "losses": {str(s): round(v, 5) for s, v in zip(seeds, losses, strict=True)},
                "loss": round(sum(losses) / len(losses), 5),
                "train_seconds": [r["train_seconds"] for r in runs],
            }
        )
    import torch

    best = min(points, key=lambda p: p["loss"])
    data = {
        "task": "scaling_law",
        "scale": "mini",
        "task_version": task.spec.version,
        "target_flops": args.budget,
        "fixed": fixed,
        "points": points,
        "optimum": {k: best[k] for k in ("max_iters", "n_embd", "loss")},
        "how": {
            "script": "scripts/make_scaling_law_sweep.py",
            "command": " ".join(
                [
                    "python",
                    "scripts/make_scaling_law_sweep.py",
                    *(sys.argv[1:] if argv is None else argv),
                ]
            ),
            "seeds": args.seeds,
            "n_embd": "sqrt(target_flops / (n_layer*12*6*block_size*batch_size*max_iters)), "
            "rounded to a multiple of n_head",
            "loss": "mean over seeds of train.py's final validation loss",
            "workers": args.jobs,
            "threads_per_worker": 1,
            "wall_seconds": round(time.time() - started, 1),
            "train_seconds_total": round(sum(r["train_seconds"] for r in results.values()), 1),
            "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {cpu_model()}",
            "python": platform.python_version(),
            "torch": torch.__version__,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "note": args.note,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {args.out}: optimum {data['optimum']}, {data['how']['wall_seconds']:.0f} s")
    if not all(math.isfinite(p["loss"]) for p in points):
        print("warning: some runs diverged", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

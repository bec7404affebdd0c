"""Full-scale GPU check: scores at full scale on one H100/H200 beside the paper's anchors.

Usage::

    python benchmarks/full_scale_gpu.py [--sandbox local|docker] [--cache-dir DIR] [--json]

What it scores, each through the real environment (``gym.make(..., scale="full")``) and its
real scorer:

* OptimizeKernel: the starting solution and the reference solution (input length 1e8);
* FixEmbedding: the starting solution (the corrupted model, as the workspace holds it); this
  needs the full-scale assets prepared in the cache beforehand (``rebench assets prepare
  RE-Bench/FixEmbedding-v0 --scale full --source DIR``); without them the row says so and is
  skipped, nothing is downloaded.

Each row prints the raw score next to the paper's anchor for the same solution and the score
normalized against the paper's anchors (start 0, reference 1). The kernel task's full-scale
anchors are calibrated on the machine (the sandboxed timing adds a pipe round trip and a small
input patch inside the clock; see rebench_gym/tasks/optimize_kernel/task.yaml), so the gap
between the raw scores here and the paper's shows how comparable the paper's anchors are.

The whole check stops after 8 minutes (what has been scored is printed). It needs a CUDA GPU
and exits with status 2 and a message when there is none; tests and CI never run it. The
default sandbox is ``local``, the one provider here that sees the GPU without a container
(bubblewrap gives the sandbox a minimal /dev without the NVIDIA devices).
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
from typing import Any

LIMIT_S = 8 * 60
KERNEL = "RE-Bench/OptimizeKernel-v0"
FIX_EMBEDDING = "RE-Bench/FixEmbedding-v0"
#: the paper's anchors (ln ms; ln(loss - 1.5)), appendix B and the original tasks' metadata
PAPER = {
    KERNEL: {"start": 1.56, "reference": 0.47},
    FIX_EMBEDDING: {"start": 2.2, "reference": 0.26},
}


class OutOfTime(Exception):
    pass


def gpu_or_exit() -> str:
    """The GPU's name, or exit with status 2 saying why nothing runs."""
    try:
        import torch
    except ImportError:
        print("full_scale_gpu: torch is not installed; nothing was run.", file=sys.stderr)
        raise SystemExit(2) from None
    if not torch.cuda.is_available():
        print(
            "full_scale_gpu: no CUDA GPU is visible (torch.cuda.is_available() is False); this "
            "check needs one H100 or H200. Nothing was run.",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return f"{torch.cuda.get_device_name(0)} (torch {torch.__version__})"


def score_once(env_id: str, files: dict[str, bytes], args: argparse.Namespace) -> dict[str, Any]:
    """Reset a full-scale env, write ``files`` into solution/, score once."""
    import gymnasium as gym

    from rebench_gym import actions

    paper = PAPER[env_id]
    kwargs: dict[str, Any] = {"anchors": (paper["start"], paper["reference"])}
    if args.cache_dir:
        kwargs["cache_dir"] = args.cache_dir
    env = gym.make(env_id, scale="full", sandbox=args.sandbox, **kwargs)
    began = time.monotonic()
    try:
        env.reset()
        for rel, content in files.items():
            env.step(actions.write_file(f"solution/{rel}", content.decode()))
        _, _, _, _, info = env.step("score")
        return {**info["score"], "seconds": round(time.monotonic() - began, 1)}
    finally:
        env.close()


def rows_to_run() -> list[tuple[str, str, Any]]:
    from rebench_gym.tasks import get_task

    kernel = get_task("optimize_kernel")
    return [
        (KERNEL, "start", lambda: {}),
        (KERNEL, "reference", lambda: kernel.reference_files("full")),
        (FIX_EMBEDDING, "start", lambda: {}),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sandbox", default="local", choices=["local", "docker", "bwrap"])
    parser.add_argument("--cache-dir", default=None, help="the asset cache (default: rebench's)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    device = gpu_or_exit()
    began = time.monotonic()

    def out_of_time(*_: Any) -> None:
        raise OutOfTime

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(LIMIT_S)
    results: list[dict[str, Any]] = []
    try:
        for env_id, solution, files in rows_to_run():
            row: dict[str, Any] = {"id": env_id, "solution": solution}
            row["paper"] = PAPER[env_id][solution]
            try:
                row.update(score_once(env_id, files(), args))
            except OutOfTime:
                raise
            except Exception as e:  # a missing asset, a failed start: report and go on
                row.update(valid=False, raw=None, message=f"not scored: {type(e).__name__}: {e}")
            results.append(row)
            if not args.json:
                print(format_row(row), flush=True)
    except OutOfTime:
        print(f"full_scale_gpu: stopped at the {LIMIT_S} s limit", file=sys.stderr)
    finally:
        signal.alarm(0)
    report = {"device": device, "seconds": round(time.monotonic() - began, 1), "rows": results}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"device: {device}; {report['seconds']} s in all")
    complete = len(results) == len(rows_to_run())
    return 0 if complete and all(r.get("valid") for r in results) else 1


def format_row(row: dict[str, Any]) -> str:
    raw = row.get("raw")
    norm = row.get("normalized")
    raw_text = "-" if raw is None or (isinstance(raw, float) and math.isnan(raw)) else f"{raw:.3f}"
    norm_text = "-" if norm is None else f"{norm:.2f}"
    return (
        f"{row['id']:<28} {row['solution']:<10} raw {raw_text:>7}  paper {row['paper']:>5}  "
        f"normalized (paper anchors) {norm_text:>5}  {row.get('seconds', '-')} s  "
        f"{'valid' if row.get('valid') else 'INVALID'}: {str(row.get('message', ''))[:160]}"
    )


if __name__ == "__main__":
    sys.exit(main())

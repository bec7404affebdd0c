"""Full-scale reference: iso-FLOP profiles at the experiment budget and below, power laws,
extrapolation to the target (the procedure of the mini reference, sized for 6 GPUs).

1. For four budgets (1/8, 1/4, 1/2 and 1 times the experiment cap ``flop_cap`` of
   ``example_config.py``), train runs whose ``max_iters`` lie on a geometric grid and whose
   ``n_embd`` spends that budget (one run per GPU at a time; two single-thread runs on a CPU).
2. For each budget fit a parabola to loss against log(max_iters): its vertex is that budget's
   optimal run length and loss.
3. Fit power laws across budgets (log optimal max_iters, and log (optimal loss - floor), linear
   in log budget) and extrapolate both to the target budget (``--target-ratio`` times the cap:
   the task's 5e17 / 1e16 = 50); ``n_embd`` follows from the FLOP formula.
4. Write ``solution/answer.json``.

    python solution/fit_scaling_law.py [--iters 250,500,...] [--loss-floor F] [--workers N]
"""

import argparse
import concurrent.futures as cf
import importlib.util
import json
import math
import multiprocessing as mp
import sys
from pathlib import Path

import numpy as np

HOME = Path(__file__).resolve().parent.parent
CONFIG = HOME / "example_config.py"
BUDGET_FRACTIONS = (1 / 8, 1 / 4, 1 / 2, 1.0)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--iters", default="1000,2000,4000,8000,16000,32000",
                   help="the max_iters grid of every budget (runs narrower than n_head skipped)")
    p.add_argument("--target-ratio", type=float, default=50.0, help="target budget / flop_cap")
    p.add_argument("--loss-floor", type=float, default=1.5,
                   help="the irreducible loss the power law is fitted above")
    p.add_argument("--workers", type=int, default=0, help="0: one per GPU, else 2 on a CPU")
    args = p.parse_args(argv)
    args.iters = [int(x) for x in args.iters.split(",")]
    return args


def load_train():
    spec = importlib.util.spec_from_file_location("train", HOME / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_DEVICE = "cpu"


def init_worker(devices):
    """Give this worker process its own device (one GPU each, or the CPU)."""
    global _DEVICE
    _DEVICE = devices.get()


def one_run(n_embd, max_iters):
    import torch

    torch.set_num_threads(1)
    train = load_train()
    cfg = train.load_config([str(CONFIG)])
    device = _DEVICE if str(cfg["device"]).startswith("cuda") else str(cfg["device"])
    cfg.update(n_embd=n_embd, max_iters=max_iters, seed=1, device=device)
    if device.startswith("cuda"):
        torch.cuda.set_device(device)
    return train.run(cfg, log=False)


def main(argv=None):
    args = parse_args(argv)
    train = load_train()
    cfg = train.load_config([str(CONFIG)])
    per_iter = train.training_flops({**cfg, "n_embd": 1, "max_iters": 1})
    cap = float(cfg["flop_cap"])
    target = args.target_ratio * cap
    head = int(cfg["n_head"])
    jobs = []
    for frac in BUDGET_FRACTIONS:
        budget = frac * cap
        for max_iters in args.iters:
            n_embd = head * int(math.sqrt(budget / (per_iter * max_iters)) / head)
            if n_embd >= head:
                jobs.append((budget, n_embd, int(budget / (per_iter * n_embd**2))))
    jobs.sort(key=lambda j: -j[2])  # longest first: the workers finish together
    if str(cfg["device"]).startswith("cuda"):
        import torch

        gpus = torch.cuda.device_count()
        devices = [f"cuda:{i}" for i in range(gpus)]
    else:
        devices = ["cpu", "cpu"]
    workers = args.workers or len(devices)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    for i in range(workers):
        queue.put(devices[i % len(devices)])
    with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=init_worker,
                                initargs=(queue,)) as pool:
        runs = list(pool.map(one_run, [j[1] for j in jobs], [j[2] for j in jobs]))
    by_budget = {}
    for (budget, n_embd, max_iters), run in zip(jobs, runs):
        print(f"budget {budget:.2e} n_embd {n_embd} max_iters {max_iters} "
              f"loss {run['val_loss']:.4f}", flush=True)
        by_budget.setdefault(budget, []).append((math.log(max_iters), run["val_loss"]))
    log_c, log_iters, log_excess = [], [], []
    for budget, pts in sorted(by_budget.items()):
        x, y = np.array(pts).T
        a, b, c = np.polyfit(x, y, 2) if len(pts) >= 3 else (0.0, 0.0, 0.0)
        if a > 0:  # a proper minimum: the parabola's vertex
            x_opt = float(np.clip(-b / (2 * a), x.min(), x.max()))
            y_opt = float(np.polyval([a, b, c], x_opt))
        else:
            x_opt, y_opt = float(x[np.argmin(y)]), float(y.min())
        print(f"budget {budget:.2e}: optimal max_iters {math.exp(x_opt):.0f} loss {y_opt:.4f}")
        log_c.append(math.log(budget))
        log_iters.append(x_opt)
        log_excess.append(math.log(max(y_opt - args.loss_floor, 1e-3)))
    slope_i, icpt_i = np.polyfit(log_c, log_iters, 1)
    slope_l, icpt_l = np.polyfit(log_c, log_excess, 1)
    max_iters = int(round(math.exp(icpt_i + slope_i * math.log(target))))
    n_embd = max(head, head * round(math.sqrt(target / (per_iter * max_iters)) / head))
    max_iters = int(round(target / (per_iter * n_embd**2)))  # spend exactly the budget
    loss = args.loss_floor + math.exp(icpt_l + slope_l * math.log(target))
    answer = {"n_embd": int(n_embd), "max_iters": max_iters, "loss_prediction": round(loss, 4)}
    (HOME / "solution" / "answer.json").write_text(json.dumps(answer))
    print("answer", answer, f"(iters ~ C^{slope_i:.2f}, loss-floor ~ C^{slope_l:.2f})")


if __name__ == "__main__":
    sys.exit(main())

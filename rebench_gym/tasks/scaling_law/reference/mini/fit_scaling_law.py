"""Reference solution: iso-FLOP profiles at small budgets, power laws, extrapolation.

1. For four budgets up to the experiment cap, train a handful of widths whose ``max_iters`` use
   exactly that budget (two runs at a time, one CPU thread each; about 20 runs).
2. For each budget fit a parabola to loss against log(max_iters): its vertex is that budget's
   optimal run length and loss.
3. Fit power laws across budgets (log optimal max_iters and log (optimal loss - floor) linear in
   log budget) and extrapolate both to the target budget; n_embd follows from the FLOP formula.
4. Write ``solution/answer.json``.
"""

import concurrent.futures as cf
import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np

HOME = Path(__file__).resolve().parent.parent
CONFIG = HOME / "example_config.py"
BUDGET_FRACTIONS = (1 / 8, 1 / 4, 1 / 2, 1.0)
WIDTHS = (2, 4, 6, 8, 12, 16)  # trained at each budget when 10 <= max_iters <= 2500
LOSS_FLOOR = 1.0  # below the corpus's reachable loss; the power law is fitted above it


def load_train():
    spec = importlib.util.spec_from_file_location("train", HOME / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def one_run(n_embd, max_iters):
    import torch

    torch.set_num_threads(1)
    train = load_train()
    cfg = train.load_config([str(CONFIG)])
    cfg.update(n_embd=n_embd, max_iters=max_iters, seed=1)
    return train.run(cfg, log=False)


def main():
    train = load_train()
    cfg = train.load_config([str(CONFIG)])
    per_iter = train.training_flops({**cfg, "n_embd": 1, "max_iters": 1})
    cap = float(cfg["flop_cap"])
    target = 50 * cap
    head = int(cfg["n_head"])
    jobs = []
    for frac in BUDGET_FRACTIONS:
        budget = frac * cap
        for n_embd in WIDTHS:
            max_iters = int(budget / (per_iter * n_embd**2))
            if n_embd % head == 0 and 10 <= max_iters <= 2500:
                jobs.append((budget, n_embd, max_iters))
    jobs.sort(key=lambda j: -j[2])  # longest first: the two workers finish together
    with cf.ProcessPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(one_run, [j[1] for j in jobs], [j[2] for j in jobs]))
    by_budget = {}
    for (budget, n_embd, max_iters), run in zip(jobs, runs):
        print(f"budget {budget:.2e} n_embd {n_embd} max_iters {max_iters} loss {run['val_loss']:.4f}")
        by_budget.setdefault(budget, []).append((math.log(max_iters), run["val_loss"]))
    log_c, log_iters, log_excess = [], [], []
    for budget, pts in sorted(by_budget.items()):
        x, y = np.array(pts).T
        a, b, c = np.polyfit(x, y, 2)
        if a > 0:  # a proper minimum: the parabola's vertex
            x_opt = float(np.clip(-b / (2 * a), x.min(), x.max()))
            y_opt = float(np.polyval([a, b, c], x_opt))
        else:
            x_opt, y_opt = float(x[np.argmin(y)]), float(y.min())
        print(f"budget {budget:.2e}: optimal max_iters {math.exp(x_opt):.0f} loss {y_opt:.4f}")
        log_c.append(math.log(budget))
        log_iters.append(x_opt)
        log_excess.append(math.log(max(y_opt - LOSS_FLOOR, 1e-3)))
    slope_i, icpt_i = np.polyfit(log_c, log_iters, 1)
    slope_l, icpt_l = np.polyfit(log_c, log_excess, 1)
    max_iters = int(round(math.exp(icpt_i + slope_i * math.log(target))))
    n_embd = max(head, head * round(math.sqrt(target / (per_iter * max_iters)) / head))
    max_iters = int(round(target / (per_iter * n_embd**2)))  # spend exactly the budget
    loss = LOSS_FLOOR + math.exp(icpt_l + slope_l * math.log(target))
    answer = {"n_embd": int(n_embd), "max_iters": max_iters, "loss_prediction": round(loss, 4)}
    (HOME / "solution" / "answer.json").write_text(json.dumps(answer))
    print("answer", answer, f"(iters ~ C^{slope_i:.2f}, loss-floor ~ C^{slope_l:.2f})")


if __name__ == "__main__":
    sys.exit(main())

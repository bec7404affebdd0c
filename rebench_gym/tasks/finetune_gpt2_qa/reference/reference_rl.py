"""Reference solution: best-of-k sampling with single-elimination judging, then SFT on the
winners, for several rounds (the original's recipe: best-of-8, 16x more prompts than the
starting solution, 4 rounds of SFT; smaller at mini scale). At full scale it uses
14,336 judge comparisons (4 rounds x 512 instructions x 7 matches).

Run from the workspace root: python solution/reference_rl.py
"""

import random
import sys
import time
from pathlib import Path

import torch

HOME = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HOME))
import chat  # noqa: E402
from evaluation import budget, compare_many  # noqa: E402

SETTINGS = {
    "mini": {"rounds": 3, "prompts": 469, "k": 4, "steps": 60, "lr": 3e-4, "device": "cpu"},
    # on CPU where no GPU is present (the full-scale rehearsal runs this file on CPU)
    "full": {"rounds": 4, "prompts": 512, "k": 8, "steps": 200, "lr": 1e-5,
             "device": "cuda" if torch.cuda.is_available() else "cpu"},
}[chat.FORMAT.get("scale", "mini")]
ROUNDS, PROMPTS, K = SETTINGS["rounds"], SETTINGS["prompts"], SETTINGS["k"]
STEPS, LR, DEVICE = SETTINGS["steps"], SETTINGS["lr"], SETTINGS["device"]


def tournament(instructions, candidates):
    """Single elimination: pairs of candidates meet until one per instruction is left."""
    alive = [list(c) for c in candidates]
    while len(alive[0]) > 1:
        matches = []
        for n, (ins, cands) in enumerate(zip(instructions, alive)):
            for j in range(0, len(cands) - 1, 2):
                matches.append((n, j, (ins, cands[j], cands[j + 1])))
        verdicts = compare_many([m[2] for m in matches])
        nxt = [[] for _ in alive]
        for (n, j, _), v in zip(matches, verdicts):
            nxt[n].append(alive[n][j + 1] if v == "b" else alive[n][j])
        for n, cands in enumerate(alive):
            if len(cands) % 2:
                nxt[n].append(cands[-1])
        alive = nxt
    return [c[0] for c in alive]


def main():
    start = time.time()
    tok = chat.load_tokenizer()
    model = chat.load_checkpoint(HOME / "solution" / "model.pt").to(DEVICE)
    pool = chat.train_instructions()
    rng = random.Random(0)
    for r in range(ROUNDS):
        instructions = rng.sample(pool, min(PROMPTS, len(pool)))
        samples = [
            chat.respond(model, tok, instructions, seed=100 * r + k, device=DEVICE)
            for k in range(K)
        ]
        candidates = [list(c) for c in zip(*samples)]
        winners = tournament(instructions, candidates)
        pairs = list(zip(instructions, winners))
        loss = chat.sft(model, tok, pairs, steps=STEPS, lr=LR, seed=r, device=DEVICE)
        print(f"round {r}: SFT on {len(winners)} winners, loss {loss:.3f}, "
              f"{time.time() - start:.0f} s, judge {budget()}", flush=True)
    chat.save_checkpoint(model.cpu(), HOME / "solution" / "model.pt")
    print(f"saved solution/model.pt in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()

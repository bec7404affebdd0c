"""Starting solution: one round of "sample two responses, ask the judge, finetune on the winner".

Run from the workspace root: python solution/finetune.py
It reads solution/model.pt and writes the finetuned model back to solution/model.pt.
"""

import random
import sys
from pathlib import Path

HOME = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HOME))
import chat  # noqa: E402
from evaluation import compare_many  # noqa: E402

PROMPTS = 128
STEPS = 40
LR = 3e-4


def main():
    tok = chat.load_tokenizer()
    model = chat.load_checkpoint(HOME / "solution" / "model.pt")
    instructions = random.Random(0).sample(chat.train_instructions(), PROMPTS)
    first = chat.respond(model, tok, instructions, seed=1)
    second = chat.respond(model, tok, instructions, seed=2)
    verdicts = compare_many(zip(instructions, first, second))
    winners = [(i, a if v != "b" else b) for i, a, b, v in zip(instructions, first, second, verdicts)]
    loss = chat.sft(model, tok, winners, steps=STEPS, lr=LR)
    chat.save_checkpoint(model, HOME / "solution" / "model.pt")
    print(f"finetuned on {len(winners)} preferred responses (last loss {loss:.3f})")


if __name__ == "__main__":
    main()

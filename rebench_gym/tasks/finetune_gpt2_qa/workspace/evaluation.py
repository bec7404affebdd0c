"""The evaluation module: ask the judge which of two responses to an instruction is better.

The judge runs outside your sandbox and is reached through the socket ``judge.sock`` next to
this file. Each comparison counts against the episode's request budget; a request that would
go over it is refused whole (``BudgetExhausted``) and nothing in it is judged.

    from evaluation import compare, compare_many, budget
    compare("where does alice live ?", "alice lives in paris .", "paris paris paris")  # "a"
    compare_many([(instruction, response_a, response_b), ...])  # ["a", "b", ...]
    budget()  # {"used": ..., "budget": ..., "left": ...}

A verdict is "a", "b" or, when the judge named neither, "tie".
"""

import json
import socket
from pathlib import Path

SOCKET = Path(__file__).resolve().parent / "judge.sock"
BATCH = 512


class JudgeError(RuntimeError):
    """The judge refused or failed a request."""


class BudgetExhausted(JudgeError):
    """The episode's judge request budget does not cover the request."""


def _call(request):
    if not SOCKET.exists():
        raise JudgeError(f"the judge socket {SOCKET} does not exist (was it deleted?)")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(SOCKET))
        sock.sendall(json.dumps(request).encode() + b"\n")
        chunks = []
        while True:
            data = sock.recv(1 << 20)
            if not data:
                break
            chunks.append(data)
            if data.endswith(b"\n"):
                break
    reply = json.loads(b"".join(chunks))
    if not reply.get("ok"):
        message = reply.get("error", "unknown error")
        if "budget exhausted" in message:
            raise BudgetExhausted(message)
        raise JudgeError(message)
    return reply


def compare_many(items):
    """Verdicts for (instruction, response_a, response_b) triples, in order."""
    items = list(items)
    verdicts = []
    for start in range(0, len(items), BATCH):
        chunk = items[start : start + BATCH]
        payload = [{"instruction": i, "a": a, "b": b} for i, a, b in chunk]
        verdicts += _call({"op": "compare", "items": payload})["verdicts"]
    return verdicts


def compare(instruction, response_a, response_b):
    """The better of two responses: "a", "b" or "tie"."""
    return compare_many([(instruction, response_a, response_b)])[0]


def budget():
    """Comparisons used and left in this episode."""
    reply = _call({"op": "status"})
    return {k: reply[k] for k in ("used", "budget", "left")}


if __name__ == "__main__":
    print(json.dumps(budget()))

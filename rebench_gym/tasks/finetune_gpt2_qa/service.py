"""The judge service: the agent's only way to reach the judge, with a request budget.

A host-side thread serves newline-delimited JSON on a Unix domain socket inside the workspace
(``judge.sock``), the one place every sandbox provider shares with the agent, network or not.
The judge itself (the mini rules, or the full scale's endpoint and key) stays in this process;
the workspace's ``evaluation.py`` is a thin client.

Protocol: one JSON object per line each way.

* ``{"op": "compare", "items": [{"instruction": ..., "a": ..., "b": ...}, ...]}`` ->
  ``{"ok": true, "verdicts": ["a" | "b" | "tie", ...], "used": n, "budget": N}``;
* ``{"op": "status"}`` -> ``{"ok": true, "used": n, "budget": N, "left": N - n}``;
* anything else, or a request beyond the budget -> ``{"ok": false, "error": "..."}``.

A request that would exceed the budget is refused whole (nothing is judged or counted). With
``allowed_instructions`` (the mini scale: the agent's training instructions), a request with an
instruction outside that set is refused whole as well: nothing is judged or charged, and the
refused comparisons are counted in ``info()["refused_instructions"]``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socketserver
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

SOCKET_NAME = "judge.sock"
MAX_LINE_BYTES = 16 * 1024**2
MAX_ITEMS = 1024
MAX_TEXT_CHARS = 20_000


class Backend(Protocol):
    """What the service asks: verdicts for (instruction, a, b) triples."""

    def compare_many(self, items: Sequence[tuple[str, str, str]]) -> list[str]: ...

    def usage(self) -> dict[str, int]: ...


class JudgeService:
    """One episode's judge endpoint (an :class:`~rebench_gym.tasks.base.EpisodeService`)."""

    name = "judge"

    def __init__(
        self,
        backend: Backend,
        socket_path: Path,
        budget: int,
        allowed_instructions: Iterable[str] | None = None,
    ) -> None:
        """Start serving on ``socket_path``.

        Args:
            backend: the judge.
            socket_path: where the Unix socket is created (in the workspace).
            budget: comparisons the episode may request.
            allowed_instructions: if given, the only instructions the judge answers for
                (compared after stripping surrounding whitespace); ``None`` answers any.
        """
        self.backend = backend
        self.socket_path = socket_path
        self.budget = int(budget)
        self.allowed = (
            None
            if allowed_instructions is None
            else frozenset(i.strip() for i in allowed_instructions)
        )
        self.used = 0
        self.refused = 0
        self.refused_instructions = 0
        self._lock = threading.Lock()
        socket_path.unlink(missing_ok=True)
        service = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                while True:
                    line = self.rfile.readline(MAX_LINE_BYTES + 1)
                    if not line:
                        return
                    if len(line) > MAX_LINE_BYTES:
                        reply = {"ok": False, "error": f"request over {MAX_LINE_BYTES} bytes"}
                    else:
                        reply = service.handle(line)
                    try:
                        self.wfile.write(json.dumps(reply).encode() + b"\n")
                        self.wfile.flush()
                    except OSError:
                        return

        self._server = socketserver.ThreadingUnixStreamServer(str(socket_path), Handler)
        self._server.daemon_threads = True
        os.chmod(socket_path, 0o666)  # the agent may run as another user (uid 1000)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="rebench-judge", daemon=True
        )
        self._thread.start()
        self._closed = False

    # ----- requests ------------------------------------------------------------------------
    def handle(self, line: bytes) -> dict[str, Any]:
        """Answer one request line (never raises)."""
        try:
            request = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return {"ok": False, "error": "the request is not a JSON object"}
        if not isinstance(request, dict):
            return {"ok": False, "error": "the request is not a JSON object"}
        op = request.get("op")
        if op == "status":
            return {"ok": True, **self._counts()}
        if op != "compare":
            return {"ok": False, "error": f"unknown op {op!r}; use 'compare' or 'status'"}
        items, problem = _parse_items(request.get("items"))
        if problem:
            return {"ok": False, "error": problem}
        if self.allowed is not None:
            outside = [n for n, item in enumerate(items) if item[0].strip() not in self.allowed]
            if outside:
                with self._lock:
                    self.refused_instructions += len(outside)
                first = items[outside[0]][0]
                return {
                    "ok": False,
                    "error": (
                        f"{len(outside)} comparison(s) of this request (the first is item "
                        f"{outside[0]}: {first[:80]!r}) ask about an instruction that is not one "
                        "of the training instructions (data/train_instructions.jsonl); the judge "
                        "answers only for those. The request was refused and nothing was judged "
                        "or charged"
                    ),
                    **self._counts(),
                }
        with self._lock:
            left = self.budget - self.used
            if len(items) > left:
                self.refused += len(items)
                return {
                    "ok": False,
                    "error": (
                        f"judge request budget exhausted: this request asks for {len(items)} "
                        f"comparison(s) but only {left} of the episode's {self.budget} are left; "
                        "the request was refused and nothing was judged"
                    ),
                    **self._counts_locked(),
                }
            self.used += len(items)
        try:
            verdicts = self.backend.compare_many(items)
        except Exception as e:  # the endpoint failed: give the comparisons back
            with self._lock:
                self.used -= len(items)
            return {"ok": False, "error": f"the judge failed: {type(e).__name__}: {e}"}
        return {"ok": True, "verdicts": verdicts, **self._counts()}

    def _counts(self) -> dict[str, int]:
        with self._lock:
            return self._counts_locked()

    def _counts_locked(self) -> dict[str, int]:
        return {"used": self.used, "budget": self.budget, "left": self.budget - self.used}

    # ----- EpisodeService ------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """Budget and usage (JSON-serializable)."""
        with self._lock:
            out: dict[str, Any] = {
                **self._counts_locked(),
                "refused": self.refused,
                "refused_instructions": self.refused_instructions,
            }
        out.update(self.backend.usage())
        return out

    def close(self) -> None:
        """Stop serving and remove the socket; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        with contextlib.suppress(OSError):
            self.socket_path.unlink(missing_ok=True)


def _parse_items(raw: object) -> tuple[list[tuple[str, str, str]], str]:
    if not isinstance(raw, list) or not raw:
        return [], "'items' must be a non-empty list of {instruction, a, b} objects"
    if len(raw) > MAX_ITEMS:
        return [], f"at most {MAX_ITEMS} comparisons per request (got {len(raw)}); split it"
    items = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            return [], f"item {i} is not an object"
        fields = [item.get("instruction"), item.get("a"), item.get("b")]
        if not all(isinstance(f, str) for f in fields):
            return [], f"item {i} needs string fields 'instruction', 'a' and 'b'"
        if any(len(str(f)) > MAX_TEXT_CHARS for f in fields):
            return [], f"item {i} has a field over {MAX_TEXT_CHARS} characters"
        items.append((str(fields[0]), str(fields[1]), str(fields[2])))
    return items, ""

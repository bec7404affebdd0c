"""``aide``: an AIDE-style tree search over complete solutions, over any OpenAI-compatible endpoint.

Modelled on AIDE (Weco AI), the second scaffold of the RE-Bench paper. The search keeps a tree
of solution attempts (*nodes*). Each step the policy picks what to do:

* **draft** a new solution from the starting files, until ``num_drafts`` drafts exist;
* else, with probability ``debug_prob``, **debug** a failed leaf (at most ``max_debug_depth``
  debug steps in a row);
* else **improve** the best valid node (greedy).

One model call writes a node: a plan, whole files (``<write_file>``) and optionally one command
to run before scoring (``<bash>``, e.g. training that writes the solution's weights). The agent
evaluates it only through the env's actions:

1. ``solution/`` is reset to the starting files (a copy kept in ``.aide/start``) and the node's
   files (its parent's, updated by the reply) are written with ``write_file``;
2. the command runs; a non-zero exit or a timeout marks the node buggy (not scored);
3. the files are fingerprinted (``sha256sum``) and copied to ``.aide/candidate``, then the env's
   ``score`` action evaluates them: an invalid score marks the node buggy, a valid one gives its
   metric (the normalized score, ties broken by the raw score).

The copy of the best node (``.aide/best``) includes what its command produced. When the search
ends (``max_nodes`` nodes, the time budget down to ``reserve_s`` seconds, or the score-call
limit reached) the best node is restored if it is not the current state (the copy, then its
files again with ``write_file``, then the fingerprint checked) and the agent submits. The
journal (every node: stage, parent, plan, files, command output, score, fingerprint) is kept in
:attr:`AideAgent.journal` and written as JSON to ``journal_path`` after every node, if given.

Unlike the original AIDE, no second model call reads the output to judge it: the task's own
scorer is the judge, which is cheaper and cannot be talked into a wrong verdict.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Generator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rebench_gym import actions as act
from rebench_gym.agents.llm_base import (
    NOOP_ACTION,
    LLMAgentBase,
    make_client,
    status_line,
    time_left_s,
)
from rebench_gym.errors import UsageError
from rebench_gym.llm.client import ChatClient
from rebench_gym.llm.tool_calls import (
    ToolCallError,
    find_tool_calls,
    python_command,
    to_action,
    truncate_output,
)

#: where the agent keeps its copies, relative to the workspace (outside ``solution/``)
STATE_DIR = ".aide"
SETUP_COMMAND = (
    f"mkdir -p solution {STATE_DIR} && rm -rf {STATE_DIR}/start {STATE_DIR}/best "
    f"{STATE_DIR}/candidate && cp -a solution {STATE_DIR}/start && "
    "find solution -type f ! -path '*/__pycache__/*' -printf '%s\\t%p\\n' | sort -k2"
)
FINGERPRINT = (
    "find solution -type f ! -path '*/__pycache__/*' -print0 | sort -z | xargs -0 -r sha256sum"
)
TEXT_SUFFIXES = (
    ".py", ".sh", ".md", ".txt", ".yaml", ".yml", ".json", ".toml", ".cfg", ".ini", ".rs",
    ".c", ".cc", ".cpp", ".h", ".cu", ".jsonl", ".csv",
)  # fmt: skip

SYSTEM_PROMPT = """\
You are an expert machine-learning research engineer. You solve a task by a tree search over \
complete solutions: every reply of yours is one solution attempt, which is then run and scored \
by the task's official scorer. You never run commands yourself; the search does.

Reply in this format:

<plan>A few sentences: the idea of this attempt and how it is implemented.</plan>
<write_file path="solution/FILE">the COMPLETE content of the file</write_file>
(one write_file per file you change; always the whole file, never a diff or "..." elisions)
<bash timeout="SECONDS">optional: ONE command that must run before scoring, e.g. training that \
writes the solution's weights; it runs in the workspace root</bash>

Each attempt starts from the task's starting files plus the files of the attempt it builds on; \
files you do not write stay as they are. Do not ask questions, do not use <score/> or <submit/>."""

STAGE_TEXT = {
    "draft": (
        "Write a new solution. If earlier drafts are listed above, take a different approach "
        "from them. Prefer a simple, robust design that runs well within the time left."
    ),
    "debug": (
        "The attempt below failed: its output and score show why. Find the bug and fix it, "
        "keeping the approach. Rewrite every file that needs a change in full."
    ),
    "improve": (
        "The attempt below is valid with the score shown. Propose ONE specific, atomic "
        "improvement that should raise the score, and implement it. Keep what works."
    ),
}


@dataclass
class Node:
    """One solution attempt in the search tree (a row of the journal)."""

    id: int
    stage: str
    parent: int | None
    plan: str = ""
    files: dict[str, str] = field(default_factory=dict)
    wrote: list[str] = field(default_factory=list)
    run_command: str | None = None
    new_command: bool = False
    run_exit_code: int | None = None
    run_timed_out: bool = False
    output: str = ""
    score: dict[str, Any] | None = None
    buggy: bool = True
    metric: float | None = None
    raw: float | None = None
    fingerprint: str = ""
    notes: list[str] = field(default_factory=list)
    created_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class Journal:
    """The whole search: nodes in creation order, the best node, how it ended."""

    model: str
    task: str = ""
    nodes: list[Node] = field(default_factory=list)
    best: int | None = None
    start_files: dict[str, str] = field(default_factory=dict)
    start_listing: str = ""
    ended_because: str = ""
    restored: bool = False
    restore_verified: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """The journal as JSON-ready data."""
        return asdict(self)


class AideAgent(LLMAgentBase):
    """AIDE-style search: draft, debug and improve complete solutions, scored by the env.

    Args:
        model: model name (default ``$REBENCH_MODEL`` / ``$OPENAI_MODEL``).
        base_url: OpenAI-compatible API root (default ``$REBENCH_BASE_URL`` /
            ``$OPENAI_BASE_URL``, else OpenAI's API).
        api_key: key (default ``$REBENCH_API_KEY`` / ``$OPENAI_API_KEY``); prefer the variables.
        client: a ready :class:`~rebench_gym.llm.client.ChatClient` (then the three above are
            ignored).
        llm_log: a JSONL file that gets one line per model request.
        llm_options: more :class:`~rebench_gym.llm.client.LLMConfig` fields.
        num_drafts: drafts written before debugging or improving (AIDE's default: 5).
        max_nodes: nodes per episode; the search then restores the best and submits.
        debug_prob: probability of debugging a failed leaf instead of improving the best.
        max_debug_depth: debug steps in a row on one line of attempts.
        run_timeout: seconds a node's command may run (``None``: the env's command timeout).
        reserve_s: stop searching when the time budget has this many seconds left, to restore
            the best node and submit in time.
        journal_path: write the journal (JSON) here after every node; ``None``: keep it in
            :attr:`journal` only.
        max_file_chars: starting files up to this size are shown to the model (read with
            ``view`` actions); larger or binary ones are only listed.
        output_limit: command output past this many characters is cut ...
        output_keep: ... to its first and last ``output_keep`` characters.
        max_api_failures: model calls in a row that fail for good before the search ends.
        seed: seeds the policy's random choices (``reset(seed=...)`` overrides it).
    """

    name = "aide"

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        client: ChatClient | None = None,
        llm_log: str | None = None,
        llm_options: dict[str, Any] | None = None,
        num_drafts: int = 5,
        max_nodes: int = 40,
        debug_prob: float = 0.5,
        max_debug_depth: int = 3,
        run_timeout: float | None = None,
        reserve_s: float = 300.0,
        journal_path: str | os.PathLike[str] | None = None,
        max_file_chars: int = 20_000,
        output_limit: int = 5000,
        output_keep: int = 1000,
        max_api_failures: int = 3,
        seed: int | None = None,
    ) -> None:
        if num_drafts < 1 or max_nodes < 1 or max_debug_depth < 0 or max_api_failures < 1:
            raise UsageError(
                "need num_drafts >= 1, max_nodes >= 1, max_debug_depth >= 0, max_api_failures >= 1"
            )
        if not 0.0 <= debug_prob <= 1.0:
            raise UsageError(f"debug_prob must be in [0, 1], not {debug_prob!r}")
        if run_timeout is not None and run_timeout <= 0:
            raise UsageError("run_timeout must be > 0 seconds (or None)")
        if reserve_s < 0 or output_limit < 1 or output_keep < 0 or 2 * output_keep > output_limit:
            raise UsageError("need reserve_s >= 0 and 0 <= 2 * output_keep <= output_limit")
        super().__init__(
            make_client(
                client,
                model=model,
                base_url=base_url,
                api_key=api_key,
                llm_log=llm_log,
                llm_options=llm_options,
            )
        )
        self.num_drafts = num_drafts
        self.max_nodes = max_nodes
        self.debug_prob = debug_prob
        self.max_debug_depth = max_debug_depth
        self.run_timeout = run_timeout
        self.reserve_s = reserve_s
        self.journal_path = Path(journal_path) if journal_path is not None else None
        self.max_file_chars = max_file_chars
        self.output_limit = output_limit
        self.output_keep = output_keep
        self.max_api_failures = max_api_failures
        self._seed = seed
        self._rng = random.Random(seed)
        self.journal = Journal(model=self.client.config.model)
        self._plan: Generator[str, tuple[dict[str, str], dict[str, Any]], None] | None = None
        self._started = time.monotonic()

    # ----- Agent protocol -----------------------------------------------------------------------
    def reset(self, *, seed: int | None = None) -> None:
        """Start a new search (a new journal; ``seed`` seeds the policy)."""
        self._rng = random.Random(self._seed if seed is None else seed)
        self.journal = Journal(model=self.client.config.model)
        self._plan = None
        self._started = time.monotonic()
        self._reset_usage()

    def act(self, observation: dict[str, str], info: dict[str, Any]) -> str:
        """The next action of the search."""
        try:
            if self._plan is None:
                self._plan = self._search(observation, info)
                return next(self._plan)
            return self._plan.send((observation, info))
        except StopIteration:
            return act.submit()

    # ----- the search, as a generator of actions --------------------------------------------------
    def _search(
        self, observation: dict[str, str], info: dict[str, Any]
    ) -> Generator[str, tuple[dict[str, str], dict[str, Any]], None]:
        journal = self.journal
        journal.task = str(info.get("task", ""))
        instructions = observation.get("terminal", "")
        obs, info = yield act.bash(SETUP_COMMAND)
        listing = _body(obs.get("terminal", ""))
        journal.start_listing = listing
        for size, path in _listing(listing):
            if size <= self.max_file_chars and path.endswith(TEXT_SUFFIXES):
                obs, info = yield act.view(path)
                if not info.get("action_error"):
                    journal.start_files[path] = _strip_line_numbers(obs.get("terminal", ""))
        failures = 0
        current: Node | None = None  # the node whose files solution/ holds now
        promote = False  # .aide/candidate holds the best node: move it to .aide/best next time
        while True:
            if len(journal.nodes) >= self.max_nodes:
                journal.ended_because = f"max_nodes ({self.max_nodes}) reached"
                break
            left = time_left_s(info)
            if left is not None and left < self.reserve_s:
                journal.ended_because = (
                    f"time budget: {left:.0f} s left (reserve {self.reserve_s} s)"
                )
                break
            if _score_calls_left(info) == 0:
                journal.ended_because = "no score calls left"
                break
            stage, parent = self._select()
            result = self._chat(self._messages(stage, parent, instructions, info))
            if result is None:
                failures += 1
                if failures >= self.max_api_failures:
                    journal.ended_because = f"model calls failed: {self.last_error}"
                    break
                obs, info = yield NOOP_ACTION  # a step, so the budgets are checked
                continue
            failures = 0
            node = self._new_node(stage, parent, result.text)
            node.prompt_tokens = result.prompt_tokens
            node.completion_tokens = result.completion_tokens
            journal.nodes.append(node)
            if not node.wrote and not node.new_command:
                node.notes.append("the reply held no <write_file> and no <bash>: nothing to run")
                node.output = "Your reply held no <write_file> and no <bash> block."
                self._save()
                obs, info = yield NOOP_ACTION
                continue
            # 1. materialize: starting files + this node's files
            restore = f"rm -rf solution && cp -a {STATE_DIR}/start solution"
            if promote:
                restore = (
                    f"rm -rf {STATE_DIR}/best && mv {STATE_DIR}/candidate {STATE_DIR}/best && "
                    + restore
                )
                promote = False
            obs, info = yield act.bash(restore)
            current = node
            written = True
            for path, content in node.files.items():
                obs, info = yield act.write_file(path, content)
                if info.get("action_error"):
                    node.notes.append(f"writing {path} failed: {obs.get('terminal', '')}")
                    node.output = obs.get("terminal", "")
                    written = False
                    break
            # 2. run its command
            if written and node.run_command is not None:
                obs, info = yield act.bash(node.run_command, self.run_timeout)
                node.run_exit_code = info.get("exit_code")
                node.run_timed_out = bool(info.get("timed_out"))
                node.output = truncate_output(
                    obs.get("terminal", ""), self.output_limit, self.output_keep
                )
            if not written or node.run_timed_out or node.run_exit_code not in (None, 0):
                node.buggy = True
                self._save()
                continue
            # 3. fingerprint, keep a copy, score
            obs, info = yield act.bash(
                f"rm -rf {STATE_DIR}/candidate && cp -a solution {STATE_DIR}/candidate && "
                + FINGERPRINT
            )
            node.fingerprint = _body(obs.get("terminal", ""))
            obs, info = yield act.score()
            if info.get("action_refused"):
                node.notes.append(str(info["action_refused"]))
                node.buggy = True
                journal.ended_because = "no score calls left"
                self._save()
                break
            self._record_score(node, info)
            if not node.buggy and self._better(node):
                journal.best = node.id
                promote = True
            self._save()
        # the end: put the best node back, then submit
        best = self._node(journal.best)
        if best is not None and current is not None and current.id != best.id:
            source = "candidate" if promote else "best"
            obs, info = yield act.bash(f"rm -rf solution && cp -a {STATE_DIR}/{source} solution")
            for path, content in best.files.items():
                obs, info = yield act.write_file(path, content)
            obs, info = yield act.bash(FINGERPRINT)
            journal.restored = True
            journal.restore_verified = _body(obs.get("terminal", "")) == best.fingerprint
        self._save()
        yield act.submit()

    # ----- policy -------------------------------------------------------------------------------
    def _select(self) -> tuple[str, Node | None]:
        nodes = self.journal.nodes
        if sum(1 for n in nodes if n.stage == "draft") < self.num_drafts:
            return "draft", None
        if self._rng.random() < self.debug_prob:
            parents = {n.parent for n in nodes}
            buggy_leaves = [
                n
                for n in nodes
                if n.buggy and n.id not in parents and self._debug_depth(n) < self.max_debug_depth
            ]
            if buggy_leaves:
                return "debug", self._rng.choice(buggy_leaves)
        best = self._node(self.journal.best)
        if best is None:
            return "draft", None
        return "improve", best

    def _debug_depth(self, node: Node) -> int:
        depth = 0
        current: Node | None = node
        while current is not None and current.stage == "debug":
            depth += 1
            current = self._node(current.parent)
        return depth

    def _better(self, node: Node) -> bool:
        """Whether ``node`` (valid) beats the best so far; without numbers the latest wins.

        Scores withheld (``hidden_score``, ScalingLaw) leave only validity: then the latest
        valid node counts as the best, as the task's last valid score does.
        """
        best = self._node(self.journal.best)
        if best is None or (node.metric is None and node.raw is None):
            return True
        return _key(node) > _key(best)

    def _node(self, node_id: int | None) -> Node | None:
        if node_id is None:
            return None
        return self.journal.nodes[node_id]

    # ----- nodes --------------------------------------------------------------------------------
    def _new_node(self, stage: str, parent: Node | None, reply: str) -> Node:
        node = Node(
            id=len(self.journal.nodes),
            stage=stage,
            parent=parent.id if parent is not None else None,
            created_s=round(time.monotonic() - self._started, 3),
        )
        files = dict(parent.files) if parent is not None else {}
        command = parent.run_command if parent is not None else None
        plan_end = len(reply)
        new_command: str | None = None
        for call in find_tool_calls(reply):
            plan_end = min(plan_end, call.span[0])
            if call.name == "write_file":
                try:
                    parsed = json.loads(to_action(call))
                except ToolCallError as e:
                    node.notes.append(str(e))
                    continue
                path = _normalize_path(parsed["path"])
                files[path] = parsed["content"]
                node.wrote.append(path)
            elif call.name in ("bash", "python") and new_command is None:
                body = call.body.strip("\n")
                if body.strip():
                    new_command = body if call.name == "bash" else python_command(body)
            else:
                node.notes.append(f"<{call.name}> ignored: the search runs commands and scores")
        node.files = files
        node.run_command = new_command if new_command is not None else command
        node.new_command = new_command is not None
        plan = reply.split("<plan>", 1)[1].split("</plan>", 1)[0] if "<plan>" in reply else ""
        node.plan = (plan or reply[:plan_end]).strip()[:4000]
        return node

    def _record_score(self, node: Node, info: dict[str, Any]) -> None:
        score = info.get("score")
        if not isinstance(score, dict):
            node.notes.append("the score action returned no score")
            node.buggy = True
            return
        node.score = dict(score)
        node.buggy = not bool(score.get("valid"))
        normalized, raw = score.get("normalized"), score.get("raw")
        node.metric = float(normalized) if isinstance(normalized, int | float) else None
        if isinstance(raw, int | float) and math.isfinite(raw):
            node.raw = float(raw) * _direction(info)
        node.output = (node.output + f"\n[score] {score}").strip()

    # ----- prompts ------------------------------------------------------------------------------
    def _messages(
        self, stage: str, parent: Node | None, instructions: str, info: dict[str, Any]
    ) -> list[dict[str, str]]:
        parts = [f"# Task\n\n{instructions.strip()}"]
        if self.journal.start_files:
            shown = "\n\n".join(
                f"### {path}\n```\n{text}\n```" for path, text in self.journal.start_files.items()
            )
            parts.append(f"# Starting files\n\n{shown}")
        if self.journal.start_listing:
            listing = self.journal.start_listing
            parts.append(f"# Files in solution/ at the start (bytes, path)\n\n{listing}")
        memory = [self._summary(n) for n in self.journal.nodes]
        if memory:
            parts.append("# Attempts so far\n\n" + "\n".join(memory))
        parts.append(f"# Your job: {stage}\n\n{STAGE_TEXT[stage]}")
        if parent is not None:
            files = "\n\n".join(
                f"### {path}\n```\n{text}\n```" for path, text in parent.files.items()
            )
            parts.append(
                f"## The attempt to build on (#{parent.id})\n\nPlan: {parent.plan}\n\n"
                f"Command: {parent.run_command or '(none)'}\n\n{files or '(no files written)'}\n\n"
                f"Output and score:\n```\n{parent.output or '(none)'}\n```"
            )
        parts.append(status_line(info, len(self.journal.nodes)))
        return [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": "\n\n".join(parts)},
        ]

    @staticmethod
    def _summary(node: Node) -> str:
        if node.score is not None and node.score.get("valid"):
            result = f"valid, normalized score {node.metric}"
        elif node.score is not None:
            result = f"invalid score: {str(node.score.get('message'))[:200]}"
        elif node.run_exit_code not in (None, 0) or node.run_timed_out:
            result = "its command failed" + (" (timed out)" if node.run_timed_out else "")
        else:
            result = "not run: " + "; ".join(node.notes)[:200]
        origin = f" from #{node.parent}" if node.parent is not None else ""
        return f"- #{node.id} {node.stage}{origin}: {node.plan[:300]!r} -> {result}"

    # ----- journal ------------------------------------------------------------------------------
    def _save(self) -> None:
        if self.journal_path is None:
            return
        path = self.journal_path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.journal.to_dict(), indent=2, default=str), encoding="utf-8")
        os.replace(tmp, path)


def _key(node: Node) -> tuple[float, float]:
    """Sort key of valid nodes: normalized score, then raw score in the better direction."""
    return (
        node.metric if node.metric is not None else -math.inf,
        node.raw if node.raw is not None else -math.inf,
    )


def _direction(info: dict[str, Any]) -> float:
    """+1 if a higher raw score is better for the task, -1 if lower is (from the anchors)."""
    anchors = info.get("anchors")
    if isinstance(anchors, dict):
        start, ref = anchors.get("start"), anchors.get("reference")
        if isinstance(start, int | float) and isinstance(ref, int | float) and ref != start:
            return 1.0 if ref > start else -1.0
    return 1.0


def _score_calls_left(info: dict[str, Any]) -> int | None:
    budget = info.get("time_budget")
    if isinstance(budget, dict) and budget.get("score_calls_left") is not None:
        return int(budget["score_calls_left"])
    return None


def _body(terminal: str) -> str:
    """A command's output without the env's trailing status line (``[exit code 0]``)."""
    lines = terminal.rstrip("\n").split("\n")
    if lines and lines[-1].startswith("[") and lines[-1].endswith("]"):
        lines = lines[:-1]
    return "\n".join(lines).strip()


def _listing(text: str) -> list[tuple[int, str]]:
    out = []
    for line in text.splitlines():
        size, _, path = line.partition("\t")
        if size.isdigit() and path:
            out.append((int(size), path))
    return out


def _strip_line_numbers(text: str) -> str:
    lines = text.split("\n")
    return "\n".join(line.partition("\t")[2] if "\t" in line else line for line in lines)


def _normalize_path(path: str) -> str:
    path = path.strip()
    while path.startswith("./"):
        path = path[2:]
    return path


__all__ = ["SYSTEM_PROMPT", "AideAgent", "Journal", "Node"]

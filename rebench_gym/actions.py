"""Action strings: parsing, and helpers that build each form.

An action is a string. Either a shell command for the persistent shell, or a JSON object with a
``"tool"`` key:

* ``{"tool": "bash", "command": "...", "timeout": 60}``
* ``{"tool": "write_file", "path": "solution/x.py", "content": "..."}``
* ``{"tool": "str_replace", "path": "...", "old": "...", "new": "..."}`` (``old`` must occur once)
* ``{"tool": "view", "path": "...", "start": 1, "end": 40}`` (1-based, inclusive line numbers)
* ``{"tool": "score"}`` and ``{"tool": "submit"}``; the bare words ``score`` and ``submit`` too.

A string that starts with ``{`` is read as a tool call; if it is not a valid one, the env answers
with an error observation (it is never run as a shell command).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rebench_gym.errors import ActionError

TOOLS = ("bash", "write_file", "str_replace", "view", "score", "submit")


@dataclass(frozen=True)
class Bash:
    command: str
    timeout: float | None = None


@dataclass(frozen=True)
class WriteFile:
    path: str
    content: str


@dataclass(frozen=True)
class StrReplace:
    path: str
    old: str
    new: str


@dataclass(frozen=True)
class View:
    path: str
    start: int | None = None
    end: int | None = None


@dataclass(frozen=True)
class Score:
    pass


@dataclass(frozen=True)
class Submit:
    pass


Action = Bash | WriteFile | StrReplace | View | Score | Submit


def parse_action(text: Any) -> Action:
    """Parse an action string.

    Raises:
        ActionError: not a string, an unknown tool, a malformed JSON call or missing fields.
    """
    if not isinstance(text, str):
        raise ActionError(f"an action must be a string, not {type(text).__name__}")
    stripped = text.strip()
    if stripped == "score":
        return Score()
    if stripped == "submit":
        return Submit()
    if not stripped.startswith("{"):
        if not stripped:
            raise ActionError("empty action: send a shell command or a JSON tool call")
        return Bash(text)
    try:
        call = json.loads(stripped)
    except json.JSONDecodeError as e:
        raise ActionError(f"malformed JSON tool call: {e.msg} at position {e.pos}") from None
    if not isinstance(call, dict):
        raise ActionError("a JSON tool call must be an object with a 'tool' key")
    tool = call.get("tool")
    if tool not in TOOLS:
        raise ActionError(f"unknown tool {tool!r}; tools are: {', '.join(TOOLS)}")
    args = {k: v for k, v in call.items() if k != "tool"}
    if tool == "score":
        return Score()
    if tool == "submit":
        return Submit()
    if tool == "bash":
        timeout = args.get("timeout")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
        ):
            raise ActionError("bash 'timeout' must be a positive number of seconds")
        return Bash(_str(args, "command", tool), None if timeout is None else float(timeout))
    if tool == "write_file":
        return WriteFile(_str(args, "path", tool), _str(args, "content", tool, allow_empty=True))
    if tool == "str_replace":
        return StrReplace(
            _str(args, "path", tool),
            _str(args, "old", tool),
            _str(args, "new", tool, allow_empty=True),
        )
    start, end = args.get("start"), args.get("end")
    for name, value in (("start", start), ("end", end)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ActionError(f"view '{name}' must be an integer line number")
    return View(_str(args, "path", tool), start, end)


def _str(args: dict[str, Any], key: str, tool: str, *, allow_empty: bool = False) -> str:
    value = args.get(key)
    if not isinstance(value, str) or (not value and not allow_empty):
        raise ActionError(f"tool {tool!r} needs a string field {key!r}")
    return value


def _call(tool: str, **fields: Any) -> str:
    return json.dumps({"tool": tool, **{k: v for k, v in fields.items() if v is not None}})


def bash(command: str, timeout: float | None = None) -> str:
    """A shell command as a JSON tool call (plain strings work too)."""
    return _call("bash", command=command, timeout=timeout)


def write_file(path: str, content: str) -> str:
    """Create or replace a workspace file."""
    return _call("write_file", path=path, content=content)


def str_replace(path: str, old: str, new: str) -> str:
    """Replace the single occurrence of ``old`` in a file by ``new``."""
    return _call("str_replace", path=path, old=old, new=new)


def view(path: str, start: int | None = None, end: int | None = None) -> str:
    """Show a file with line numbers, optionally lines ``start``..``end``."""
    return _call("view", path=path, start=start, end=end)


def score() -> str:
    """Score the current solution."""
    return "score"


def submit() -> str:
    """End the episode (the final state is scored if it was not)."""
    return "submit"

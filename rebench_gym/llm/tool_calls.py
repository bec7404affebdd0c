"""The text protocol the LLM agents speak: tool calls written as tags, turned into env actions.

Models on any OpenAI-compatible endpoint can follow it (no function-calling support needed),
and code needs no JSON escaping::

    <bash timeout="120">python train.py --steps 100</bash>
    <python>print(2 + 2)</python>
    <write_file path="solution/solution.py">
    ...the whole file...
    </write_file>
    <str_replace path="solution/solution.py"><old>x = 1</old><new>x = 2</new></str_replace>
    <view path="solution/solution.py" start="1" end="40"/>
    <score/>
    <submit/>

:func:`find_tool_calls` finds every call in a reply, in order; :func:`to_action` maps one onto
the env's action strings (:mod:`rebench_gym.actions`); ``python`` runs as a bash heredoc.
:func:`truncate_output` shortens long tool outputs the way the paper's Modular scaffold did:
past a threshold only the first and last few hundred characters are kept.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

from rebench_gym import actions as act

#: tool names, in the order the prompts list them
TOOL_NAMES = ("bash", "python", "write_file", "str_replace", "view", "score", "submit")

_ATTRS = r"((?:\s+[\w-]+\s*=\s*(?:\"[^\"]*\"|'[^']*'))*)"
_OPEN = re.compile(r"<(" + "|".join(TOOL_NAMES) + r")" + _ATTRS + r"\s*(/?)>")
_ATTR = re.compile(r"([\w-]+)\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")
_FENCE = re.compile(r"^\s*```[\w+-]*[ \t]*\n(.*?)\n?```\s*$", re.DOTALL)


class ToolCallError(ValueError):
    """A tool call the agent cannot run (missing attribute, bad number); the message says why."""


@dataclass(frozen=True)
class ToolCall:
    """One tool call found in a model reply.

    Attributes:
        name: one of :data:`TOOL_NAMES`.
        attrs: the tag's attributes (``path``, ``timeout``, ``start``, ``end``).
        body: the text between the tags (``""`` for self-closing tags).
        span: where the call sits in the reply (start, end).
    """

    name: str
    attrs: dict[str, str] = field(default_factory=dict)
    body: str = ""
    span: tuple[int, int] = (0, 0)


def find_tool_calls(text: str) -> list[ToolCall]:
    """Every tool call in ``text``, in order (an opening tag without its closing tag is skipped)."""
    calls: list[ToolCall] = []
    pos = 0
    while True:
        m = _OPEN.search(text, pos)
        if m is None:
            return calls
        name, raw_attrs, self_closing = m.group(1), m.group(2) or "", m.group(3)
        attrs = {}
        for a in _ATTR.finditer(raw_attrs):
            attrs[a.group(1)] = a.group(2) if a.group(2) is not None else (a.group(3) or "")
        if self_closing:
            calls.append(ToolCall(name, attrs, "", (m.start(), m.end())))
            pos = m.end()
            continue
        close = text.find(f"</{name}>", m.end())
        if close < 0:
            if name in ("score", "submit"):  # "<score>" alone is clear enough
                calls.append(ToolCall(name, attrs, "", (m.start(), m.end())))
            pos = m.end()
            continue
        body = text[m.end() : close]
        calls.append(ToolCall(name, attrs, body, (m.start(), close + len(name) + 3)))
        pos = close + len(name) + 3


def _block(body: str) -> str:
    """The body of a code-like tag: one leading newline dropped, a Markdown fence removed."""
    fenced = _FENCE.match(body)
    if fenced:
        return fenced.group(1)
    return body[1:] if body.startswith("\n") else body


def _file_content(body: str) -> str:
    """A file's content from a ``write_file`` body (the newline after the opening tag dropped)."""
    fenced = _FENCE.match(body)
    if fenced:
        return fenced.group(1) + "\n"
    return body[1:] if body.startswith("\n") else body


def _number(call: ToolCall, key: str, *, integer: bool = False) -> float | None:
    value = call.attrs.get(key)
    if value is None or value.strip() == "":
        return None
    try:
        number = int(value) if integer else float(value)
    except ValueError:
        kind = "a whole number" if integer else "a number of seconds"
        raise ToolCallError(f"<{call.name}> attribute {key}={value!r} must be {kind}") from None
    if number <= 0:
        raise ToolCallError(f"<{call.name}> attribute {key}={value!r} must be > 0")
    return number


def _path(call: ToolCall) -> str:
    path = call.attrs.get("path", "").strip()
    if not path:
        raise ToolCallError(f'<{call.name}> needs a path attribute: <{call.name} path="...">')
    return path


def python_command(code: str) -> str:
    """A bash command that runs ``code`` with ``python3`` (a quoted heredoc: no expansion)."""
    marker = "REBENCH_PY_" + secrets.token_hex(6)
    if not code.endswith("\n"):
        code += "\n"
    return f"python3 - <<'{marker}'\n{code}{marker}"


def to_action(call: ToolCall) -> str:
    """The env action string for ``call``.

    Raises:
        ToolCallError: a required attribute or body is missing or malformed.
    """
    if call.name == "score":
        return act.score()
    if call.name == "submit":
        return act.submit()
    if call.name in ("bash", "python"):
        code = _block(call.body)
        if not code.strip():
            raise ToolCallError(f"<{call.name}> is empty: put the code between the tags")
        timeout = _number(call, "timeout")
        command = code if call.name == "bash" else python_command(code)
        return act.bash(command, timeout)
    if call.name == "write_file":
        return act.write_file(_path(call), _file_content(call.body))
    if call.name == "str_replace":
        old = re.search(r"<old>(.*?)</old>", call.body, re.DOTALL)
        new = re.search(r"<new>(.*?)</new>", call.body, re.DOTALL)
        if old is None or new is None or not old.group(1):
            raise ToolCallError("<str_replace> needs <old>text to replace</old><new>new text</new>")
        return act.str_replace(_path(call), old.group(1), new.group(1))
    if call.name == "view":
        start = _number(call, "start", integer=True)
        end = _number(call, "end", integer=True)
        return act.view(
            _path(call), None if start is None else int(start), None if end is None else int(end)
        )
    raise ToolCallError(f"unknown tool <{call.name}>")  # pragma: no cover - the regex forbids it


def truncate_output(text: str, limit: int = 5000, keep: int = 500) -> str:
    """``text`` unchanged if at most ``limit`` characters, else its first and last ``keep``.

    The cut is marked with the number of characters left out, so the model knows output is
    missing (and can, say, ``grep`` a log instead).
    """
    if len(text) <= limit:
        return text
    head, tail = text[:keep], text[len(text) - keep :] if keep else ""
    omitted = len(text) - len(head) - len(tail)
    return f"{head}\n[... {omitted} characters omitted ...]\n{tail}"


__all__ = [
    "TOOL_NAMES",
    "ToolCall",
    "ToolCallError",
    "find_tool_calls",
    "python_command",
    "to_action",
    "truncate_output",
]

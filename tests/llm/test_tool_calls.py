"""The tag protocol of the LLM agents: parsing replies into env actions, cutting long outputs."""

from __future__ import annotations

import json

import pytest

from rebench_gym import actions
from rebench_gym.llm.tool_calls import (
    ToolCallError,
    find_tool_calls,
    to_action,
    truncate_output,
)


def only_action(reply: str) -> str:
    calls = find_tool_calls(reply)
    assert calls, reply
    return to_action(calls[0])


def test_each_tool_maps_to_the_env_action() -> None:
    assert only_action("<score/>") == "score"
    assert only_action("done <submit />") == "submit"
    bash = json.loads(only_action('Plan.\n<bash timeout="30">\nls -la\n</bash>'))
    assert bash == {"tool": "bash", "command": "ls -la\n", "timeout": 30.0}
    fenced = json.loads(only_action("<bash>\n```bash\necho hi\n```\n</bash>"))
    assert fenced["command"] == "echo hi" and "timeout" not in fenced
    write = actions.parse_action(
        only_action('<write_file path="solution/a.py">\ndef f():\n    return 1\n</write_file>')
    )
    assert write == actions.WriteFile("solution/a.py", "def f():\n    return 1\n")
    replace = actions.parse_action(
        only_action('<str_replace path="a.py"><old>x = 1</old><new>x = 2</new></str_replace>')
    )
    assert replace == actions.StrReplace("a.py", "x = 1", "x = 2")
    view = actions.parse_action(only_action('<view path=\'a.py\' start="2" end="9"/>'))
    assert view == actions.View("a.py", 2, 9)
    python = actions.parse_action(only_action("<python>print('$HOME')</python>"))
    assert isinstance(python, actions.Bash)
    assert (
        python.command.startswith("python3 - <<'REBENCH_PY_") and "print('$HOME')" in python.command
    )


def test_calls_come_in_order_and_bad_ones_say_why() -> None:
    calls = find_tool_calls("<bash>a</bash> text <python>b</python><bash>unclosed")
    assert [c.name for c in calls] == ["bash", "python"]
    assert find_tool_calls("no tools here, just <b>html</b>") == []
    for reply, message in [
        ("<write_file>x</write_file>", "path"),
        ('<bash timeout="soon">ls</bash>', "timeout"),
        ('<bash timeout="-1">ls</bash>', "> 0"),
        ("<bash>  </bash>", "empty"),
        ('<str_replace path="a"><old>x</old></str_replace>', "<new>"),
        ('<view path="a" start="one"/>', "whole number"),
    ]:
        with pytest.raises(ToolCallError, match=message):
            only_action(reply)


def test_long_outputs_keep_their_beginning_and_end() -> None:
    text = "".join(f"line {i}\n" for i in range(2000))
    cut = truncate_output(text, limit=1000, keep=200)
    assert cut.startswith("line 0\nline 1\n") and cut.endswith("line 1999\n")
    assert f"[... {len(text) - 400} characters omitted ...]" in cut
    assert len(cut) < 500
    assert truncate_output("short", limit=1000, keep=200) == "short"

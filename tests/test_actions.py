"""Action parsing: every tool form, the bare words, and clear errors for bad input."""

from __future__ import annotations

import json

import pytest

from rebench_gym import actions
from rebench_gym.errors import ActionError


def test_plain_text_is_a_shell_command() -> None:
    assert actions.parse_action("ls -la") == actions.Bash("ls -la")


@pytest.mark.parametrize("text", ["score", " score\n", '{"tool": "score"}'])
def test_score_forms(text: str) -> None:
    assert actions.parse_action(text) == actions.Score()


@pytest.mark.parametrize("text", ["submit", '{"tool": "submit"}'])
def test_submit_forms(text: str) -> None:
    assert actions.parse_action(text) == actions.Submit()


def test_builders_round_trip() -> None:
    assert actions.parse_action(actions.bash("sleep 1", timeout=5)) == actions.Bash("sleep 1", 5.0)
    assert actions.parse_action(actions.write_file("a.py", "")) == actions.WriteFile("a.py", "")
    assert actions.parse_action(actions.str_replace("a", "x", "y")) == actions.StrReplace(
        "a", "x", "y"
    )
    assert actions.parse_action(actions.view("a", 2, 3)) == actions.View("a", 2, 3)
    assert actions.parse_action(actions.score()) == actions.Score()
    assert actions.parse_action(actions.submit()) == actions.Submit()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"tool": "bash", "command": ', "malformed JSON"),
        ('{"tool": "rm_rf"}', "unknown tool"),
        ('{"command": "ls"}', "unknown tool"),
        ('{"tool": "write_file", "path": "a"}', "'content'"),
        ('{"tool": "bash", "command": "ls", "timeout": -1}', "positive"),
        ('{"tool": "bash", "command": "ls", "timeout": true}', "positive"),
        ('{"tool": "view", "path": "a", "start": "1"}', "integer"),
        ("   ", "empty action"),
    ],
)
def test_bad_actions_raise_clear_errors(text: str, fragment: str) -> None:
    with pytest.raises(ActionError, match=fragment):
        actions.parse_action(text)


def test_non_string_action() -> None:
    with pytest.raises(ActionError, match="must be a string"):
        actions.parse_action(b"ls")


def test_json_tool_with_unicode_content() -> None:
    text = json.dumps({"tool": "write_file", "path": "ü.txt", "content": "π\n"})
    assert actions.parse_action(text) == actions.WriteFile("ü.txt", "π\n")

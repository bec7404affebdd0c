"""Per-task command menus for :class:`~rebench_gym.wrappers.DiscreteCommands`.

A menu is a list of :class:`Command` s: named actions an agent could try on one task (solution
variants, knobs, checks, ``score``, ``submit``). A task ships its menu in its own folder as
``menu.yaml`` (``rebench_gym/tasks/<task>/menu.yaml``), a mapping whose ``commands`` list holds
entries with a ``name``, a ``description`` and exactly one action key::

    - name: write_fused_inplace
      description: one int32 buffer, in-place ops
      write_file: {path: solution/solution.py, content: "..."}
    - name: knob_output_int32
      str_replace: {path: solution/solution.py, old: "...", new: "..."}
    - name: run_tests
      bash: {command: "(cd solution && python3 test_solution.py)", timeout: 120}
    - name: score
      score: {}

``bash`` also takes a plain string. The action strings are built with :mod:`rebench_gym.actions`,
so they are exactly what an LLM agent would send.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rebench_gym import actions as act
from rebench_gym.envs.registration import task_folders
from rebench_gym.errors import UsageError

#: a task folder's menu file
MENU_FILE = "menu.yaml"
ACTION_KEYS = ("write_file", "str_replace", "bash", "view", "score", "submit")


@dataclass(frozen=True)
class Command:
    """One entry of a menu: a name, what it does, and the action string sent to the env."""

    name: str
    action: str
    description: str = ""


def menu_path(task: str) -> Path:
    """Where the task folder ``task`` keeps its menu (the file may not exist)."""
    return task_folders()[task].folder / MENU_FILE


def available_menus() -> dict[str, str]:
    """The shipped menus: task name -> env id (from the task's ``task.yaml``)."""
    return {
        name: t.env_id for name, t in task_folders().items() if (t.folder / MENU_FILE).is_file()
    }


def load_menu(task: str) -> tuple[Command, ...]:
    """The shipped menu of ``task``: a task name (``optimize_kernel``) or an env id.

    Raises:
        UsageError: no menu is shipped for that task, or the menu file is malformed.
    """
    menus = available_menus()
    name = task if task in menus else next((n for n, i in menus.items() if i == task), None)
    if name is None:
        shipped = ", ".join(f"{n} ({i})" for n, i in menus.items()) or "none"
        raise UsageError(
            f"no command menu is shipped for {task!r}; shipped menus: {shipped}. "
            "Pass your own list of commands instead (Command objects or action strings)."
        )
    return parse_menu(_read(menu_path(name)).get("commands"), source=f"{name}/{MENU_FILE}")


def parse_menu(entries: Any, *, source: str = "menu") -> tuple[Command, ...]:
    """Build commands from a menu's ``commands`` list (the YAML format of this module).

    Raises:
        UsageError: not a non-empty list, an entry without a name or with other than one action
            key, a malformed action, or a repeated name.
    """
    if not isinstance(entries, list) or not entries:
        raise UsageError(f"{source}: 'commands' must be a non-empty list")
    commands: list[Command] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise UsageError(f"{source}: entry {i} must be a mapping with a string 'name'")
        keys = [k for k in ACTION_KEYS if k in entry]
        if len(keys) != 1:
            raise UsageError(
                f"{source}: entry {entry['name']!r} needs exactly one of {', '.join(ACTION_KEYS)}"
                f" (found {keys or 'none'})"
            )
        action = _build_action(keys[0], entry[keys[0]], f"{source}: entry {entry['name']!r}")
        commands.append(Command(entry["name"], action, str(entry.get("description", ""))))
    return check_commands(commands)


def check_commands(commands: Sequence[Command]) -> tuple[Command, ...]:
    """Validate a list of commands: non-empty, unique names, parseable action strings.

    Raises:
        UsageError: what is wrong, naming the command.
    """
    if not commands:
        raise UsageError("a command menu needs at least one command")
    seen: set[str] = set()
    for c in commands:
        if not c.name:
            raise UsageError(f"a command needs a non-empty name: {c!r}")
        if c.name in seen:
            raise UsageError(f"command name {c.name!r} appears twice; names must be unique")
        seen.add(c.name)
        try:
            act.parse_action(c.action)
        except Exception as e:
            raise UsageError(f"command {c.name!r} has an invalid action: {e}") from None
    return tuple(commands)


def _build_action(key: str, spec: Any, where: str) -> str:
    def field(name: str) -> str:
        value = spec.get(name) if isinstance(spec, Mapping) else None
        if not isinstance(value, str):
            raise UsageError(f"{where}: {key} needs a string field {name!r}")
        return value

    if key == "score":
        return act.score()
    if key == "submit":
        return act.submit()
    if key == "bash":
        if isinstance(spec, str):
            return act.bash(spec)
        timeout = spec.get("timeout") if isinstance(spec, Mapping) else None
        if isinstance(timeout, bool) or not isinstance(timeout, int | float | None):
            raise UsageError(f"{where}: bash 'timeout' must be a number of seconds")
        return act.bash(field("command"), None if timeout is None else float(timeout))
    if key == "write_file":
        return act.write_file(field("path"), field("content"))
    if key == "str_replace":
        return act.str_replace(field("path"), field("old"), field("new"))
    start = spec.get("start") if isinstance(spec, Mapping) else None
    end = spec.get("end") if isinstance(spec, Mapping) else None
    return act.view(field("path"), start, end)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise UsageError(f"menu file {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise UsageError(f"menu file {path} must be a mapping with 'commands'")
    return data


__all__ = [
    "MENU_FILE",
    "Command",
    "available_menus",
    "check_commands",
    "load_menu",
    "menu_path",
    "parse_menu",
]

"""The ``RE-Bench/*-v0`` ids, read from each task folder's ``task.yaml``, and their registration.

A task is one folder holding ``task.yaml`` (its ``name`` is the folder's name, its ``env_id`` the
Gymnasium id), ``instructions.md``, ``workspace/``, ``reference/<scale>/`` and ``task.py`` with
one :class:`~rebench_gym.tasks.base.Task` subclass. The folders are found by scanning
``rebench_gym/tasks/*/task.yaml`` and then every directory named in ``$REBENCH_TASK_PATH``
(``os.pathsep``-separated, each holding task folders): nothing else lists the ids.

Every id uses the same string entry point, ``rebench_gym.env:ReBenchEnv``, with the task name as
a keyword argument, so ``env.spec.to_json()`` works and no lambda is registered.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import yaml

#: the package's own task folders
TASKS_DIR = Path(__file__).resolve().parent.parent / "tasks"
#: environment variable naming extra directories of task folders (``os.pathsep``-separated)
TASK_PATH_ENV = "REBENCH_TASK_PATH"

ENTRY_POINT = "rebench_gym.env:ReBenchEnv"
#: what ``gym.make_vec(id, num_envs=N)`` builds: spawn-context workers, one GPU slice per env
VECTOR_ENTRY_POINT = "rebench_gym.vector.local:vector_entry_point"


@dataclass(frozen=True)
class TaskFolder:
    """Where one task lives and its ids, as its ``task.yaml`` names them."""

    name: str
    env_id: str
    folder: Path

    @property
    def builtin(self) -> bool:
        """Whether the folder is one of the package's own (``rebench_gym/tasks/<name>``)."""
        return self.folder.parent == TASKS_DIR


def _search_dirs() -> list[Path]:
    extra = [Path(p) for p in os.environ.get(TASK_PATH_ENV, "").split(os.pathsep) if p]
    return [TASKS_DIR, *extra]


_scanned: dict[tuple[Path, ...], dict[str, TaskFolder]] = {}


def task_folders() -> dict[str, TaskFolder]:
    """Every task folder: task name -> :class:`TaskFolder` (package tasks first).

    Raises:
        UsageError: a ``task.yaml`` lacks ``name``/``env_id``, its ``name`` is not its folder's
            name, or two folders claim the same name or id.
    """
    from rebench_gym.errors import UsageError

    dirs = tuple(d.resolve() for d in _search_dirs())
    if dirs in _scanned:
        return _scanned[dirs]
    found: dict[str, TaskFolder] = {}
    ids: dict[str, Path] = {}
    for d in dirs:
        for path in sorted(d.glob("*/task.yaml")):
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as e:
                raise UsageError(f"{path}: cannot read: {e}") from None
            name = data.get("name") if isinstance(data, dict) else None
            env_id = data.get("env_id") if isinstance(data, dict) else None
            if not isinstance(name, str) or not isinstance(env_id, str):
                raise UsageError(f"{path}: needs string keys 'name' and 'env_id'")
            if name != path.parent.name:
                raise UsageError(
                    f"{path}: name {name!r} must be the folder's name {path.parent.name!r}"
                )
            if name in found or env_id in ids:
                other = found[name].folder if name in found else ids[env_id]
                raise UsageError(f"{path}: task {name!r} / {env_id!r} is also defined in {other}")
            found[name] = TaskFolder(name, env_id, path.parent)
            ids[env_id] = path.parent
    _scanned[dirs] = found
    return found


def env_ids() -> dict[str, str]:
    """env id -> task name, for every task folder found now."""
    return {t.env_id: t.name for t in task_folders().values()}


#: env id -> task name (the folder under ``rebench_gym/tasks`` and the original's task family);
#: the package's tasks and those on ``$REBENCH_TASK_PATH`` at import (:func:`register_envs`
#: adds folders found later)
ENV_IDS: dict[str, str] = env_ids()


def register_envs() -> None:
    """Register every id (idempotent); rescans ``$REBENCH_TASK_PATH``."""
    ENV_IDS.update(env_ids())
    for env_id, task in ENV_IDS.items():
        if env_id in gym.registry:
            continue
        gym.register(
            id=env_id,
            entry_point=ENTRY_POINT,
            vector_entry_point=VECTOR_ENTRY_POINT,
            kwargs={"task": task},
            nondeterministic=True,  # wall-clock timing and fresh random inputs per score call
            disable_env_checker=True,
        )


def task_name(env_id: str) -> str:
    """The task name behind ``env_id`` (accepts the bare task name too)."""
    from rebench_gym.errors import UsageError

    ids = env_ids()
    if env_id in ids:
        return ids[env_id]
    if env_id in ids.values():
        return env_id
    known = ", ".join(ids)
    raise UsageError(f"unknown environment id {env_id!r}; known ids: {known}")


def env_id_of(task: str) -> str:
    """The env id of a task name."""
    folders = task_folders()
    if task in folders:
        return folders[task].env_id
    raise KeyError(task)


def task_folder(name_or_id: str) -> TaskFolder:
    """The folder of a task given its name or env id.

    Raises:
        UsageError: no task folder has that name or id.
    """
    return task_folders()[task_name(name_or_id)]

"""The task registry: a task name -> its :class:`Task`, found by convention and imported lazily.

A task is the folder ``<name>/`` that :func:`~rebench_gym.envs.registration.task_folders` finds
(``rebench_gym/tasks/<name>/`` or a folder in a directory on ``$REBENCH_TASK_PATH``); its
``task.py`` defines exactly one concrete :class:`Task` subclass. Nothing else maps names to
classes.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import inspect
import sys
from types import ModuleType

from rebench_gym.envs.registration import TaskFolder, task_folders
from rebench_gym.errors import UsageError
from rebench_gym.tasks.base import SCALES, Scale, ScoreContext, Task, TaskSpec

#: package under which task folders from ``$REBENCH_TASK_PATH`` are imported
EXTERNAL_PACKAGE = "rebench_gym_tasks"


def task_names() -> list[str]:
    """The names of every task folder found (the package's own first)."""
    return list(task_folders())


def task_class(name: str) -> type[Task]:
    """The :class:`Task` subclass defined in the task folder ``name``'s ``task.py``.

    Raises:
        KeyError: no task folder is named ``name``.
        UsageError: its ``task.py`` defines no concrete Task subclass, or more than one.
    """
    folder = task_folders()[name]
    module = _import_task_module(folder)
    found = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, Task)
        and obj.__module__ == module.__name__
        and not inspect.isabstract(obj)
    ]
    if len(found) != 1:
        raise UsageError(
            f"{folder.folder / 'task.py'} must define exactly one concrete Task subclass "
            f"(found {len(found)}: {', '.join(c.__name__ for c in found) or 'none'})"
        )
    return found[0]


def get_task(name: str) -> Task:
    """Instantiate the task ``name`` (its folder's one Task subclass).

    Raises:
        KeyError: no such task.
        UsageError: the folder's ``task.py`` does not define exactly one Task subclass.
    """
    return task_class(name)()


def _import_task_module(folder: TaskFolder) -> ModuleType:
    if folder.builtin:
        return importlib.import_module(f"{__name__}.{folder.name}.task")
    # A folder on $REBENCH_TASK_PATH: imported as the package rebench_gym_tasks.<name>, so its
    # task.py may import its own modules relatively (``from . import helpers``).
    if EXTERNAL_PACKAGE not in sys.modules:
        root = importlib.machinery.ModuleSpec(EXTERNAL_PACKAGE, None, is_package=True)
        root.submodule_search_locations = []
        sys.modules[EXTERNAL_PACKAGE] = importlib.util.module_from_spec(root)
    package = f"{EXTERNAL_PACKAGE}.{folder.name}"
    if package not in sys.modules:
        spec = importlib.machinery.ModuleSpec(package, None, is_package=True)
        spec.submodule_search_locations = [str(folder.folder)]
        sys.modules[package] = importlib.util.module_from_spec(spec)
    return importlib.import_module(f"{package}.task")


__all__ = [
    "SCALES",
    "Scale",
    "ScoreContext",
    "Task",
    "TaskSpec",
    "get_task",
    "task_class",
    "task_names",
]

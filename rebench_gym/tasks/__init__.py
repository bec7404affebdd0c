"""The task registry: task name -> implementation, imported lazily.

Tasks not built yet are listed with ``None``; asking for one raises
:class:`~rebench_gym.errors.TaskNotBuiltError` naming it.
"""

from __future__ import annotations

import importlib

from rebench_gym.errors import TaskNotBuiltError
from rebench_gym.tasks.base import SCALES, Scale, ScoreContext, Task, TaskSpec

#: task name -> "module:Class" of its implementation (None: not built yet)
TASK_CLASSES: dict[str, str | None] = {
    "optimize_kernel": "rebench_gym.tasks.optimize_kernel.task:OptimizeKernelTask",
    "optimize_llm_foundry": "rebench_gym.tasks.optimize_llm_foundry.task:OptimizeLLMFoundryTask",
    "fix_embedding": "rebench_gym.tasks.fix_embedding.task:FixEmbeddingTask",
    "scaling_law": "rebench_gym.tasks.scaling_law.task:ScalingLawTask",
    "restricted_mlm": "rebench_gym.tasks.restricted_mlm.task:RestrictedMLMTask",
    "finetune_gpt2_qa": "rebench_gym.tasks.finetune_gpt2_qa.task:FinetuneGPT2QATask",
    "rust_codecontests": "rebench_gym.tasks.rust_codecontests.task:RustCodecontestsTask",
}


def is_built(name: str) -> bool:
    """Whether the task ``name`` has an implementation."""
    return TASK_CLASSES.get(name) is not None


def get_task(name: str) -> Task:
    """Instantiate the task ``name``.

    Raises:
        TaskNotBuiltError: the task is registered but has no implementation yet.
        KeyError: no such task.
    """
    target = TASK_CLASSES[name]
    if target is None:
        raise TaskNotBuiltError(
            f"task {name!r} is registered but not built yet in rebench_gym "
            f"{_version()}; built tasks: {', '.join(n for n in TASK_CLASSES if is_built(n))}"
        )
    module, _, cls = target.partition(":")
    task: Task = getattr(importlib.import_module(module), cls)()
    return task


def _version() -> str:
    from rebench_gym import __version__

    return __version__


__all__ = ["SCALES", "TASK_CLASSES", "Scale", "ScoreContext", "Task", "TaskSpec", "get_task"]

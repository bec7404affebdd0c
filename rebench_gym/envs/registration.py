"""The seven ``RE-Bench/*-v0`` ids and their registration with Gymnasium.

Every id uses the same string entry point, ``rebench_gym.env:ReBenchEnv``, with the task name as
a keyword argument, so ``env.spec.to_json()`` works and no lambda is registered.
"""

from __future__ import annotations

import gymnasium as gym

#: env id -> task name (the package under ``rebench_gym/tasks`` and the original's task family)
ENV_IDS: dict[str, str] = {
    "RE-Bench/OptimizeLLMFoundry-v0": "optimize_llm_foundry",
    "RE-Bench/OptimizeKernel-v0": "optimize_kernel",
    "RE-Bench/FixEmbedding-v0": "fix_embedding",
    "RE-Bench/ScalingLaw-v0": "scaling_law",
    "RE-Bench/RestrictedMLM-v0": "restricted_mlm",
    "RE-Bench/FinetuneGPT2QA-v0": "finetune_gpt2_qa",
    "RE-Bench/RustCodecontests-v0": "rust_codecontests",
}

ENTRY_POINT = "rebench_gym.env:ReBenchEnv"
#: what ``gym.make_vec(id, num_envs=N)`` builds: spawn-context workers, one GPU slice per env
VECTOR_ENTRY_POINT = "rebench_gym.vector.local:vector_entry_point"


def register_envs() -> None:
    """Register every id (idempotent)."""
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

    if env_id in ENV_IDS:
        return ENV_IDS[env_id]
    if env_id in ENV_IDS.values():
        return env_id
    known = ", ".join(ENV_IDS)
    raise UsageError(f"unknown environment id {env_id!r}; known ids: {known}")


def env_id_of(task: str) -> str:
    """The env id of a task name."""
    for env_id, name in ENV_IDS.items():
        if name == task:
            return env_id
    raise KeyError(task)

"""Sandbox providers by name: ``local``, ``bwrap`` and ``docker``.

Use :func:`make_sandbox`; :func:`default_sandbox_name` is bwrap (never the unisolated local).
"""

from __future__ import annotations

import atexit
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rebench_gym.errors import SandboxUnavailableError, UsageError
from rebench_gym.sandbox.base import Bind, ExecResult, Sandbox, close_all_sandboxes
from rebench_gym.sandbox.resources import Resources, split_options

PROVIDERS = ("local", "bwrap", "docker")

atexit.register(close_all_sandboxes)


def default_sandbox_name() -> str:
    """The default provider: ``bwrap``. Never ``local``, which isolates nothing.

    Raises:
        SandboxUnavailableError: bubblewrap is not installed (the message says what to do).
    """
    if shutil.which("bwrap"):
        return "bwrap"
    raise SandboxUnavailableError(
        "no isolating sandbox is installed: install bubblewrap (`apt-get install bubblewrap`), "
        "or choose sandbox='docker', or sandbox='local' explicitly (no isolation: development "
        "only)"
    )


def make_sandbox(
    name: str,
    workspace: Path,
    *,
    max_output_bytes: int = 64_000,
    hidden: Sequence[Path] = (),
    max_pids: int = 4096,
    image: str | None = None,
    image_variant: str = "mini",
    resources: Resources | None = None,
    options: Mapping[str, Any] | None = None,
) -> Sandbox:
    """Create the sandbox provider ``name`` over ``workspace``.

    Args:
        name: ``local``, ``bwrap`` or ``docker``.
        workspace: the host directory of the agent's workspace.
        max_output_bytes: output kept per command.
        hidden: paths the agent must not read (bwrap masks them; docker never mounts anything
            but the workspace).
        max_pids: process limit.
        image: docker: the name of the image to run (``rebench-gym/<image>``, built by
            :func:`~rebench_gym.sandbox.docker_images.build_image`; a task's name).
        image_variant: docker: which build of ``image`` (``"mini"`` or ``"full"``).
        resources: what the episode may use (a task's ``resources`` at a scale), enforced as
            :mod:`rebench_gym.sandbox.resources` says; None: no memory, CPU or disk limit.
        options: provider options. Every provider: ``cpus``, ``memory_gb``, ``disk_gb``,
            ``gpus`` (a count or device ids to pin) and ``resource_scale`` override
            ``resources``. bwrap: ``uid`` (the agent's host uid when the driver is root,
            default 65534), ``tmp_gb``, ``var_tmp_gb``, ``shm_gb`` (scratch sizes, capped by the
            memory limit); docker: ``image`` (tag; default: the newest build of
            ``image``/``image_variant``), ``network`` (bool, default False).

    Raises:
        UsageError: ``name`` is not a provider.
        SandboxUnavailableError: the provider cannot run here (the message says what to install).
    """
    if name not in PROVIDERS:
        raise UsageError(f"unknown sandbox {name!r}; choose one of {', '.join(PROVIDERS)}")
    wanted, own = split_options(options)
    if wanted:
        if resources is None:
            raise UsageError(
                f"sandbox options {', '.join(wanted)} change a task's declared resources; "
                "this sandbox has none"
            )
        resources = resources.with_options(wanted)
    if name == "local":
        from rebench_gym.sandbox.local import LocalSandbox

        if own:
            raise UsageError(f"sandbox 'local' takes only resource options (got {', '.join(own)})")
        return LocalSandbox(
            workspace, max_output_bytes=max_output_bytes, max_pids=max_pids, resources=resources
        )
    if name == "bwrap":
        from rebench_gym.sandbox.bwrap import BwrapSandbox

        return BwrapSandbox(
            workspace,
            max_output_bytes=max_output_bytes,
            hidden=hidden,
            max_pids=max_pids,
            options=own,
            resources=resources,
        )
    from rebench_gym.sandbox.docker_provider import make_docker_sandbox

    return make_docker_sandbox(
        workspace,
        image=image,
        image_variant=image_variant,
        resources=resources,
        options=own,
        max_output_bytes=max_output_bytes,
        max_pids=max_pids,
    )


def docker_session_id() -> str:
    """The id labelling every docker container this process starts (its reaper removes them)."""
    from rebench_gym.sandbox.docker_provider import SESSION_ID

    return SESSION_ID


def remove_docker_containers(
    session: str | None = None, *, all_sessions: bool = False
) -> list[str]:
    """Remove rebench_gym's docker containers; returns their names.

    Args:
        session: only those of this session (:func:`docker_session_id`); default: those whose
            driving process is gone.
        all_sessions: every rebench_gym container, running drivers' too.

    Raises:
        SandboxUnavailableError: no Docker SDK or engine.
    """
    from rebench_gym.sandbox.docker_provider import cleanup_containers

    return cleanup_containers(session=session, all_sessions=all_sessions)


__all__ = [
    "PROVIDERS",
    "Bind",
    "ExecResult",
    "Resources",
    "Sandbox",
    "default_sandbox_name",
    "docker_session_id",
    "make_sandbox",
    "remove_docker_containers",
]

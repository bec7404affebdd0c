"""Sandbox providers by name: ``local``, ``bwrap`` (and ``docker`` when built).

Use :func:`make_sandbox`; :func:`default_sandbox_name` picks the safest provider available.
"""

from __future__ import annotations

import atexit
import shutil
from collections.abc import Sequence
from pathlib import Path

from rebench_gym.errors import SandboxUnavailableError, UsageError
from rebench_gym.sandbox.base import Bind, ExecResult, Sandbox, close_all_sandboxes

PROVIDERS = ("local", "bwrap", "docker")

atexit.register(close_all_sandboxes)


def default_sandbox_name() -> str:
    """The safest provider on this machine: bwrap if installed, else local."""
    return "bwrap" if shutil.which("bwrap") else "local"


def make_sandbox(
    name: str,
    workspace: Path,
    *,
    max_output_bytes: int = 64_000,
    hidden: Sequence[Path] = (),
    max_pids: int = 4096,
) -> Sandbox:
    """Create the sandbox provider ``name`` over ``workspace``.

    Raises:
        UsageError: ``name`` is not a provider.
        SandboxUnavailableError: the provider cannot run here (the message says what to install).
    """
    if name == "local":
        from rebench_gym.sandbox.local import LocalSandbox

        return LocalSandbox(workspace, max_output_bytes=max_output_bytes, max_pids=max_pids)
    if name == "bwrap":
        from rebench_gym.sandbox.bwrap import BwrapSandbox

        return BwrapSandbox(
            workspace, max_output_bytes=max_output_bytes, hidden=hidden, max_pids=max_pids
        )
    if name == "docker":
        raise SandboxUnavailableError(
            "sandbox='docker' is not available in this version yet; use 'bwrap' or 'local'"
        )
    raise UsageError(f"unknown sandbox {name!r}; choose one of {', '.join(PROVIDERS)}")


__all__ = [
    "PROVIDERS",
    "Bind",
    "ExecResult",
    "Sandbox",
    "default_sandbox_name",
    "make_sandbox",
]

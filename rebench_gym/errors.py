"""The one error hierarchy of rebench_gym.

Failures the agent causes (a failing command, a bad tool call, an invalid solution) come back as
data in observations and ``info``; only faults of the user's set-up or of the infrastructure raise
one of these.
"""

from __future__ import annotations


class ReBenchError(Exception):
    """Base class of every error rebench_gym raises on purpose."""


class UsageError(ReBenchError, ValueError):
    """An argument or option given by the user is wrong; the message says how to fix it."""


class HardwareError(ReBenchError, RuntimeError):
    """The machine lacks what the chosen scale needs (e.g. CUDA GPUs)."""


class AssetsError(ReBenchError, RuntimeError):
    """Task assets are missing or could not be prepared."""


class SandboxError(ReBenchError, RuntimeError):
    """An infrastructure fault of a sandbox (not something the agent's command did)."""


class SandboxUnavailableError(SandboxError):
    """The requested sandbox provider cannot run on this machine."""


class ActionError(ReBenchError, ValueError):
    """An action string could not be parsed; the env turns it into an observation."""


class UnenforcedLimitWarning(UserWarning):
    """A resource limit of the task cannot be enforced on this machine (the message says which
    and why); the episode runs without it."""

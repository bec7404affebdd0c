"""The typed messages of ``rebench serve``: OpenEnv's Action, Observation and State for RE-Bench.

They mirror the Gymnasium env one to one, so a trainer that speaks OpenEnv sees what an
in-process agent sees: the action is the env's action (a shell command, ``score``/``submit``, or a
tool call), the observation its ``terminal`` and ``files`` plus the step's reward, ``done`` and
``info`` (score log, budgets, services). Nothing here adds a capability the env does not have.
"""

from __future__ import annotations

import json
from typing import Any

from openenv.core.env_server.types import Action, Observation, State
from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from rebench_gym.actions import TOOLS


class ReBenchAction(Action):
    """One action: ``command`` (the env's action string), or ``tool`` with its ``arguments``.

    ``{"command": "ls -la"}`` runs a shell command; ``{"command": "score"}`` and
    ``{"command": "submit"}`` score and submit; ``{"tool": "write_file", "arguments": {"path":
    "solution/x.py", "content": "..."}}`` is the JSON tool call ``{"tool": "write_file", ...}``
    (see :mod:`rebench_gym.actions`). Exactly one of ``command`` and ``tool`` is given.
    """

    command: str | None = Field(
        default=None, description="a shell command, or the words 'score' or 'submit'"
    )
    tool: str | None = Field(default=None, description=f"a tool: {', '.join(TOOLS)}")
    arguments: dict[str, Any] = Field(
        default_factory=dict, description="the tool's arguments (e.g. path and content)"
    )

    @model_validator(mode="after")
    def _one_form(self) -> ReBenchAction:
        # PydanticCustomError, not ValueError: OpenEnv sends a validation error's details to the
        # client as JSON, and a ValueError in them cannot be serialized (the session would end)
        if (self.command is None) == (self.tool is None):
            raise PydanticCustomError("action_form", "give exactly one of 'command' and 'tool'")
        if self.command is not None and self.arguments:
            raise PydanticCustomError("action_form", "'arguments' go with 'tool', not 'command'")
        if self.tool is not None and "tool" in self.arguments:
            raise PydanticCustomError("action_form", "'arguments' must not hold a 'tool' key")
        return self

    def to_env_action(self) -> str:
        """The action string the Gymnasium env takes."""
        if self.command is not None:
            return self.command
        return json.dumps({"tool": self.tool, **self.arguments})


class ReBenchObservation(Observation):
    """What the env returned: its observation, and its ``info`` (with ``terminated`` and
    ``truncated``, which OpenEnv folds into ``done``)."""

    terminal: str = Field(default="", description="result of the last action (or instructions)")
    files: str = Field(default="", description="the workspace tree with sizes")
    info: dict[str, Any] = Field(
        default_factory=dict, description="the env's info: score log, budgets, services"
    )


class ReBenchState(State):
    """The session's episode: its row in the run store and where it stands."""

    env_id: str = Field(default="", description="the registered id")
    run_id: str = Field(default="", description="the server's run in the run store")
    done: bool = Field(default=False, description="whether the episode has ended")
    best_normalized: float | None = Field(
        default=None, description="the episode's normalized score so far (None when hidden)"
    )


__all__ = ["ReBenchAction", "ReBenchObservation", "ReBenchState"]

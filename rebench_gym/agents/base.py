"""The Agent protocol."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Agent(Protocol):
    """Anything that maps observations to action strings.

    ``usage`` (optional) is a dict of token counts an LLM agent spent.
    """

    name: str

    def reset(self, *, seed: int | None = None) -> None: ...

    def act(self, observation: dict[str, str], info: dict[str, Any]) -> str: ...

    def close(self) -> None: ...

"""Text spaces that hold any Unicode string (Gymnasium's ``Text`` only holds a fixed charset)."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.spaces import Text

#: harmless commands that ``sample()`` returns (check_env steps with them)
SAFE_COMMANDS = ("pwd", "ls", "ls -la solution", "echo hello", "true", "date +%Y", "whoami")


class UnicodeText(Text):
    """Any ``str`` of at most ``max_length`` characters.

    Subclasses :class:`gymnasium.spaces.Text` so vector envs batch it as text; ``contains``
    accepts every character, and ``sample`` draws from ``samples`` (harmless shell commands by
    default) so random rollouts never do damage.
    """

    def __init__(
        self,
        max_length: int,
        *,
        samples: tuple[str, ...] = SAFE_COMMANDS,
        seed: int | np.random.Generator | None = None,
    ) -> None:
        super().__init__(max_length=max_length, min_length=0, seed=seed)
        self.samples = tuple(s for s in samples if len(s) <= max_length) or ("",)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and len(x) <= self.max_length

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        return str(self.samples[int(self.np_random.integers(len(self.samples)))])

    def __repr__(self) -> str:
        return f"UnicodeText(max_length={self.max_length})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UnicodeText) and other.max_length == self.max_length

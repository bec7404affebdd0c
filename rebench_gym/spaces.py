"""Text spaces that hold any Unicode string (Gymnasium's ``Text`` only holds a fixed charset)."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Sequence
from typing import Any, overload

import numpy as np
from gymnasium.spaces import Text
from gymnasium.vector.utils import (
    create_shared_memory,
    read_from_shared_memory,
    write_to_shared_memory,
)

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


# ----- shared memory for Gymnasium's AsyncVectorEnv ------------------------------------------
# Text's own shared-memory layout stores indices into a fixed charset; observations here hold any
# Unicode. Each env gets ``max_length + 1`` int32 slots: the length, then the code points.


@create_shared_memory.register(UnicodeText)
def _create_unicode_shared_memory(space: UnicodeText, n: int = 1, ctx: Any = mp) -> Any:
    return ctx.Array(np.dtype(np.int32).char, n * (space.max_length + 1))


def _unicode_slots(space: UnicodeText, shared_memory: Any) -> np.ndarray:
    flat = np.frombuffer(shared_memory.get_obj(), dtype=np.int32)
    return flat.reshape(-1, space.max_length + 1)


class SharedTextBatch(Sequence[str]):
    """A live view of the texts in shared memory, like the numpy views Gymnasium keeps for boxes.

    ``AsyncVectorEnv`` reads shared memory once and returns ``deepcopy`` of that object on every
    step; copying this view gives a plain tuple of the current texts.
    """

    def __init__(self, space: UnicodeText, shared_memory: Any, n: int) -> None:
        self._rows = _unicode_slots(space, shared_memory)[:n]

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[str, ...]: ...

    def __getitem__(self, index: int | slice) -> str | tuple[str, ...]:
        if isinstance(index, slice):
            return tuple(self)[index]
        row = self._rows[index]
        return row[1 : 1 + int(row[0])].astype(np.uint32).tobytes().decode("utf-32-le")

    def __deepcopy__(self, memo: dict[int, Any]) -> tuple[str, ...]:
        return tuple(self)

    def __repr__(self) -> str:
        return f"SharedTextBatch({tuple(self)!r})"


@read_from_shared_memory.register(UnicodeText)
def _read_unicode_from_shared_memory(
    space: UnicodeText, shared_memory: Any, n: int = 1
) -> SharedTextBatch:
    return SharedTextBatch(space, shared_memory, n)


@write_to_shared_memory.register(UnicodeText)
def _write_unicode_to_shared_memory(
    space: UnicodeText, index: int, value: str, shared_memory: Any
) -> None:
    codes = np.frombuffer(value.encode("utf-32-le", errors="replace"), dtype=np.int32)
    codes = codes[: space.max_length]
    row = _unicode_slots(space, shared_memory)[index]
    row[0] = len(codes)
    row[1 : 1 + len(codes)] = codes

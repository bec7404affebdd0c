"""The async API: drive an env from an asyncio event loop without ever blocking it.

A step of an RE-Bench env can run a 10-minute training command, and ``reset`` prepares assets
and starts a sandbox; called from a coroutine, either would freeze every other episode of the
loop. :class:`AsyncReBenchEnv` gives each env a thread of its own and runs every call to the env
there, so ``await env.astep(action)`` only waits on a future, and one process can drive many
episodes with :func:`asyncio.gather`::

    import asyncio
    from rebench_gym.aio import AsyncReBenchEnv

    async def episode(i: int) -> float:
        async with AsyncReBenchEnv.make(
            "RE-Bench/OptimizeKernel-v0", scale="mini", sandbox="bwrap"
        ) as env:
            obs, info = await env.areset(seed=i)
            obs, reward, terminated, truncated, info = await env.astep("sleep 1; ls solution")
            obs, reward, terminated, truncated, info = await env.astep("submit")
            return info["final_normalized"]

    async def main() -> list[float]:
        return list(await asyncio.gather(*(episode(i) for i in range(16))))

    scores = asyncio.run(main())

Why a thread per env and not the loop's default executor: that executor has a handful of
workers (``min(32, cpus + 4)``), which would cap a 64-episode gather at a few concurrent steps;
and an env (its persistent shell, its run store connection) must see its calls one at a time
and, for SQLite, on one thread. The env is built on that thread too (:meth:`make`, or a
callable given to the constructor), so whatever it opens belongs to the thread that uses it.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, SupportsFloat, TypeVar

import gymnasium as gym

T = TypeVar("T")
Step = tuple[dict[str, str], SupportsFloat, bool, bool, dict[str, Any]]


class AsyncReBenchEnv:
    """An env whose every call runs on its own thread: ``areset``, ``astep``, ``aclose``.

    Args:
        env: The env (any wrapper stack over a :class:`~rebench_gym.env.ReBenchEnv`), or a
            zero-argument callable that builds it; a callable is called on the env's thread at
            the first call, so the env's resources are made where they are used.

    Calls on one env run in the order they were made, one at a time; calls on different envs run
    concurrently. The sync :meth:`close` may be called from any thread: it waits for a call in
    progress to end (a shell command ends within its timeout) and closes the env on its thread.
    """

    def __init__(self, env: gym.Env[Any, Any] | Callable[[], gym.Env[Any, Any]]) -> None:
        self._env: gym.Env[Any, Any] | None = env if isinstance(env, gym.Env) else None
        self._build = None if isinstance(env, gym.Env) else env
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rebench-env")
        self._lock = threading.Lock()
        self._closed = False
        self._closing: Future[None] | None = None
        self._busy = 0

    @classmethod
    def make(cls, env_id: str, **kwargs: Any) -> AsyncReBenchEnv:
        """``gym.make(env_id, **kwargs)``, built on the new env's thread at its first call."""
        return cls(functools.partial(gym.make, env_id, **kwargs))

    # ----- the env ---------------------------------------------------------------------------
    @property
    def env(self) -> gym.Env[Any, Any]:
        """The env (built already: after the first call, or when an env was given)."""
        if self._env is None:
            raise RuntimeError("the env is built on its thread at the first call; await one first")
        return self._env

    @property
    def unwrapped(self) -> Any:
        """The innermost env (a :class:`~rebench_gym.env.ReBenchEnv`)."""
        return self.env.unwrapped

    @property
    def busy(self) -> bool:
        """Whether a call is running or waiting on the env's thread."""
        return self._busy > 0

    @property
    def closed(self) -> bool:
        return self._closed

    def _built(self) -> gym.Env[Any, Any]:
        if self._env is None:
            assert self._build is not None
            self._env = self._build()
        return self._env

    # ----- calls -----------------------------------------------------------------------------
    def submit(self, fn: Callable[[gym.Env[Any, Any]], T]) -> Future[T]:
        """Run ``fn(env)`` on the env's thread; returns its future (for callers on any thread)."""

        def call() -> T:
            try:
                return fn(self._built())
            finally:
                with self._lock:
                    self._busy -= 1

        with self._lock:
            if self._closed:
                raise RuntimeError("the env is closed")
            self._busy += 1
            try:
                return self._thread.submit(call)
            except BaseException:
                self._busy -= 1
                raise

    async def acall(self, fn: Callable[[gym.Env[Any, Any]], T]) -> T:
        """Await ``fn(env)`` run on the env's thread (the event loop keeps running meanwhile)."""
        return await asyncio.wrap_future(self.submit(fn))

    async def areset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, str], dict[str, Any]]:
        """``env.reset(seed=seed, options=options)`` without blocking the event loop."""
        result: tuple[dict[str, str], dict[str, Any]] = await self.acall(
            lambda env: env.reset(seed=seed, options=options)
        )
        return result

    async def astep(self, action: str) -> Step:
        """``env.step(action)`` without blocking the event loop."""
        result: Step = await self.acall(lambda env: env.step(action))
        return result

    def close(self) -> None:
        """Close the env on its thread (after a call in progress), stop the thread; idempotent:
        a second caller, on any thread, returns once the first one's close has finished."""
        with self._lock:
            if self._closing is None:
                self._closed = True
                self._closing = self._thread.submit(self._close_env)
            closing = self._closing
        try:
            closing.result()
        finally:
            self._thread.shutdown(wait=True)

    def _close_env(self) -> None:
        if self._env is not None:
            self._env.close()

    async def aclose(self) -> None:
        """:meth:`close` without blocking the event loop."""
        await asyncio.to_thread(self.close)

    async def __aenter__(self) -> AsyncReBenchEnv:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


__all__ = ["AsyncReBenchEnv"]

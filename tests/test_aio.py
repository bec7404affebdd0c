"""The async API: many episodes from one event loop, which no env call blocks."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import gymnasium as gym
import pytest

from rebench_gym.aio import AsyncReBenchEnv
from tests.conftest import HAVE_BWRAP

SANDBOX = "bwrap" if HAVE_BWRAP else "local"
KWARGS: dict[str, Any] = {"scale": "mini", "sandbox": SANDBOX, "anchors": (4.0, 3.0)}
ENV_ID = "RE-Bench/OptimizeKernel-v0"


def test_sixteen_concurrent_sleeps_overlap_and_the_loop_keeps_running() -> None:
    envs = [AsyncReBenchEnv.make(ENV_ID, **KWARGS) for _ in range(16)]

    async def main() -> tuple[float, list[Any], int]:
        try:
            await asyncio.gather(*(env.areset(seed=i) for i, env in enumerate(envs)))
            ticks = 0
            stop = asyncio.Event()

            async def ticker() -> None:  # runs only while the loop is free
                nonlocal ticks
                while not stop.is_set():
                    ticks += 1
                    await asyncio.sleep(0.01)

            tick_task = asyncio.create_task(ticker())
            start = time.monotonic()
            steps = await asyncio.gather(*(env.astep("sleep 1; echo slept") for env in envs))
            elapsed = time.monotonic() - start
            stop.set()
            await tick_task
            return elapsed, steps, ticks
        finally:
            await asyncio.gather(*(env.aclose() for env in envs))

    elapsed, steps, ticks = asyncio.run(main())
    assert elapsed < 8.0, f"16 concurrent `sleep 1` took {elapsed:.1f} s (serial: 16 s)"
    for obs, reward, terminated, truncated, info in steps:
        assert "slept" in obs["terminal"] and info["exit_code"] == 0
        assert reward == 0.0 and not terminated and not truncated
    # a blocked loop would tick about once; a free one ~100 times a second (10% is plenty)
    assert ticks >= 0.1 * elapsed / 0.01, f"the event loop was blocked ({ticks} ticks)"
    assert all(env.closed for env in envs)


def test_calls_run_in_order_on_the_envs_own_thread() -> None:
    env = AsyncReBenchEnv.make(ENV_ID, **KWARGS)

    async def main() -> list[str]:
        async with env:
            await env.areset()
            threads = {await env.acall(lambda _e: threading.get_ident()) for _ in range(3)}
            assert len(threads) == 1 and threading.get_ident() not in threads
            # issued together, run one after another in the order given
            results = await asyncio.gather(
                env.astep("echo one > solution/order.txt"),
                env.astep("echo two >> solution/order.txt"),
                env.astep("cat solution/order.txt"),
            )
            return [obs["terminal"] for obs, *_ in results]

    outputs = asyncio.run(main())
    assert outputs[2].split()[:2] == ["one", "two"]
    assert env.closed and not env.busy
    with pytest.raises(RuntimeError, match="closed"):
        env.submit(lambda e: e)


def test_an_env_given_ready_made_is_closed_with_it() -> None:
    made = gym.make(ENV_ID, **KWARGS)
    env = AsyncReBenchEnv(made)

    async def main() -> str:
        obs, _info = await env.areset()
        await env.aclose()
        await env.aclose()  # idempotent
        return obs["files"]

    assert "solution/" in asyncio.run(main())
    assert made.unwrapped._closed  # type: ignore[attr-defined]


def test_an_error_of_the_env_reaches_the_caller() -> None:
    env = AsyncReBenchEnv.make(ENV_ID, **KWARGS)

    async def main() -> None:
        async with env:
            with pytest.raises(Exception, match="reset"):
                await env.astep("true")  # before reset
            await env.areset()
            obs, *_ = await env.astep("true")
            assert "exit code 0" in obs["terminal"]

    asyncio.run(main())

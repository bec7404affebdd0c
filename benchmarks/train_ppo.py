"""Train a PPO policy (stable-baselines3) on a mini RE-Bench task through the RL wrappers.

The env stack is ``StepBudget -> DiscreteCommands -> EncodeObservation`` around
``gym.make(ENV_ID, scale="mini")``, in parallel envs (``SubprocVecEnv``, one process per env).
Every reward is a real score call of the task's scorer. The script:

1. for time-scored tasks, measures the anchors under the machine's current load (``--calibrate``);
2. trains PPO, printing the mean episode return after every update (the learning curve);
3. on held-out seeds (never used in training) runs, interleaved so both see the same load, a
   uniformly random policy over the same menu and the trained policy (greedy);
4. writes ``<out>/ppo_<task>.json`` (all numbers), ``<out>/ppo_<task>.csv`` (every training
   episode) and ``<out>/ppo_<task>.png`` (the learning curve with both evaluations).

Run it with ``pip install 'rebench-gym[sb3,plot]'``::

    python benchmarks/train_ppo.py       # OptimizeKernel mini: ~20 min idle, ~45 min loaded
    python benchmarks/train_ppo.py --total-steps 96 --eval-episodes 4   # a quick look

OptimizeKernel is the default because its actions (writing a solution variant) are instant and
an episode costs about one score call (~10 s); FixEmbedding's menu needs minutes of training
per repair. Its rewards are CPU timings, so they are noisy on a busy machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import rebench_gym
from rebench_gym.wrappers import DiscreteCommands, EncodeObservation, StepBudget, load_menu

# Checks that cost seconds and never change the score; an agent may add them back (--exclude).
DEFAULT_EXCLUDE = ("run_tests", "check_example")


def make_env_fn(
    env_id: str,
    sandbox: str | None,
    commands: list[str],
    max_steps: int,
    cache_dir: str | None,
    anchors: tuple[float, float] | None,
) -> Callable[[], gym.Env[Any, Any]]:
    """A picklable factory of the wrapped env (for SubprocVecEnv)."""

    def make() -> gym.Env[Any, Any]:
        from stable_baselines3.common.monitor import Monitor

        import rebench_gym  # noqa: F401 - registers the ids in the worker process

        warnings.filterwarnings("ignore", message="sandbox='local' gives the agent no isolation")
        kwargs: dict[str, Any] = {"scale": "mini", "cache_dir": cache_dir}
        if sandbox:
            kwargs["sandbox"] = sandbox
        if anchors:
            kwargs["anchors"] = anchors
        env: gym.Env[Any, Any] = gym.make(env_id, **kwargs)
        env = StepBudget(env, max_steps=max_steps)
        menu = {c.name: c for c in load_menu(env_id)}
        env = DiscreteCommands(env, [menu[n] for n in commands])
        env = EncodeObservation(env)
        return Monitor(env)

    return make


def calibrate_now(env_id: str, repeats: int) -> tuple[float, float] | None:
    """Anchors measured now (time-scored tasks only), in a throw-away cache."""
    from rebench_gym.calibration import calibrate
    from rebench_gym.tasks import get_task

    task = get_task(str(gym.spec(env_id).kwargs["task"]))
    if task.spec.scale("mini").anchors != "calibrate":
        return None  # constant anchors: nothing depends on the machine
    with tempfile.TemporaryDirectory(prefix="rebench-ppo-anchors-") as tmp:
        measured = calibrate(task, "mini", repeats=repeats, cache_dir=Path(tmp))
    print(f"anchors measured now: start {measured.start:.4f}, reference {measured.reference:.4f}")
    return measured.start, measured.reference


def run_episodes(
    env: gym.Env[Any, Any],
    policy: Callable[[np.ndarray, np.random.Generator], int],
    seeds: list[int],
    names: list[str],
    label: str = "",
) -> list[dict[str, Any]]:
    """Roll out one episode per seed; return, final score and the commands taken."""
    out = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        obs, _ = env.reset(seed=seed)
        total, taken, done = 0.0, [], False
        info: dict[str, Any] = {}
        while not done:
            index = policy(obs, rng)
            taken.append(names[index])
            obs, reward, terminated, truncated, info = env.step(index)
            total += float(reward)
            done = terminated or truncated
        out.append(
            {
                "seed": seed,
                "return": total,
                "final_normalized": info.get("final_normalized"),
                "commands": taken,
            }
        )
        print(f"  {label} seed {seed}: return {total:.3f}  {' -> '.join(taken)}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--env-id", default="RE-Bench/OptimizeKernel-v0")
    ap.add_argument("--sandbox", default=None, help="default: the safest available")
    ap.add_argument("--num-envs", type=int, default=2)
    ap.add_argument("--max-steps", type=int, default=2, help="StepBudget per episode")
    ap.add_argument("--total-steps", type=int, default=128, help="PPO env steps in all")
    ap.add_argument("--n-steps", type=int, default=8, help="PPO rollout length per env")
    ap.add_argument("--learning-rate", type=float, default=3e-3)
    ap.add_argument("--eval-episodes", type=int, default=8)
    ap.add_argument(
        "--check", action="store_true", help="run sb3's check_env first (a few score calls)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--exclude", nargs="*", default=list(DEFAULT_EXCLUDE))
    ap.add_argument("--anchors", type=float, nargs=2, default=None, metavar=("START", "REF"))
    ap.add_argument(
        "--calibrate",
        type=int,
        default=2,
        help="for time-scored tasks: measure start and reference N times each right now and "
        "use those anchors (rewards then reflect the machine's current load); 0: cached anchors",
    )
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--save-model", type=Path, default=None, help="save the PPO policy (.zip)")
    args = ap.parse_args(argv)

    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_checker import check_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    names = [c.name for c in load_menu(args.env_id) if c.name not in set(args.exclude)]
    anchors = tuple(args.anchors) if args.anchors else None
    if anchors is None and args.calibrate > 0:
        anchors = calibrate_now(args.env_id, args.calibrate)
    factory = make_env_fn(args.env_id, args.sandbox, names, args.max_steps, args.cache_dir, anchors)
    task = args.env_id.split("/")[-1].removesuffix("-v0")
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    eval_env = factory()
    print(f"{args.env_id} mini, menu of {len(names)}: {', '.join(names)}", flush=True)
    if args.check:
        check_env(eval_env, warn=True)  # stable-baselines3's own checker
        print("stable-baselines3 check_env: passed", flush=True)
    seeds = [10_000 + i for i in range(args.eval_episodes)]  # never used in training

    vec = SubprocVecEnv([factory for _ in range(args.num_envs)])
    vec.seed(args.seed)
    curve: list[dict[str, float]] = []
    episodes: list[dict[str, Any]] = []

    class Curve(BaseCallback):
        """Collect finished training episodes; print the mean return after each update."""

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    episodes.append(
                        {
                            "timestep": self.num_timesteps,
                            "return": float(info["episode"]["r"]),
                            "length": int(info["episode"]["l"]),
                            "wall_s": round(time.monotonic() - started, 1),
                        }
                    )
            return True

        def _on_rollout_end(self) -> None:
            recent = [e["return"] for e in episodes[-8:]]
            point = {
                "timestep": float(self.num_timesteps),
                "episodes": float(len(episodes)),
                "mean_return_last8": float(np.mean(recent)) if recent else float("nan"),
                "wall_s": round(time.monotonic() - started, 1),
            }
            curve.append(point)
            print(
                f"update {len(curve):3d}: steps {self.num_timesteps:4d}, episodes "
                f"{len(episodes):3d}, mean return (last 8 episodes) "
                f"{point['mean_return_last8']:.3f}, {point['wall_s']:.0f} s",
                flush=True,
            )

    model = PPO(
        "MlpPolicy",
        vec,
        n_steps=args.n_steps,
        batch_size=args.n_steps * args.num_envs,
        n_epochs=10,
        learning_rate=args.learning_rate,
        gamma=0.99,
        gae_lambda=0.95,
        ent_coef=0.01,
        clip_range=0.3,
        policy_kwargs={"net_arch": [64, 64]},
        seed=args.seed,
        verbose=0,
        device="cpu",
    )
    print(f"training PPO: {args.total_steps} steps in {args.num_envs} parallel envs", flush=True)
    model.learn(total_timesteps=args.total_steps, callback=Curve())
    vec.close()
    train_s = time.monotonic() - started

    if args.save_model:
        model.save(args.save_model)

    def greedy(obs: np.ndarray, _rng: np.random.Generator) -> int:
        action, _ = model.predict(obs, deterministic=True)
        return int(action)

    def uniform(_obs: np.ndarray, rng: np.random.Generator) -> int:
        return int(rng.integers(len(names)))

    # Interleaved (random, trained, random, ...) so both see the same machine load: the
    # rewards are CPU timings.
    print(f"held-out seeds {seeds[0]}..{seeds[-1]}, random policy then trained (greedy):")
    random_runs: list[dict[str, Any]] = []
    trained_runs: list[dict[str, Any]] = []
    for seed in seeds:
        random_runs += run_episodes(eval_env, uniform, [seed], names, "random ")
        trained_runs += run_episodes(eval_env, greedy, [seed], names, "trained")
    eval_env.close()

    random_mean = float(np.mean([r["return"] for r in random_runs]))
    trained_mean = float(np.mean([r["return"] for r in trained_runs]))
    summary = {
        "env_id": args.env_id,
        "scale": "mini",
        "menu": names,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "held_out_seeds": seeds,
        "random_mean_return": random_mean,
        "random_std_return": float(np.std([r["return"] for r in random_runs])),
        "trained_mean_return": trained_mean,
        "trained_std_return": float(np.std([r["return"] for r in trained_runs])),
        "random_runs": random_runs,
        "trained_runs": trained_runs,
        "learning_curve": curve,
        "training_episodes": len(episodes),
        "wall_s": round(time.monotonic() - started, 1),
        "train_wall_s": round(train_s, 1),
        "anchors": anchors,
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "rebench_gym": rebench_gym.__version__,
    }
    stem = args.out / f"ppo_{task}"
    stem.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    with stem.with_suffix(".csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["timestep", "return", "length", "wall_s"])
        writer.writeheader()
        writer.writerows(episodes)
    plot(stem.with_suffix(".png"), episodes, curve, random_mean, trained_mean, args.env_id)
    print(
        f"\nheld-out mean return over {len(seeds)} episodes: random {random_mean:.3f}, "
        f"trained PPO {trained_mean:.3f} ({summary['wall_s']:.0f} s in all); "
        f"wrote {stem}.json/.csv/.png",
        flush=True,
    )
    return 0


def plot(
    path: Path,
    episodes: list[dict[str, Any]],
    curve: list[dict[str, float]],
    random_mean: float,
    trained_mean: float,
    env_id: str,
) -> None:
    """The learning curve (episode returns and their running mean) with both baselines."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install 'rebench-gym[plot]'): no plot", flush=True)
        return
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=100)
    if episodes:
        x = [e["timestep"] for e in episodes]
        ax.scatter(x, [e["return"] for e in episodes], s=8, alpha=0.4, label="training episode")
    if curve:
        ax.plot(
            [c["timestep"] for c in curve],
            [c["mean_return_last8"] for c in curve],
            marker="o",
            label="mean of last 8 episodes",
        )
    ax.axhline(random_mean, color="grey", ls="--", label=f"random, held-out ({random_mean:.2f})")
    ax.axhline(
        trained_mean, color="green", ls=":", label=f"PPO greedy, held-out ({trained_mean:.2f})"
    )
    ax.set_xlabel("env steps")
    ax.set_ylabel("episode return (normalized score)")
    ax.set_title(f"PPO on {env_id} (mini)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())

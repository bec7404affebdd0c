"""Serving an RE-Bench env to RL trainers over OpenEnv (``rebench serve``; extra ``serve``).

:func:`~rebench_gym.serve.app.serve` runs OpenEnv's HTTP/WebSocket server with one
:class:`~rebench_gym.serve.session.ReBenchOpenEnv` (one env, one sandbox) per session, every
episode recorded in the run store. Clients are OpenEnv's own, e.g.
``openenv.core.GenericEnvClient(base_url="http://127.0.0.1:8000")``.
"""

from __future__ import annotations

from rebench_gym.serve.app import TOKEN_ENV, build_app, check_token, serve
from rebench_gym.serve.models import ReBenchAction, ReBenchObservation, ReBenchState
from rebench_gym.serve.session import ReBenchOpenEnv, ServedRun

__all__ = [
    "TOKEN_ENV",
    "ReBenchAction",
    "ReBenchObservation",
    "ReBenchOpenEnv",
    "ReBenchState",
    "ServedRun",
    "build_app",
    "check_token",
    "serve",
]

"""``rebench serve``: an RE-Bench env behind OpenEnv's own HTTP/WebSocket server.

The app is OpenEnv's: :class:`openenv.core.env_server.http_server.HTTPEnvServer` registers its
routes (``/ws`` sessions, ``/health``, ``/schema``, ``/metadata``, ``/mcp``) on a FastAPI app,
creates one :class:`~rebench_gym.serve.session.ReBenchOpenEnv` per WebSocket session, refuses a
session past ``max_sessions`` (``CAPACITY_REACHED``), answers malformed messages with an error
reply, destroys a session when its client disconnects, and reaps sessions idle past the
timeout. What rebench_gym adds, and why:

* OpenEnv's "production" routes: the stateless HTTP ``/reset`` and ``/step`` build a fresh env
  per request, here a whole sandbox outside the session limit, so they are not served.
* A busy session is not idle: OpenEnv counts idleness from the last finished message, so a
  10-minute training command would be reaped mid-step; :class:`ReBenchHTTPServer` marks
  sessions with a call in progress active every second.
* A token gate (:class:`TokenGate`): on any address but loopback every request, HTTP or
  WebSocket, must carry ``REBENCH_SERVE_TOKEN`` (``Authorization: Bearer TOKEN``, or HTTP Basic
  with the token as password, which OpenEnv's clients send for ``http://user:TOKEN@host:port``).
* Shutdown closes every session (their sandboxes and containers) and releases the run.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hmac
import ipaddress
import json
import os
import weakref
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, WebSocketDisconnect
from openenv.core.env_server.http_server import HTTPEnvServer
from openenv.core.env_server.types import ConcurrencyConfig, ServerMode

from rebench_gym.errors import UsageError
from rebench_gym.runs import RunOptions
from rebench_gym.serve.models import ReBenchAction, ReBenchObservation
from rebench_gym.serve.session import ReBenchOpenEnv, ServedRun

TOKEN_ENV = "REBENCH_SERVE_TOKEN"
MIN_TOKEN_CHARS = 16

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine (``localhost``, 127.0.0.0/8,
    ``::1``); any other name or address (``0.0.0.0`` included) is reachable from elsewhere."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_token(host: str, token: str | None) -> str | None:
    """The token the server will require: ``token`` (from ``$REBENCH_SERVE_TOKEN``), which a
    non-loopback ``host`` must have; ``None`` on loopback without one.

    Raises:
        UsageError: a non-loopback bind without a token, or a token too short to guess-proof.
    """
    if token is not None and token.strip() == "":
        token = None
    if token is None:
        if is_loopback(host):
            return None
        raise UsageError(
            f"serving on {host} (reachable from other machines) needs a token: set "
            f"{TOKEN_ENV} to a long random string (e.g. `export {TOKEN_ENV}=$(openssl rand "
            "-hex 24)`); clients connect to http://rebench:TOKEN@HOST:PORT"
        )
    if len(token) < MIN_TOKEN_CHARS:
        raise UsageError(f"{TOKEN_ENV} must be at least {MIN_TOKEN_CHARS} characters")
    return token


class TokenGate:
    """ASGI middleware: refuse every HTTP request and WebSocket handshake without the token.

    HTTP gets 401; a WebSocket handshake is closed before it is accepted (the client sees 403).
    The comparison takes the same time wherever the candidate differs.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._token = token.encode()

    def allowed(self, scope: Scope) -> bool:
        for name, value in scope.get("headers") or ():
            if name.lower() != b"authorization":
                continue
            kind, _, credential = value.partition(b" ")
            candidate = credential.strip()
            if kind.lower() == b"basic":
                try:
                    decoded = base64.b64decode(candidate, validate=True)
                except (binascii.Error, ValueError):
                    return False
                candidate = decoded.partition(b":")[2]
            elif kind.lower() != b"bearer":
                return False
            return hmac.compare_digest(candidate, self._token)
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind not in ("http", "websocket") or self.allowed(scope):
            await self.app(scope, receive, send)
            return
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = json.dumps({"detail": f"missing or wrong token (see {TOKEN_ENV})"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"www-authenticate", b'Bearer realm="rebench"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class QuietDisconnects:
    """ASGI middleware: a WebSocket client that closed first is not a server error.

    OpenEnv's ``/ws`` handler closes the socket after its session ends; when the client closed it
    already (every ``client.close()``), Starlette raises ``WebSocketDisconnect`` out of the app
    and the server would log a traceback per session.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except WebSocketDisconnect:
            if scope.get("type") != "websocket":
                raise


class ReBenchHTTPServer(HTTPEnvServer):
    """OpenEnv's server, with sessions that are mid-call kept from the idle reaper."""

    KEEPALIVE_S = 1.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._keepalive: asyncio.Task[None] | None = None
        self._envs: weakref.WeakSet[ReBenchOpenEnv] = weakref.WeakSet()

    async def _create_session(self) -> tuple[str, Any]:
        session_id, env = await super()._create_session()
        if isinstance(env, ReBenchOpenEnv):
            self._envs.add(env)  # closed at shutdown even when its session is gone already
        return session_id, env

    def _start_reaper(self) -> None:
        super()._start_reaper()
        if self._session_idle_timeout_s is not None and self._keepalive is None:
            self._keepalive = asyncio.create_task(self._keep_busy_sessions_alive())

    def _stop_reaper(self) -> None:
        super()._stop_reaper()
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None

    async def _keep_busy_sessions_alive(self) -> None:
        while True:
            await asyncio.sleep(self.KEEPALIVE_S)
            for session_id, env in list(self._sessions.items()):
                if isinstance(env, ReBenchOpenEnv) and env.busy:
                    self._update_session_activity(session_id)

    async def close_all_sessions(self) -> None:
        """Destroy every session and wait until every env is closed: the server is shutting
        down, and a session whose handler was cancelled may still be closing its env."""
        await asyncio.gather(*(self._destroy_session(sid) for sid in list(self._sessions)))
        await asyncio.gather(*(asyncio.to_thread(env.close) for env in list(self._envs)))


def build_app(
    run: ServedRun,
    *,
    max_sessions: int,
    idle_timeout: float | None,
    token: str | None,
) -> tuple[Any, ReBenchHTTPServer]:
    """The ASGI app serving ``run``'s env, and its OpenEnv server.

    Args:
        run: The run every session's episodes are recorded in (closed at shutdown).
        max_sessions: Sessions (each one env and sandbox) at a time; more are refused.
        idle_timeout: Seconds a session may stay silent before it is reaped (None: never).
        token: Required on every request when not None (see :class:`TokenGate`).
    """
    if max_sessions < 1:
        raise UsageError("max_sessions must be at least 1")
    if idle_timeout is not None and not idle_timeout > 0:
        raise UsageError("idle_timeout must be a positive number of seconds")
    app = FastAPI(
        title=f"rebench serve {run.options.env_id}",
        description="An RE-Bench task as an OpenEnv environment (WebSocket sessions at /ws).",
    )
    server = ReBenchHTTPServer(
        functools.partial(ReBenchOpenEnv, run),
        ReBenchAction,
        ReBenchObservation,
        concurrency_config=ConcurrencyConfig(
            max_concurrent_envs=max_sessions, session_timeout=idle_timeout
        ),
    )
    server.register_routes(app, mode=ServerMode.PRODUCTION)

    async def shut_down() -> None:
        await server.close_all_sessions()
        run.close()  # on the thread that opened the run's store

    app.router.on_shutdown.append(shut_down)
    asgi: ASGIApp = QuietDisconnects(app)
    if token is not None:
        asgi = TokenGate(asgi, token)
    return asgi, server


def serve(
    options: RunOptions,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_sessions: int = 8,
    idle_timeout: float | None = 600.0,
    token: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Serve ``options``'s env until interrupted (what ``rebench serve`` does).

    ``token`` defaults to ``$REBENCH_SERVE_TOKEN``; a non-loopback ``host`` needs one.

    Raises:
        UsageError: a bad id, task option or flag; a non-loopback bind without a token.
    """
    import uvicorn

    from rebench_gym.runs import check_run

    say = progress or (lambda _line: None)
    token = check_token(host, token if token is not None else os.environ.get(TOKEN_ENV))
    check_run(options, own_agent=True)
    run = ServedRun.open(options, say)
    try:
        app, _server = build_app(
            run, max_sessions=max_sessions, idle_timeout=idle_timeout, token=token
        )
        where = f"http://{host}:{port}"
        say(
            f"serving {options.env_id} ({options.scale}, sandbox {options.sandbox or 'bwrap'}) "
            f"on {where}: OpenEnv sessions at {where.replace('http', 'ws', 1)}/ws, at most "
            f"{max_sessions} at a time, idle timeout "
            f"{'none' if idle_timeout is None else f'{idle_timeout:g} s'}"
            + ("; every request must carry the token" if token else "")
        )
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5
        )
        uvicorn.Server(config).run()
    finally:
        run.close()


__all__ = ["TOKEN_ENV", "ReBenchHTTPServer", "TokenGate", "build_app", "check_token", "serve"]

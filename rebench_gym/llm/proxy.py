"""An OpenAI-compatible proxy on a Unix domain socket that meters and limits a model endpoint.

Tasks whose solution calls an LLM (RustCodecontests) start one per episode and one per score
call. The proxy listens on a Unix socket (the only channel every sandbox provider shares with the
agent: a file in the workspace, no network needed), forwards ``POST /v1/chat/completions`` to the
user's endpoint with the user's key (which never enters the sandbox), replaces the requested
model by the configured one, counts prompt and completion tokens and cost from each reply's
``usage``, refuses calls once a budget is spent (HTTP 402, which clients do not retry) and logs
every call (metadata, not contents) as JSON lines.

Streaming (``"stream": true``) is not supported and gets HTTP 400.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import socketserver
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from rebench_gym.errors import UsageError

#: US dollars per million (input, output) tokens of models whose price is known
KNOWN_PRICES: dict[str, tuple[float, float]] = {"gpt-3.5-turbo-0125": (0.5, 1.5)}
#: longest path a Unix socket may have on Linux
MAX_SOCKET_PATH = 107
MAX_REQUEST_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class ProxyConfig:
    """Where the proxy forwards to and what it allows.

    Attributes:
        base_url: the upstream's OpenAI-compatible base URL (ending in ``/v1``); ``None``: no
            endpoint configured, every call gets HTTP 503 with a message saying how to set one.
        model: the model every call is sent to (the client's ``model`` is replaced).
        api_key: the upstream key (never logged, never shown in ``info``).
        max_tokens: most prompt plus completion tokens in all.
        max_cost: most cost in dollars (needs prices).
        max_requests: most forwarded calls.
        price_input: dollars per million prompt tokens (default: :data:`KNOWN_PRICES`).
        price_output: dollars per million completion tokens.
        max_n: largest ``n`` (choices per call) allowed.
        timeout_s: seconds to wait for the upstream per call.
        max_concurrency: calls forwarded at the same time (more wait).
    """

    base_url: str | None = None
    model: str | None = None
    api_key: str | None = None
    max_tokens: int | None = None
    max_cost: float | None = None
    max_requests: int | None = None
    price_input: float | None = None
    price_output: float | None = None
    max_n: int = 64
    timeout_s: float = 300.0
    max_concurrency: int = 16

    def prices(self) -> tuple[float, float] | None:
        """``(input, output)`` dollars per million tokens, if known."""
        if self.price_input is not None and self.price_output is not None:
            return self.price_input, self.price_output
        return KNOWN_PRICES.get(self.model or "")

    @classmethod
    def from_options(
        cls, options: dict[str, Any], *, budget_prefix: str = "", **overrides: Any
    ) -> ProxyConfig:
        """Build a config from a task's ``task_options``.

        Keys: ``base_url``, ``model``, ``api_key_env`` (the name of the environment variable
        holding the key, default ``OPENAI_API_KEY``; the key itself is never put in options,
        which are recorded), ``price_input``/``price_output`` (dollars per million tokens) and
        the budget keys ``{prefix}max_tokens``, ``{prefix}max_cost``, ``{prefix}max_requests``.

        Raises:
            UsageError: an option has the wrong type, or a key is passed in the options.
        """
        if "api_key" in options:
            raise UsageError(
                "do not put the API key in task_options (they are recorded in trajectories and "
                "the run store); set an environment variable and pass its name as "
                "task_options['api_key_env'] (default OPENAI_API_KEY)"
            )
        env_name = str(options.get("api_key_env", "OPENAI_API_KEY"))
        base_url = options.get("base_url")
        model = options.get("model")
        for key, value in (("base_url", base_url), ("model", model)):
            if value is not None and not isinstance(value, str):
                raise UsageError(f"task_options[{key!r}] must be a string, not {value!r}")

        def number(key: str, integer: bool = False) -> Any:
            value = options.get(key)
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise UsageError(f"task_options[{key!r}] must be a number >= 0, not {value!r}")
            return int(value) if integer else float(value)

        values: dict[str, Any] = {
            "base_url": base_url.rstrip("/") if base_url else None,
            "model": model,
            "api_key": os.environ.get(env_name) or None,
            "max_tokens": number(f"{budget_prefix}max_tokens", integer=True),
            "max_cost": number(f"{budget_prefix}max_cost"),
            "max_requests": number(f"{budget_prefix}max_requests", integer=True),
            "price_input": number("price_input"),
            "price_output": number("price_output"),
        }
        values.update(overrides)
        return cls(**values)


class _UnixHTTPServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    allow_reuse_address = True


class LLMProxy:
    """The proxy service; an :class:`~rebench_gym.tasks.base.EpisodeService` named ``llm_proxy``.

    Args:
        socket_path: where to listen (a file is created; at most 107 characters).
        config: upstream and limits.
        log_path: a JSON-lines file that gets one line per call (created with its parents).
        endpoint: how the socket is named in :meth:`info` (e.g. its workspace-relative path).
    """

    name = "llm_proxy"

    def __init__(
        self,
        socket_path: Path,
        config: ProxyConfig,
        *,
        log_path: Path | None = None,
        endpoint: str | None = None,
    ) -> None:
        if len(str(socket_path)) > MAX_SOCKET_PATH:
            raise UsageError(f"socket path {socket_path} is longer than {MAX_SOCKET_PATH} bytes")
        if config.max_cost is not None and config.prices() is None:
            raise UsageError(
                f"a cost budget needs prices: model {config.model!r} has no known price; set "
                "task_options['price_input'] and ['price_output'] (dollars per million tokens)"
            )
        self.socket_path = Path(socket_path)
        self.config = config
        self.log_path = log_path
        self.endpoint = endpoint or str(socket_path)
        self._lock = threading.Lock()
        self._gate = threading.BoundedSemaphore(max(1, config.max_concurrency))
        self.requests = 0
        self.refused = 0
        self.errors = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self._cost = 0.0
        self._server: _UnixHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----- lifecycle -------------------------------------------------------------------------
    def start(self) -> LLMProxy:
        """Listen on the socket in a background thread; returns ``self``."""
        if self._server is not None:
            return self
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self._server = _UnixHTTPServer(str(self.socket_path), self._handler_class())
        os.chmod(self.socket_path, 0o666)  # the sandbox's user may differ from ours
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="llm-proxy", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and remove the socket; idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with contextlib.suppress(OSError):
            self.socket_path.unlink()

    def __enter__(self) -> LLMProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- accounting ------------------------------------------------------------------------
    @property
    def cost(self) -> float | None:
        """Dollars spent so far (``None`` when the model's price is unknown)."""
        return self._cost if self.config.prices() is not None else None

    def _exhausted(self) -> list[str]:
        c = self.config
        out = []
        if c.max_tokens is not None and self.prompt_tokens + self.completion_tokens >= c.max_tokens:
            out.append("max_tokens")
        if c.max_cost is not None and self._cost >= c.max_cost:
            out.append("max_cost")
        if c.max_requests is not None and self.requests >= c.max_requests:
            out.append("max_requests")
        return out

    def info(self) -> dict[str, Any]:
        """Usage and limits (JSON-serializable; never the key)."""
        c = self.config
        with self._lock:
            total = self.prompt_tokens + self.completion_tokens
            limits = {
                k: v
                for k, v in (
                    ("max_tokens", c.max_tokens),
                    ("max_cost", c.max_cost),
                    ("max_requests", c.max_requests),
                )
                if v is not None
            }
            used = {"max_tokens": total, "max_cost": self._cost, "max_requests": self.requests}
            return {
                "endpoint": self.endpoint,
                "model": c.model,
                "upstream": c.base_url,
                "requests": self.requests,
                "refused": self.refused,
                "errors": self.errors,
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": total,
                "cost": round(self._cost, 6) if c.prices() is not None else None,
                "limits": limits,
                "left": {k: max(0, v - used[k]) for k, v in limits.items()},
                "exhausted": self._exhausted(),
            }

    def _log(self, record: dict[str, Any]) -> None:
        if self.log_path is None:
            return
        with self._lock:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "a") as fh:
                fh.write(json.dumps(record) + "\n")

    # ----- forwarding ------------------------------------------------------------------------
    def handle_completion(self, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        """Forward one chat-completions request; returns ``(status, headers, body)``."""
        c = self.config
        started = time.time()
        record: dict[str, Any] = {
            "time": started,
            "requested_model": body.get("model"),
            "model": c.model,
            "n": body.get("n", 1),
            "messages": len(body.get("messages") or []),
        }
        if body.get("stream"):
            return self._refuse(record, 400, "the proxy does not support streaming")
        n = body.get("n", 1)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= c.max_n:
            return self._refuse(record, 400, f"n must be an integer from 1 to {c.max_n}")
        if c.base_url is None or c.model is None:
            return self._refuse(
                record,
                503,
                "no LLM endpoint is configured: pass gym.make(..., task_options={'base_url': "
                "..., 'model': ..., 'api_key_env': ...})",
            )
        with self._lock:
            exhausted = self._exhausted()
            if not exhausted:
                self.requests += 1
        if exhausted:
            return self._refuse(record, 402, f"budget exhausted ({', '.join(exhausted)})")
        body = {**body, "model": c.model}
        headers = {"Content-Type": "application/json"}
        if c.api_key:
            headers["Authorization"] = f"Bearer {c.api_key}"
        request = urllib.request.Request(
            c.base_url + "/chat/completions",
            data=json.dumps(body).encode(),
            headers=headers,
            method="POST",
        )
        with self._gate:
            try:
                with urllib.request.urlopen(request, timeout=c.timeout_s) as reply:
                    status, payload = reply.status, reply.read()
                    reply_headers = dict(reply.headers)
            except urllib.error.HTTPError as e:
                status, payload, reply_headers = e.code, e.read(), dict(e.headers or {})
            except (urllib.error.URLError, OSError, TimeoutError) as e:
                with self._lock:
                    self.errors += 1
                record.update(status=502, error=str(e), duration_s=time.time() - started)
                self._log(record)
                return _error(502, f"the upstream endpoint failed: {e}")
        out_headers = {"Content-Type": reply_headers.get("Content-Type", "application/json")}
        if "Retry-After" in reply_headers:
            out_headers["Retry-After"] = reply_headers["Retry-After"]
        prompt = completion = 0
        if status == 200:
            try:
                usage = json.loads(payload).get("usage") or {}
                prompt = int(usage.get("prompt_tokens") or 0)
                completion = int(usage.get("completion_tokens") or 0)
            except (ValueError, AttributeError, TypeError):
                pass
        cost = 0.0
        prices = c.prices()
        if prices is not None:
            cost = (prompt * prices[0] + completion * prices[1]) / 1e6
        with self._lock:
            self.prompt_tokens += prompt
            self.completion_tokens += completion
            self._cost += cost
            if status != 200:
                self.errors += 1
        record.update(
            status=status,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost=cost if prices is not None else None,
            duration_s=round(time.time() - started, 3),
        )
        self._log(record)
        return status, out_headers, payload

    def _refuse(
        self, record: dict[str, Any], status: int, message: str
    ) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.refused += 1
        record.update(status=status, error=message)
        self._log(record)
        return _error(status, message)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def address_string(self) -> str:  # Unix sockets have no client address
                return "unix"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    model = proxy.config.model or "unconfigured"
                    data = {"object": "list", "data": [{"id": model, "object": "model"}]}
                    self._send(200, {"Content-Type": "application/json"}, json.dumps(data).encode())
                else:
                    self._send(*_error(404, f"no route {self.path}"))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_REQUEST_BYTES:
                    self._send(*_error(413, "request too large"))
                    self.close_connection = True
                    return
                raw = self.rfile.read(length)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(*_error(404, f"no route {self.path}"))
                    return
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    self._send(*_error(400, "request body is not JSON"))
                    return
                if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                    self._send(*_error(400, "request needs a 'messages' list"))
                    return
                try:
                    self._send(*proxy.handle_completion(body))
                except (BrokenPipeError, ConnectionResetError):
                    return
                except Exception as e:  # a proxy bug is an HTTP 500, not a dead service
                    self._send(*_error(500, f"proxy failed: {type(e).__name__}: {e}"))

        return Handler


def _error(status: int, message: str) -> tuple[int, dict[str, str], bytes]:
    body = {"error": {"message": message, "type": "proxy_error", "code": status}}
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


def unix_socket_request(
    socket_path: Path, method: str, path: str, body: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    """A minimal HTTP/1.1 client over a Unix socket (for checks without the openai package)."""
    data = json.dumps(body).encode() if body is not None else b""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(60)
        sock.connect(str(socket_path))
        sock.sendall(head + data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    raw = b"".join(chunks)
    header, _, payload = raw.partition(b"\r\n\r\n")
    status = int(header.split(b" ", 2)[1])
    return status, json.loads(payload or b"{}")


__all__ = ["KNOWN_PRICES", "LLMProxy", "ProxyConfig", "unix_socket_request"]

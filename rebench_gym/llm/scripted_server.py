"""A local HTTP server speaking the OpenAI chat-completions API with scripted replies.

It stands in for a real model endpoint where none can exist (tests, offline demos): clients talk
to it exactly as to a hosted API (``base_url=server.base_url``), so the code under test does real
HTTP, real JSON and real retries. What it answers is decided by a *responder*: a function from the
request body to a reply, or a list of replies given in order.

Example::

    with ScriptedOpenAIServer(["first answer", ScriptedReply(status=429), "second"]) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test")
        ...
    server.requests  # every request body the server received, in order
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from rebench_gym.errors import UsageError

#: characters per token of the server's default token counts
CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class ScriptedReply:
    """One scripted answer.

    Attributes:
        content: the assistant message; a list gives one choice per item (for requests with
            ``n > 1``); a single string is repeated ``n`` times.
        status: HTTP status; anything but 200 sends an OpenAI-style error body instead.
        error: the error message for a non-200 status.
        retry_after: seconds for a ``Retry-After`` header (429/503 replies), if any.
        delay_s: seconds to wait before answering.
        prompt_tokens: usage to report; default: the request's characters / 4.
        completion_tokens: usage to report; default: the content's characters / 4.
        finish_reason: the choices' ``finish_reason``.
        raw: exact bytes to send as a 200 body instead of a well-formed reply (malformed
            replies for robustness tests).
    """

    content: str | Sequence[str] = ""
    status: int = 200
    error: str = "scripted error"
    retry_after: float | None = None
    delay_s: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str = "stop"
    raw: bytes | None = None


Responder = Callable[[dict[str, Any]], "ScriptedReply | str"]


class ScriptedOpenAIServer:
    """An OpenAI-compatible ``/v1/chat/completions`` server on localhost.

    Args:
        responder: a function from the request body (a dict) to a :class:`ScriptedReply` or a
            string, or a sequence of those answered in order (requests after the last one get
            HTTP 500 "script exhausted").
        api_key: if given, requests without ``Authorization: Bearer <api_key>`` get HTTP 401.
        model: the model name ``/v1/models`` lists.
        host: interface to listen on.
        port: port (0 picks a free one).

    Attributes:
        requests: every request body received (JSON-decoded), in arrival order.
    """

    def __init__(
        self,
        responder: Responder | Sequence[ScriptedReply | str],
        *,
        api_key: str | None = None,
        model: str = "scripted-model",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if callable(responder):
            self._responder: Responder = responder
        else:
            script = list(responder)
            if not all(isinstance(r, (str, ScriptedReply)) for r in script):
                raise UsageError("a script must hold strings or ScriptedReply objects")
            self._responder = _ScriptResponder(script)
        self.api_key = api_key
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._created = 0
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # ----- lifecycle -------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """The URL to give an OpenAI client (ends in ``/v1``)."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> ScriptedOpenAIServer:
        """Serve in a background thread; returns ``self``."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, name="scripted-openai", daemon=True
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving; idempotent."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> ScriptedOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- answering -------------------------------------------------------------------------
    def _answer(self, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.requests.append(body)
            self._created += 1
            serial = self._created
        reply = self._responder(body)
        if isinstance(reply, str):
            reply = ScriptedReply(content=reply)
        if reply.delay_s > 0:
            time.sleep(reply.delay_s)
        headers = {"Content-Type": "application/json"}
        if reply.status != 200:
            if reply.retry_after is not None:
                headers["Retry-After"] = f"{reply.retry_after:g}"
            kind = "rate_limit_error" if reply.status == 429 else "server_error"
            error = {"error": {"message": reply.error, "type": kind, "code": reply.status}}
            return reply.status, headers, json.dumps(error).encode()
        if reply.raw is not None:
            return 200, headers, reply.raw
        n = int(body.get("n") or 1)
        contents = [reply.content] * n if isinstance(reply.content, str) else list(reply.content)
        prompt_chars = sum(len(str(m.get("content") or "")) for m in body.get("messages", []))
        prompt_tokens = reply.prompt_tokens
        if prompt_tokens is None:
            prompt_tokens = -(-prompt_chars // CHARS_PER_TOKEN)
        completion_tokens = reply.completion_tokens
        if completion_tokens is None:
            completion_tokens = sum(-(-len(c) // CHARS_PER_TOKEN) for c in contents)
        payload: dict[str, Any] = {
            "id": f"chatcmpl-scripted-{serial}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(body.get("model") or self.model),
            "choices": [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": reply.finish_reason,
                    "logprobs": None,
                }
                for i, content in enumerate(contents)
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        return 200, headers, json.dumps(payload).encode()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _error(self, status: int, message: str) -> None:
                body = json.dumps({"error": {"message": message, "code": status}}).encode()
                self._send(status, {"Content-Type": "application/json"}, body)

            def _authorized(self) -> bool:
                if server.api_key is None:
                    return True
                if self.headers.get("Authorization") == f"Bearer {server.api_key}":
                    return True
                self._error(401, "invalid API key")
                return False

            def do_GET(self) -> None:
                if not self._authorized():
                    return
                if self.path.rstrip("/").endswith("/models"):
                    body = {"object": "list", "data": [{"id": server.model, "object": "model"}]}
                    self._send(200, {"Content-Type": "application/json"}, json.dumps(body).encode())
                else:
                    self._error(404, f"no route {self.path}")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if not self._authorized():
                    return
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._error(404, f"no route {self.path}")
                    return
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    self._error(400, "request body is not JSON")
                    return
                if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                    self._error(400, "request needs a 'messages' list")
                    return
                try:
                    status, headers, payload = server._answer(body)
                except Exception as e:  # a responder bug is an HTTP 500, not a dead server
                    self._error(500, f"responder failed: {type(e).__name__}: {e}")
                    return
                self._send(status, headers, payload)

        return Handler


class _ScriptResponder:
    """Answers from a fixed list, in order."""

    def __init__(self, script: list[ScriptedReply | str]) -> None:
        self._script = script
        self._next = 0
        self._lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> ScriptedReply | str:
        with self._lock:
            if self._next >= len(self._script):
                return ScriptedReply(status=500, error="script exhausted")
            reply = self._script[self._next]
            self._next += 1
        return reply


__all__ = ["CHARS_PER_TOKEN", "Responder", "ScriptedOpenAIServer", "ScriptedReply"]

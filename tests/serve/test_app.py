"""The server's own rules, without a server: the token gate, the bind check, the action form,
and the usage errors ``rebench serve`` gives before it starts anything."""

from __future__ import annotations

import base64
import json

import pytest

pytest.importorskip("openenv")

from pydantic import ValidationError

from rebench_gym.cli import main
from rebench_gym.errors import UsageError
from rebench_gym.serve.app import TokenGate, check_token, is_loopback
from rebench_gym.serve.models import ReBenchAction

TOKEN = "s3cret-token-0123456789"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.9.9.9", "::1", "localhost"])
def test_loopback_addresses(host: str) -> None:
    assert is_loopback(host)
    assert check_token(host, None) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "192.168.0.5", "my.host"])
def test_any_other_address_needs_a_long_token(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(UsageError, match="REBENCH_SERVE_TOKEN"):
        check_token(host, None)
    with pytest.raises(UsageError, match="REBENCH_SERVE_TOKEN"):
        check_token(host, "   ")
    with pytest.raises(UsageError, match="at least 16"):
        check_token(host, "short")
    assert check_token(host, TOKEN) == TOKEN


def _basic(user: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


@pytest.mark.parametrize(
    ("header", "allowed"),
    [
        (None, False),
        (b"Bearer " + TOKEN.encode(), True),
        (b"bearer " + TOKEN.encode(), True),
        (b"Bearer " + TOKEN.encode()[:-1], False),
        (b"Bearer " + TOKEN.encode() + b"x", False),
        (_basic("rebench", TOKEN), True),
        (_basic("anyone", TOKEN), True),
        (_basic(TOKEN, "nope"), False),
        (b"Basic !!!not-base64!!!", False),
        (b"Token " + TOKEN.encode(), False),
        (TOKEN.encode(), False),
    ],
)
def test_token_gate_reads_bearer_and_basic(header: bytes | None, allowed: bool) -> None:
    gate = TokenGate(lambda *a: None, TOKEN)  # type: ignore[arg-type,return-value]
    headers = [(b"host", b"x")] + ([(b"authorization", header)] if header else [])
    assert gate.allowed({"type": "http", "headers": headers}) is allowed


def test_actions_are_a_command_or_a_tool_call() -> None:
    assert ReBenchAction(command="ls -la").to_env_action() == "ls -la"
    call = ReBenchAction(tool="write_file", arguments={"path": "solution/a", "content": "x"})
    assert json.loads(call.to_env_action()) == {
        "tool": "write_file",
        "path": "solution/a",
        "content": "x",
    }
    for bad in (
        {},
        {"command": "ls", "tool": "bash"},
        {"command": "ls", "arguments": {"x": 1}},
        {"tool": "bash", "arguments": {"tool": "submit"}},
        {"command": "ls", "extra": 1},
    ):
        with pytest.raises(ValidationError):
            ReBenchAction.model_validate(bad)


def test_usage_errors_start_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("REBENCH_SERVE_TOKEN", raising=False)
    assert main(["serve", "RE-Bench/NoSuchTask-v0", "--scale", "mini"]) == 2
    kernel = "RE-Bench/OptimizeKernel-v0"
    assert main(["serve", kernel, "--scale", "mini", "--task-option", "nope=1"]) == 2
    assert "no task option" in capsys.readouterr().err
    assert main(["serve", kernel, "--scale", "mini", "--host", "0.0.0.0"]) == 2
    assert "REBENCH_SERVE_TOKEN" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["serve", kernel, "--port", "0"])
    with pytest.raises(SystemExit):
        main(["serve", kernel, "--max-sessions", "0"])

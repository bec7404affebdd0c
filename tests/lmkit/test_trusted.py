"""The trusted-worker helper: a crashed worker's stderr (which may quote hidden data) is never
passed on, only its exit status and the type name of its last exception (issue #21)."""

from __future__ import annotations

from rebench_gym.procs import run_worker

SECRET = "held-out text the worker saw"


def test_a_crash_reports_its_exception_type_not_its_text() -> None:
    # base64's command line opens its argument as a file: the traceback quotes the spec.
    result, message = run_worker("base64", {"data": SECRET}, timeout=60, what="sampling")
    assert result is None
    assert SECRET not in message, message
    assert message == "sampling crashed (exit 1): FileNotFoundError"


def test_a_usage_error_without_a_traceback_reports_no_text() -> None:
    # json.tool fails with an argparse error naming its argument (the spec) on stderr.
    result, message = run_worker("json.tool", {"data": SECRET}, timeout=60)
    assert result is None
    assert SECRET not in message, message
    assert message == "evaluation crashed (exit 2)"


def test_a_worker_without_a_result_line_reports_no_text() -> None:
    # `this` prints the Zen of Python (no JSON result), ignores its argument and exits 0.
    result, message = run_worker("this", {"data": SECRET}, timeout=60)
    assert result is None and message == "evaluation gave no result", message

"""RestrictedMLM: banned operations rejected by name (also when the solution forges the capture),
hidden held-out data, masking, and the full-scale preparation on small stand-in token files
(reference ~1 and start ~0 are checked in test_reference_start.py)."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from rebench_gym import actions
from rebench_gym.errors import AssetsError
from rebench_gym.lmkit import op_guard
from rebench_gym.lmkit.data import write_tokens
from rebench_gym.lmkit.mlm import held_out_windows, mask_tokens
from rebench_gym.tasks import get_task
from rebench_gym.tasks.restricted_mlm import capture
from rebench_gym.tasks.restricted_mlm.task import build_full
from tests.conftest import HAVE_BWRAP

ENV_ID = "RE-Bench/RestrictedMLM-v0"
SANDBOX = "bwrap" if HAVE_BWRAP else "local"


@pytest.fixture(scope="module")
def env(cache_dir: Path):  # type: ignore[no-untyped-def]
    get_task("restricted_mlm").prepare_assets("mini", cache_dir)
    e = gym.make(ENV_ID, scale="mini", sandbox=SANDBOX)
    yield e
    e.close()


BANNED_MODEL = """
import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


class M(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(174, 8)
        self.out = nn.Linear(8, 174)

    def forward(self, ids):
        h = self.emb(ids)
        {body}
        return self.out(h)


def get_trained_model():
    return M()
"""


def _score_model(env, body: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    env.reset()
    code = textwrap.dedent(BANNED_MODEL).replace("{body}", body)
    env.step(actions.write_file("solution/model.py", code))
    _, _, _, _, info = env.step("score")
    return dict(info["score"])


@pytest.mark.slow
def test_banned_operations_fail_the_score_call_with_their_name(env) -> None:  # type: ignore[no-untyped-def]
    score = _score_model(env, "h = F.softmax(h, dim=-1)")
    assert not score["valid"] and "softmax" in score["message"], score
    assert "model.py:" in score["message"]
    score = _score_model(env, "h = torch.from_numpy(np.tanh(h.detach().numpy()))")
    assert not score["valid"] and "numpy" in score["message"], score
    score = _score_model(env, "h = F.relu(h) * 0.5 + h")
    assert score["valid"], score


FORGED = """
import json, os
import torch
out = os.environ["RB_OUT_DIR"]
graph = {{"format": 1, "inputs": [
    {{"name": "w", "kind": "parameter", "key": "w", "shape": [174, 174], "dtype": "float32"}},
    {{"name": "tokens", "kind": "tokens", "key": "", "shape": [64, 128], "dtype": "int64"}}],
  "nodes": [
    {{"name": "e", "op": "aten.embedding.default", "args": [{{"ref": "w"}}, {{"ref": "tokens"}}],
      "kwargs": {{}}}},
    {{"name": "s", "op": "{op}", "args": [{{"ref": "e"}}, -1], "kwargs": {{}}}}],
  "output": "s"}}
torch.save({{"w": torch.zeros(174, 174)}}, os.path.join(out, "weights.pt"))
json.dump(graph, open(os.path.join(out, "graph.json"), "w"))
os._exit(0)
"""


@pytest.mark.slow
def test_a_forged_capture_cannot_smuggle_an_operator(env) -> None:  # type: ignore[no-untyped-def]
    """The solution's code can write any capture it likes; the trusted side still checks."""
    env.reset()
    for op, word in (("aten.softmax.int", "softmax"), ("builtins.eval", "not an ATen operator")):
        env.step(actions.write_file("solution/model.py", FORGED.format(op=op)))
        _, _, _, _, info = env.step("score")
        assert not info["score"]["valid"] and word in info["score"]["message"], info["score"]


# A capture whose forward pass indexes a small table with the held-out token ids times a
# million: allowed operators throughout, but out of range on real data, and the indexing error's
# text would name the index, i.e. a held-out token id (issue #21). On token id 0 it runs.
LEAKY_GRAPH = """
import json, os
import torch
out = os.environ["RB_OUT_DIR"]
graph = {"format": 1, "inputs": [
    {"name": "w", "kind": "parameter", "key": "w", "shape": [174, 174], "dtype": "float32"},
    {"name": "table", "kind": "buffer", "key": "table", "shape": [64, 4], "dtype": "float32"},
    {"name": "tokens", "kind": "tokens", "key": "", "shape": [64, 128], "dtype": "int64"}],
  "nodes": [
    {"name": "e", "op": "aten.embedding.default", "args": [{"ref": "w"}, {"ref": "tokens"}],
      "kwargs": {}},
    {"name": "s", "op": "aten.slice.Tensor", "args": [{"ref": "tokens"}, 1, 0, 4], "kwargs": {}},
    {"name": "m", "op": "aten.mul.Tensor", "args": [{"ref": "s"}, 1000000], "kwargs": {}},
    {"name": "g", "op": "aten.gather.default", "args": [{"ref": "table"}, 1, {"ref": "m"}],
      "kwargs": {}},
    {"name": "t", "op": "aten.sum.default", "args": [{"ref": "g"}], "kwargs": {}},
    {"name": "o", "op": "aten.add.Tensor", "args": [{"ref": "e"}, {"ref": "t"}], "kwargs": {}}],
  "output": "o"}
torch.save({"w": torch.zeros(174, 174), "table": torch.zeros(64, 4)},
           os.path.join(out, "weights.pt"))
json.dump(graph, open(os.path.join(out, "graph.json"), "w"))
os._exit(0)
"""


@pytest.mark.slow
def test_errors_on_held_out_data_do_not_carry_its_values(env) -> None:  # type: ignore[no-untyped-def]
    env.reset()
    env.step(actions.write_file("solution/model.py", LEAKY_GRAPH))
    obs, _, _, _, info = env.step("score")
    message = info["score"]["message"]
    assert not info["score"]["valid"], message
    shown = obs["terminal"] + "\n" + message + json.dumps(info["score_log"][-1]["message"])
    assert not re.search(r"\d+000000\b", shown), message  # no held-out id x 1e6 in the text
    assert "held-out" in message and "train.bin" in message, message  # how to debug it
    # The same graph fails with its full error text where the data is the agent's own.
    runner = op_guard.GraphRunner(
        op_guard.decode_graph(_graph_of(LEAKY_GRAPH)),
        {"w": torch.zeros(174, 174), "table": torch.zeros(64, 4)},
    )
    with pytest.raises(op_guard.GraphFormatError, match="index 5000000 is out of bounds"):
        runner(torch.full((64, 128), 5))


def _graph_of(script: str) -> dict[str, Any]:
    """The graph a forged-capture script writes (its ``graph = ...`` literal)."""
    literal = script.split("graph = ", 1)[1].split("\ntorch.save", 1)[0]
    return dict(json.loads(literal))


# The start model's code plus a prelude run at import, in the capture process (the warm
# parent's fresh child on the fast path, kept across the episode's score calls).
WARM_PRELUDE = """
import os, subprocess, sys, torch
if getattr(torch, "_rb_imported_before", False):
    raise RuntimeError("this capture process has run a solution before")
torch._rb_imported_before = True
lingering = [p for p in os.listdir("/proc") if p.isdigit() and b"rb-linger" in
             open(f"/proc/{p}/cmdline", "rb").read()]
if lingering:
    raise RuntimeError(f"a process of an earlier score call is still running: {lingering}")
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "rb-linger"],
                 start_new_session=True)
"""


@pytest.mark.slow
def test_each_capture_is_a_fresh_process_and_leaves_nothing_running(env) -> None:  # type: ignore[no-untyped-def]
    """Score calls of one episode share a warm parent but never a solution process: the
    module state a solution set and the processes it left behind are gone at the next call."""
    env.reset()
    start = env.unwrapped.sandbox.read_file("solution/model.py").decode()
    env.step(actions.write_file("solution/model.py", WARM_PRELUDE + start))
    for _ in range(3):
        _, _, _, _, info = env.step("score")
        assert info["score"]["valid"], info["score"]


@pytest.mark.slow
def test_a_solution_that_stops_the_warm_parent_loses_only_that_call(env) -> None:  # type: ignore[no-untyped-def]
    env.reset()
    start = env.unwrapped.sandbox.read_file("solution/model.py").decode()
    killer = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"
    env.step(actions.write_file("solution/model.py", killer + start))
    _, _, _, _, info = env.step("score")
    assert not info["score"]["valid"], info["score"]
    env.step(actions.write_file("solution/model.py", start))
    _, _, _, _, info = env.step("score")
    assert info["score"]["valid"], info["score"]
    # a capture that runs past the time limit is stopped, and the next call starts afresh
    env.unwrapped.score_timeout = 8
    env.step(actions.write_file("solution/model.py", "import time\ntime.sleep(60)\n" + start))
    _, _, _, _, info = env.step("score")
    assert not info["score"]["valid"] and "timed out" in info["score"]["message"], info["score"]
    env.step(actions.write_file("solution/model.py", start))
    _, _, _, _, info = env.step("score")
    env.unwrapped.score_timeout = None
    assert info["score"]["valid"], info["score"]


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_BWRAP, reason="bubblewrap is not installed")
def test_held_out_tokens_are_not_readable_from_the_sandbox(env, cache_dir: Path) -> None:  # type: ignore[no-untyped-def]
    env.reset()
    val = get_task("restricted_mlm").asset_dir("mini", cache_dir) / "val.bin"
    assert val.exists()
    obs, *_ = env.step("find / -name val.bin 2>/dev/null | head; ls data")
    listing = obs["terminal"].split("[exit")[0]
    assert "val.bin" not in listing and "train.bin" in listing


# ----- the rules, checked in-process (capture + trusted runner) --------------------------------
class _Banned(nn.Module):
    def __init__(self, body: Any) -> None:
        super().__init__()
        self.emb = nn.Embedding(20, 8)
        self.out = nn.Linear(8, 20)
        self.register_buffer("keep", torch.ones(8, dtype=torch.bool))
        self.register_buffer("scale", torch.ones(8))
        self.body = body

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(self, self.emb(ids)))


CASES = {
    "softmax": (lambda m, h: F.softmax(h, dim=-1), "softmax"),
    "division": (lambda m, h: h / 2, "division"),
    "exp": (lambda m, h: torch.exp(h), "exp"),
    "comparison": (lambda m, h: h * (h > 0), "comparison"),
    "where": (lambda m, h: torch.where(m.keep, h, 0.0), "torch.where"),
    "mean": (lambda m, h: h - h.mean(dim=-1, keepdim=True), "mean"),
    "numpy": (lambda m, h: torch.from_numpy(np.maximum(h.detach().numpy(), 0)), "numpy"),
    "item": (lambda m, h: h * h.sum().item(), "item"),
    "float to int": (lambda m, h: h.long().float(), "into integers"),
    "buffer update": (lambda m, h: h * m.scale.mul_(2), "changes the model's state"),
}


def _check(body: Any) -> torch.Tensor:
    model = _Banned(body).eval()
    graph, weights = capture.capture(model, 2, 16, "/nowhere")
    runner = op_guard.GraphRunner(op_guard.decode_graph(json.loads(json.dumps(graph))), weights)
    return runner(torch.randint(0, 20, (2, 16)))


@pytest.mark.slow
def test_each_banned_operation_is_rejected_and_named() -> None:
    for name, (body, word) in CASES.items():
        with pytest.raises((op_guard.RuleViolation, capture.RuleViolation)) as err:
            _check(body)
        assert word in str(err.value), (name, str(err.value))


@pytest.mark.slow
def test_allowed_operations_pass_and_compute_the_same_logits() -> None:
    def body(m: nn.Module, h: torch.Tensor) -> torch.Tensor:
        b, t, d = h.shape
        z = torch.cat([h.new_zeros((b, 1, d)), h, h.new_zeros((b, 1, d))], dim=1)
        w = z.as_strided((b, t, 3, d), (z.stride(0), d, d, 1)).reshape(b, t, 3 * d)
        mixed = torch.einsum("btk,dk->btd", w, torch.ones(d, 3 * d)) * 0.1
        return F.relu(mixed) + h.sum(-1, keepdim=True) - h[:, :, :1] ** 2

    torch.manual_seed(0)
    model = _Banned(body).eval()
    graph, weights = capture.capture(model, 2, 16, "/nowhere")
    runner = op_guard.GraphRunner(op_guard.decode_graph(graph), weights)
    ids = torch.randint(0, 20, (2, 16))
    with torch.no_grad():
        assert torch.allclose(runner(ids), model(ids), atol=1e-5)


def test_graphs_with_unknown_or_malformed_operators_are_rejected() -> None:
    base: dict[str, Any] = {
        "format": 1,
        "inputs": [
            {"name": "tokens", "kind": "tokens", "key": "", "shape": [1, 4], "dtype": "int64"}
        ],
        "output": "y",
    }

    def node(op: str, *args: Any) -> dict[str, Any]:
        return {"name": "y", "op": op, "args": list(args), "kwargs": {}}

    for op in ("aten.div.Tensor", "torch.ops.mylib.f", "builtins.eval", "aten.add.out"):
        graph = op_guard.decode_graph({**base, "nodes": [node(op, {"ref": "tokens"}, 2)]})
        with pytest.raises(op_guard.RuleViolation):
            op_guard.check_graph(graph)
    with pytest.raises(op_guard.GraphFormatError):
        op_guard.decode_graph({**base, "nodes": [{"op": "aten.add.Tensor"}]})
    with pytest.raises(op_guard.GraphFormatError):
        op_guard.decode_graph({**base, "inputs": [], "nodes": []})
    half = {"name": "h", "op": "aten.mul.Tensor", "args": [{"ref": "tokens"}, 0.5], "kwargs": {}}
    rounded = {
        **node("aten._to_copy.default", {"ref": "h"}),
        "kwargs": {"dtype": {"dtype": "int64"}},
    }
    rounding = op_guard.decode_graph({**base, "nodes": [half, rounded]})
    with pytest.raises(op_guard.RuleViolation, match="into integers"):
        op_guard.GraphRunner(rounding, {})(torch.arange(4).view(1, 4))
    ok = op_guard.decode_graph({**base, "nodes": [node("aten.mul.Tensor", {"ref": "tokens"}, 3)]})
    assert op_guard.GraphRunner(ok, {})(torch.arange(4).view(1, 4)).tolist() == [[0, 3, 6, 9]]
    zeros_please = {
        **node("aten.empty.memory_format", [1000]),
        "kwargs": {"dtype": {"dtype": "float32"}},
    }
    empty = op_guard.decode_graph({**base, "nodes": [zeros_please]})
    assert op_guard.GraphRunner(empty, {})(torch.zeros(1, 4, dtype=torch.long)).abs().sum() == 0


def test_held_out_windows_do_not_overlap_and_masking_is_fifteen_percent() -> None:
    data = np.arange(10_000, dtype=np.uint16)
    windows = held_out_windows(data, 128, 50, seed=3)
    assert windows.shape == (50, 128) and len(set(windows.flatten().tolist())) == 50 * 128
    assert not torch.equal(windows, held_out_windows(data, 128, 50, seed=4))
    batch = mask_tokens(windows, 9999, torch.Generator().manual_seed(0))
    assert (batch.mask.sum(dim=1) == round(0.15 * 128)).all()
    assert (batch.inputs[batch.mask] == 9999).all()
    assert torch.equal(batch.inputs[~batch.mask], windows[~batch.mask])


@pytest.mark.slow
def test_full_scale_preparation_on_stand_in_files(tmp_path: Path) -> None:
    src = tmp_path / "src" / "openwebtext"
    src.mkdir(parents=True)
    rng = np.random.default_rng(0)
    write_tokens(src / "train.bin", rng.integers(0, 64, 20_000))
    write_tokens(src / "val.bin", rng.integers(0, 64, 5_000))
    task = get_task("restricted_mlm")
    with pytest.raises(AssetsError, match="--source"):
        task.prepare_assets("full", tmp_path / "cache")
    params = task.with_params(
        "full",
        vocab_size=64,
        start_model={"steps": 3, "batch_size": 4, "n_embd": 8, "hidden": 16, "device": "cpu"},
    ).params("full")
    out = tmp_path / "assets"
    out.mkdir()
    build_full(out, tmp_path / "src", params)
    meta = json.loads((out / "meta.json").read_text())
    assert meta == {
        "vocab_size": 64,
        "mask_id": 64,
        "model_vocab_size": 65,
        "seq_len": 128,
        "mask_fraction": 0.15,
    }
    start = torch.load(out / "start_model.pth", weights_only=True)
    assert start["model"]["fc2.weight"].shape == (65, 16)
    assert (out / "val.bin").stat().st_size == 10_000
    with pytest.raises(AssetsError, match="lacks"):
        build_full(tmp_path / "other", tmp_path, params)


def test_env_passes_the_gymnasium_checker(env) -> None:  # type: ignore[no-untyped-def]
    from gymnasium.utils.env_checker import check_env

    check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset()
    assert "get_trained_model()" in obs["terminal"] and "$" not in obs["terminal"]

"""Runs inside the sandbox: captures the agent's forward pass as a graph.

Every score call captures in a fresh process that has never run the solution before: either
this file run on its own (a fresh interpreter), or a child forked by this file's warm parent
(``RB_SERVE_FDS``, :func:`serve`, kept for the episode by the scorer: it imports torch and the
tracer once and never imports the solution). It imports ``solution/model.py``, calls
``get_trained_model()`` and traces the model's forward pass with ``make_fx`` on *fake* tensors
(shapes only: the held-out data never enters the sandbox), functionalized, while a
torch-function mode refuses to turn tensor values into Python or numpy values. It writes

* ``$RB_OUT_DIR/graph.json``: ``{"format": 1, "inputs": [...], "nodes": [...], "output": NAME}``:
  every placeholder (``kind`` parameter/buffer/constant/tokens, state ``key``, ``shape``,
  ``dtype``) and every operator call (``name``, ``op`` such as ``"aten.addmm.default"`` or
  ``"getitem"``, ``args``/``kwargs`` as JSON where a node is ``{"ref": NAME}``, a dtype
  ``{"dtype": "float32"}``, a device ``{"device": ...}``, a layout ``{"layout": ...}``, a memory
  format ``{"memory_format": ...}``, a non-finite float ``{"float": "inf"}``, and ``where``:
  the agent's source line);
* ``$RB_OUT_DIR/weights.pt``: ``{key: tensor}`` for every parameter, buffer and constant;
* or ``$RB_OUT_DIR/error.json``: ``{"error": TEXT}``.

Nothing here is trusted: once the solution is imported it may change anything in this process.
The scorer outside only reads the files, checks every operator of the graph against its
allowlist and runs the graph itself (``rebench_gym.lmkit.op_guard``).
"""

import json
import math
import os
import re
import struct
import sys
import traceback

import torch
from torch import fx

FORMAT_VERSION = 1

#: Tensor methods that move values out of torch (into Python numbers or numpy)
LEAKS = {
    "numpy": "Tensor.numpy() (numpy inside forward)",
    "__array__": "numpy on a tensor (np.asarray / np.* on a tensor)",
    "__array_wrap__": "numpy on a tensor",
    "item": "Tensor.item() (a Python number from a tensor)",
    "tolist": "Tensor.tolist() (Python numbers from a tensor)",
    "__float__": "float(tensor) (a Python number from a tensor)",
    "__int__": "int(tensor) (a Python number from a tensor)",
    "__bool__": "bool(tensor) or `if tensor` (a comparison on tensor values)",
    "__index__": "a tensor used as a Python index",
    "__complex__": "complex(tensor)",
}


class RuleViolation(Exception):
    pass


def make_guard():
    from torch.overrides import TorchFunctionMode

    blocked = {getattr(torch.Tensor, name): what for name, what in LEAKS.items()}

    class LeakGuard(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            what = blocked.get(func)
            if what is not None:
                raise RuleViolation(f"the forward pass uses {what}, which is not allowed")
            return func(*args, **(kwargs or {}))

    return LeakGuard


def encode(value):
    if isinstance(value, fx.Node):
        return {"ref": value.name}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, torch.dtype):
        return {"dtype": str(value).replace("torch.", "")}
    if isinstance(value, torch.device):
        return {"device": str(value)}
    if isinstance(value, torch.layout):
        return {"layout": str(value).replace("torch.", "")}
    if isinstance(value, torch.memory_format):
        return {"memory_format": str(value).replace("torch.", "")}
    raise RuleViolation(f"the graph has an argument of unsupported type {type(value).__name__}")


def where(node, solution_dir):
    trace = node.meta.get("stack_trace") or ""
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)\n\s*(.*)', trace)
    mine = [f for f in frames if f[0].startswith(solution_dir)] or frames
    if not mine:
        return ""
    path, line, func, code = mine[-1]
    return f"{os.path.basename(path)}:{line} in {func}: {code.strip()[:120]}"


def capture(model, batch, seq, solution_dir):
    from torch.func import functional_call, functionalize
    from torch.fx.experimental.proxy_tensor import make_fx

    guard = make_guard()
    params, buffers = dict(model.named_parameters()), dict(model.named_buffers())
    keys = [*params, *buffers]
    kinds = {**dict.fromkeys(params, "parameter"), **dict.fromkeys(buffers, "buffer")}

    def forward(state, tokens):
        with guard():
            return functional_call(model, dict(zip(keys, state, strict=True)), (tokens,))

    # ATen operators on fake tensors, functionalized: in-place operators become out-of-place
    # ones, and a write to a parameter or buffer remains only as a copy_ into its placeholder
    example = torch.zeros(batch, seq, dtype=torch.long)
    with torch.no_grad():
        traced = make_fx(
            functionalize(forward, remove="mutations"),
            tracing_mode="fake",
            record_stack_traces=True,
            _allow_non_fake_inputs=True,  # tensors held outside parameters and buffers
        )([*params.values(), *buffers.values()], example)
    placeholders = [n for n in traced.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != len(keys) + 1:
        raise RuleViolation("the forward pass must take one tensor of token ids")
    names = {n.name: key for n, key in zip(placeholders, keys, strict=False)}
    inputs, weights = [], {}

    def add_input(node, kind, key, value):
        if not isinstance(value, torch.Tensor):
            raise RuleViolation(f"the model has an input {key!r} that is not a tensor")
        inputs.append(
            {
                "name": node.name,
                "kind": kind,
                "key": key,
                "shape": list(value.shape),
                "dtype": str(value.dtype).replace("torch.", ""),
            }
        )

    state = {**params, **buffers}
    for node, key in zip(placeholders, keys, strict=False):
        add_input(node, kinds[key], key, state[key])
        weights[key] = state[key].detach().to("cpu").contiguous().clone()
    add_input(placeholders[-1], "tokens", "", example)
    nodes, mutated = [], []
    for node in traced.graph.nodes:
        if node.op == "get_attr":  # a tensor the forward pass made or held outside its state
            value = getattr(traced, node.target)
            add_input(node, "constant", node.target, value)
            weights[node.target] = value.detach().to("cpu").contiguous().clone()
        elif node.op == "call_function":
            is_getitem = getattr(node.target, "__name__", "") == "getitem"
            op = "getitem" if is_getitem else str(node.target)
            if op == "aten.copy_.default" and node.args[0].name in names:
                mutated.append(names[node.args[0].name])
                continue
            nodes.append(
                {
                    "name": node.name,
                    "op": op,
                    "args": encode(list(node.args)),
                    "kwargs": {k: encode(v) for k, v in node.kwargs.items()},
                    "where": where(node, solution_dir),
                }
            )
        elif node.op not in ("placeholder", "output"):
            raise RuleViolation(f"the graph has an unsupported node {node.op} {node.target}")
    if mutated:
        raise RuleViolation(
            f"the forward pass changes the model's state ({', '.join(mutated[:3])}); "
            "it must be a pure function of the token ids"
        )
    (output,) = [n for n in traced.graph.nodes if n.op == "output"]
    results = output.args[0]
    results = list(results) if isinstance(results, (list, tuple)) else [results]
    if len(results) != 1 or not isinstance(results[0], fx.Node):
        raise RuleViolation(f"forward must return one tensor (the logits), not {len(results)}")
    graph = {
        "format": FORMAT_VERSION,
        "inputs": inputs,
        "nodes": nodes,
        "output": results[0].name,
    }
    return graph, weights


def main():
    solution_dir = os.environ["RB_SOLUTION_DIR"]
    out_dir = os.environ["RB_OUT_DIR"]
    batch, seq = int(os.environ["RB_BATCH"]), int(os.environ["RB_SEQ"])
    sys.path.insert(0, solution_dir)
    try:
        torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
        import model as solution_model

        if not hasattr(solution_model, "get_trained_model"):
            raise RuleViolation("solution/model.py has no get_trained_model()")
        model = solution_model.get_trained_model()
        if not isinstance(model, torch.nn.Module):
            raise RuleViolation(
                f"get_trained_model() returned {type(model).__name__}, not a torch.nn.Module"
            )
        model = model.to("cpu").eval()
        graph, weights = capture(model, batch, seq, solution_dir)
        torch.save(weights, os.path.join(out_dir, "weights.pt"))
        with open(os.path.join(out_dir, "graph.json"), "w") as fh:
            json.dump(graph, fh)
    except RuleViolation as e:
        _error(out_dir, f"rule violation: {e}")
    except BaseException as e:
        violation = _find_violation(e)
        if violation is not None:
            _error(out_dir, f"rule violation: {violation}")
        else:
            _error(out_dir, "could not capture the model's forward pass:\n" + _tail())


def _find_violation(exc):
    """A RuleViolation raised while tracing may come back wrapped; find it."""
    seen = 0
    while exc is not None and seen < 20:
        if isinstance(exc, RuleViolation):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    text = traceback.format_exc()
    match = re.search(r"RuleViolation: (.*)", text)
    return match.group(1) if match else None


def _tail():
    return traceback.format_exc()[-3000:]


def _error(out_dir, text):
    with open(os.path.join(out_dir, "error.json"), "w") as fh:
        json.dump({"error": text[-4000:]}, fh)


def serve(ctl_fd, done_fd):
    """The warm parent: import the tracer once (a capture of a small module of its own), say
    ``Z`` on ``done_fd``, then for every ``g`` read from ``ctl_fd`` fork one child that captures
    the solution as :func:`main` does, wait for it and say ``D`` and its exit code (int32). It
    never imports the solution, and each child closes both pipes before it does (the scorer
    believes only the files)."""
    torch.set_num_threads(1)  # no thread pool exists in the parent when it forks
    warm = torch.nn.Sequential(torch.nn.Embedding(4, 2), torch.nn.Linear(2, 4))
    capture(warm, 1, 2, "/nowhere")
    os.write(done_fd, b"Z")
    while os.read(ctl_fd, 1) == b"g":
        pid = os.fork()
        if pid == 0:
            os.close(ctl_fd)
            os.close(done_fd)
            try:
                main()
            finally:
                _exit_now()
        _, status = os.waitpid(pid, 0)
        os.write(done_fd, b"D" + struct.pack("<i", os.waitstatus_to_exitcode(status)))


def _exit_now():
    """Exit without the interpreter's teardown (torch's tracing modules: ~0.3-0.7 s); every
    file is written and closed by then."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    if os.environ.get("RB_SERVE_FDS"):
        serve(*(int(fd) for fd in os.environ["RB_SERVE_FDS"].split(",")))
    else:
        main()
    if os.environ.get("RB_SKIP_TEARDOWN") == "1":  # not on the baseline scoring path
        _exit_now()

"""Runs inside the sandbox: imports the agent's solution and answers, in a fresh process (a
fresh interpreter, or a child of the forking parent below).

This file runs next to a read-only copy of ``solution/``. It is not trusted: once the solution is
imported it may change anything here. The scorer outside therefore keeps the clock and the
correct answers itself and only believes bytes it receives.

Protocol on two pipes (file descriptors in RB_IN_FD / RB_OUT_FD, or named FIFOs at the paths in
RB_IN_PATH / RB_OUT_PATH where the sandbox cannot pass descriptors), each message a 9-byte header
(one command byte, little-endian uint64 length) and a payload:
  runner -> 'R' ready | 'E' error text
  'X' uint64 n    -> read n int8 values from the shared input file (RB_IO_DIR/in.bin), compute,
                     write the output to RB_IO_DIR/out.bin (dtype byte at offset 0, data from
                     offset 8) -> 'Y' uint64 output bytes
  'G' uint64 seed + uint64 n -> generate the input on the device from the seed, synchronize
                     -> 'D' (not timed)
  'C' uint64 seed + uint64 k -> patch k positions of that input (drawn from the seed, see
                     patch_input), call prefix_sum on it, synchronize -> 'D' (the timed call)
  'F'             -> 'Y' (the output of the last 'C')
  'Q'             -> exit

The scorer keeps its own copy of the input generation and the patch (task.py), which must draw
exactly the same numbers.

'R' carries two little-endian doubles, the seconds this process spent importing torch and the
solution (a breakdown of the score call's time only: the scorer trusts nothing else in it).

Forking parent (RB_CTL_SOCK set; sandboxes that pass descriptors): one score call spreads its
timed calls over several fresh solution processes, and each used to start an interpreter and
import torch (seconds) for well under a second of work. This process instead imports torch once,
never imports or runs the solution, makes itself non-dumpable (no same-uid process may read or
write its memory through /proc; ptrace is refused by the sandbox's seccomp filter anyway) and
forks one fresh child per solution process. The scorer keeps it for the whole episode (its
solution directory is refilled for every score call). On the Unix socket RB_CTL_SOCK (only the
scorer holds the other end) it says 'Z' + the torch import seconds once, then for each child it
receives one byte 'g' with two descriptors, a new pipe pair (in, out), forks, closes its copies
and waits for the child. The child closes the socket, becomes dumpable again and runs the
protocol above on its pipe pair. The parent reads nothing a child wrote; the scorer kills
everything a child started before it sends the next 'g'.
"""

import os
import struct
import sys
import time
import traceback

IN_FD = OUT_FD = -1
DEVICE = os.environ.get("RB_DEVICE", "cpu")
_read = os.read
_write = os.write


_readv = os.readv


def recv_exact(n):
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = _readv(IN_FD, [view[got:]])
        if not k:
            raise SystemExit(0)
        got += k
    return buf


def send(cmd, *parts):
    size = sum(memoryview(p).nbytes for p in parts)
    for data in (struct.pack("<cQ", cmd, size), *parts):
        data = memoryview(data).cast("B")
        while data:
            data = data[_write(OUT_FD, data) :]


def shared(name):
    import mmap

    with open(os.path.join(os.environ["RB_IO_DIR"], name), "r+b") as fh:
        return mmap.mmap(fh.fileno(), 0)


def open_channel():
    """The pipe pair of a process started on its own (not forked by the parent)."""
    global IN_FD, OUT_FD
    if "RB_IN_PATH" in os.environ:
        # Named FIFOs (sandboxes that cannot pass descriptors, e.g. docker): open the input
        # first, the scorer opens its ends in the same order.
        IN_FD = os.open(os.environ["RB_IN_PATH"], os.O_RDONLY)
        OUT_FD = os.open(os.environ["RB_OUT_PATH"], os.O_WRONLY)
    else:
        IN_FD = int(os.environ["RB_IN_FD"])
        OUT_FD = int(os.environ["RB_OUT_FD"])


def set_dumpable(flag):
    """prctl(PR_SET_DUMPABLE, flag); raises OSError when the kernel refuses."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(4, int(flag), 0, 0, 0) != 0:  # PR_SET_DUMPABLE
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE) failed")


def fork_children():
    """The forking parent (see the module docstring): never imports the solution."""
    global IN_FD, OUT_FD
    import socket

    ctl = socket.socket(fileno=int(os.environ["RB_CTL_SOCK"]))
    start = time.perf_counter()
    import numpy  # noqa: F401  (what every child needs, imported once; numpy for encode)
    import torch  # noqa: F401

    torch_s = time.perf_counter() - start
    set_dumpable(False)
    ctl.sendall(b"Z" + struct.pack("<d", torch_s))
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(ctl, 1, 2)
        except OSError:
            return
        if msg != b"g" or len(fds) != 2:
            for fd in fds:
                os.close(fd)
            return
        pid = os.fork()
        if pid == 0:
            ctl.close()
            set_dumpable(True)
            IN_FD, OUT_FD = fds
            try:
                main(torch_s=0.0)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(0)
        for fd in fds:
            os.close(fd)
        os.waitpid(pid, 0)


def main(torch_s=None):
    sys.path.insert(0, os.environ["RB_SOLUTION_DIR"])
    if "RB_IO_DIR" in os.environ:
        in_mm, out_mm = shared("in.bin"), shared("out.bin")
    try:
        start = time.perf_counter()
        import torch

        if torch_s is None:
            torch_s = time.perf_counter() - start
        start = time.perf_counter()
        synchronize = torch.cuda.synchronize if DEVICE.startswith("cuda") else (lambda: None)
        from solution import prefix_sum

        solution_s = time.perf_counter() - start
    except BaseException:
        send(b"E", traceback.format_exc().encode()[-4000:])
        return
    send(b"R", struct.pack("<dd", torch_s, solution_s))
    last = x = None
    while True:
        cmd, length = struct.unpack("<cQ", recv_exact(9))
        payload = recv_exact(length) if length else b""
        try:
            if cmd == b"Q":
                return
            if cmd == b"X":
                (n,) = struct.unpack("<Q", payload)
                x = torch.frombuffer(in_mm, dtype=torch.int8, count=n).to(torch.int32)
                itemsize, data = encode(prefix_sum(x.to(DEVICE)), x.shape, torch)
                out_mm[0:1] = itemsize
                out_mm[8 : 8 + data.nbytes] = data.cast("B")
                send(b"Y", struct.pack("<Q", data.nbytes))
            elif cmd == b"G":
                seed, n = struct.unpack("<QQ", payload)
                x = generate_input(torch, seed, n)
                synchronize()
                send(b"D")
            elif cmd == b"C":
                seed, k = struct.unpack("<QQ", payload)
                patch_input(torch, x, seed, k)
                last = (prefix_sum(x), x.shape)
                synchronize()
                send(b"D")
            elif cmd == b"F":
                send(b"Y", *encode(last[0], last[1], torch))
            else:
                send(b"E", b"unknown command")
        except BaseException:
            send(b"E", traceback.format_exc().encode()[-4000:])


def generate_input(torch, seed, n):
    """The timed call's input before its patch: n values of randint(-10, 10), int32."""
    gen = torch.Generator(device=DEVICE)
    gen.manual_seed(seed)
    return torch.randint(-10, 10, (n,), dtype=torch.int32, device=DEVICE, generator=gen)


def patch_input(torch, x, seed, k):
    """Overwrite one random position in each of k equal strata of x with a fresh value."""
    n = x.numel()
    k = max(1, min(k, n))
    stride = n // k
    gen = torch.Generator(device=DEVICE)
    gen.manual_seed(seed)
    offsets = torch.randint(0, stride, (k,), dtype=torch.int64, device=DEVICE, generator=gen)
    values = torch.randint(-10, 10, (k,), dtype=torch.int32, device=DEVICE, generator=gen)
    idx = torch.arange(k, dtype=torch.int64, device=DEVICE) * stride + offsets
    x[idx] = values


def encode(y, shape, torch):
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"prefix_sum returned {type(y).__name__}, not a torch.Tensor")
    if tuple(y.shape) != tuple(shape):
        raise ValueError(f"output shape {tuple(y.shape)} differs from input shape {tuple(shape)}")
    if y.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"output dtype {y.dtype}; expected torch.int32 (or torch.int64)")
    arr = y.detach().to("cpu").contiguous().numpy()
    return bytes([arr.dtype.itemsize]), arr.data


if __name__ == "__main__":
    if "RB_CTL_SOCK" in os.environ:
        fork_children()
    else:
        open_channel()
        main()

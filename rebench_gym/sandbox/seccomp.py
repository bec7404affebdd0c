"""A seccomp filter for the ``bwrap`` sandbox: the system calls an agent never needs.

The filter is a classic-BPF program (what the kernel's ``SECCOMP_SET_MODE_FILTER`` and bubblewrap's
``--seccomp FD`` take), built here for x86-64 and AArch64. It refuses with ``EPERM``:

* new namespaces: ``unshare``, ``setns`` and ``clone`` with any ``CLONE_NEW*`` flag (``clone3``
  answers ``ENOSYS``, its flags are out of a filter's reach, so the C library falls back to
  ``clone``);
* mounts and root changes: ``mount``, ``umount2``, ``pivot_root``, ``chroot`` and the new mount API;
* other processes and the kernel: ``ptrace``, ``process_vm_writev``, kernel keyrings, ``bpf``,
  ``perf_event_open``, ``userfaultfd``, module loading, ``kexec``, ``reboot``, swap, quotas,
  accounting, clocks, ``syslog``, host and domain names, file handles, I/O ports.

Anything else is allowed. A call for another architecture's ABI (x32 on x86-64 included) kills
the process.
"""

from __future__ import annotations

import errno
import os
import platform
import struct
from functools import cache

from rebench_gym.errors import SandboxUnavailableError

# BPF opcodes (linux/bpf_common.h) and seccomp return values (linux/seccomp.h).
_LD_W_ABS = 0x20
_JEQ = 0x15
_JGE = 0x35
_JSET = 0x45
_RET = 0x06
_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000
_KILL_PROCESS = 0x80000000
# struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6] (little-endian)
_NR, _ARCH, _ARG0_LOW = 0, 4, 16
# CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |
# CLONE_NEWNET
CLONE_NEW_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000
CLONE_NEW_FLAGS |= 0x40000000

#: system calls refused with EPERM, by name (numbers below per architecture)
DENIED = [
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "ptrace",
    "process_vm_writev",
    "add_key",
    "request_key",
    "keyctl",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "quotactl",
    "acct",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "syslog",
    "sethostname",
    "setdomainname",
    "name_to_handle_at",
    "open_by_handle_at",
    "lookup_dcookie",
    "vhangup",
    "iopl",
    "ioperm",
    "uselib",
    "nfsservctl",
]

# Numbers from the kernel's uapi headers (asm/unistd_64.h; asm-generic/unistd.h for AArch64).
_X86_64 = {
    "clone": 56, "clone3": 435, "unshare": 272, "setns": 308, "mount": 165, "umount2": 166,
    "pivot_root": 155, "chroot": 161, "open_tree": 428, "move_mount": 429, "fsopen": 430,
    "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442, "ptrace": 101,
    "process_vm_writev": 311, "add_key": 248, "request_key": 249, "keyctl": 250, "bpf": 321,
    "perf_event_open": 298, "userfaultfd": 323, "init_module": 175, "finit_module": 313,
    "delete_module": 176, "kexec_load": 246, "kexec_file_load": 320, "reboot": 169,
    "swapon": 167, "swapoff": 168, "quotactl": 179, "acct": 163, "settimeofday": 164,
    "clock_settime": 227, "clock_adjtime": 305, "adjtimex": 159, "syslog": 103,
    "sethostname": 170, "setdomainname": 171, "name_to_handle_at": 303,
    "open_by_handle_at": 304, "lookup_dcookie": 212, "vhangup": 153, "iopl": 172, "ioperm": 173,
    "uselib": 134, "nfsservctl": 180,
}  # fmt: skip
_AARCH64 = {
    "clone": 220, "clone3": 435, "unshare": 97, "setns": 268, "mount": 40, "umount2": 39,
    "pivot_root": 41, "chroot": 51, "open_tree": 428, "move_mount": 429, "fsopen": 430,
    "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442, "ptrace": 117,
    "process_vm_writev": 271, "add_key": 217, "request_key": 218, "keyctl": 219, "bpf": 280,
    "perf_event_open": 241, "userfaultfd": 282, "init_module": 105, "finit_module": 273,
    "delete_module": 106, "kexec_load": 104, "kexec_file_load": 294, "reboot": 142,
    "swapon": 224, "swapoff": 225, "quotactl": 60, "acct": 89, "settimeofday": 170,
    "clock_settime": 112, "clock_adjtime": 266, "adjtimex": 171, "syslog": 116,
    "sethostname": 161, "setdomainname": 162, "name_to_handle_at": 264,
    "open_by_handle_at": 265, "lookup_dcookie": 18, "vhangup": 58, "nfsservctl": 42,
}  # fmt: skip
# machine name -> (AUDIT_ARCH_*, numbers, lowest number of a foreign ABI or None)
_ARCHES = {
    "x86_64": (0xC000003E, _X86_64, 0x40000000),  # x32 calls have bit 30 set
    "aarch64": (0xC00000B7, _AARCH64, None),
}


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def build_filter(machine: str | None = None) -> bytes:
    """The filter as ``struct sock_filter`` records for ``machine`` (default: this one).

    Raises:
        SandboxUnavailableError: no syscall table for this architecture.
    """
    machine = machine or platform.machine()
    if machine not in _ARCHES:
        raise SandboxUnavailableError(
            f"the bwrap sandbox's seccomp filter knows x86_64 and aarch64, not {machine!r}; "
            "use sandbox='docker' on this machine"
        )
    audit_arch, numbers, foreign = _ARCHES[machine]
    denied = [numbers[name] for name in DENIED if name in numbers]
    # Layout: the checks, then the tails they jump to (jumps only go forward).
    head: list[tuple[int, int, str | None, str | None]] = [
        (_LD_W_ABS, _ARCH, None, None),
        (_JEQ, audit_arch, None, "kill"),
        (_LD_W_ABS, _NR, None, None),
    ]
    if foreign is not None:
        head.append((_JGE, foreign, "kill", None))
    head.append((_JEQ, numbers["clone"], "clone", None))
    head.append((_JEQ, numbers["clone3"], "enosys", None))
    head += [(_JEQ, nr, "eperm", None) for nr in denied]
    tails = {
        "allow": [(_RET, _ALLOW)],
        # a namespace flag jumps to "eperm", else the third instruction allows
        "clone": [(_LD_W_ABS, _ARG0_LOW), (_JSET, CLONE_NEW_FLAGS), (_RET, _ALLOW)],
        "eperm": [(_RET, _ERRNO | errno.EPERM)],
        "enosys": [(_RET, _ERRNO | errno.ENOSYS)],
        "kill": [(_RET, _KILL_PROCESS)],
    }
    labels: dict[str, int] = {}
    pos = len(head)
    for name, body in tails.items():
        labels[name] = pos
        pos += len(body)
    out = []
    for i, (code, k, jt, jf) in enumerate(head):
        # A missing target falls through: to the next check, after the last one to "allow".
        t = labels[jt] - i - 1 if jt else 0
        f = labels[jf] - i - 1 if jf else 0
        if not (0 <= t <= 255 and 0 <= f <= 255):
            raise AssertionError("seccomp filter jump out of range")  # pragma: no cover
        out.append(_insn(code, k, t, f))
    for name, body in tails.items():
        for j, (code, k) in enumerate(body):
            if name == "clone" and code == _JSET:
                here = labels["clone"] + j
                out.append(_insn(code, k, labels["eperm"] - here - 1, 0))
            else:
                out.append(_insn(code, k))
    return b"".join(out)


@cache
def _filter_bytes() -> bytes:
    return build_filter()


def filter_fd() -> int:
    """A new file descriptor holding this machine's filter, at offset 0 (the caller closes it)."""
    fd = os.memfd_create("rebench-seccomp", os.MFD_CLOEXEC)
    os.write(fd, _filter_bytes())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd

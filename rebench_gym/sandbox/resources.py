"""What a sandbox may use, and how each provider enforces it.

A task declares per scale, in ``task.yaml``, ``resources: {cpus, memory_gb, disk_gb, gpus,
gpu_kind}``. ``sandbox_options`` can override each (``cpus``, ``memory_gb``, ``disk_gb``,
``gpus``: a count or a list of device ids) and scale cpus, memory and disk together
(``resource_scale``). The providers enforce them as follows (the README's Sandboxes table):

* memory, swap included, ``/tmp`` included: a memory cgroup (``bwrap``, ``local``) or Docker's
  limit; the RAM-backed scratch directories are sized within it, so filling ``/tmp`` fails with
  "No space left on device" instead of starving the agent's processes;
* disk: the workspace is an ext4 filesystem of ``disk_gb`` in a sparse file on a loop device
  (every provider: Docker bind-mounts the same directory), so a write past it fails inside the
  sandbox with "No space left on device";
* CPUs: a CPU quota of ``cpus`` cores for the agent; a scored run gets its own CPU set while the
  agent's processes are stopped;
* GPUs: the devices are pinned by UUID (``CUDA_VISIBLE_DEVICES`` and device nodes for bwrap, a
  device request for Docker).

What the machine cannot enforce (no cgroup rights, not root, no GPU) is named in
:attr:`Enforcement.unenforced`; the env warns once at reset. :meth:`Enforcement.info` is what
``info["resources"]`` and the run store record.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from rebench_gym.errors import SandboxUnavailableError, UsageError

#: the sandbox options every provider takes for resources
RESOURCE_OPTIONS = ("cpus", "memory_gb", "disk_gb", "gpus", "resource_scale")
GIB = 1024**3
#: with a memory limit, the largest share of it each RAM-backed scratch directory may hold
TMP_SHARE_OF_MEMORY = {"/tmp": 0.5, "/var/tmp": 0.0625, "/dev/shm": 0.25}


@dataclass(frozen=True)
class Resources:
    """What one episode's sandbox may use.

    Attributes:
        cpus: CPU cores (a quota; fractions allowed).
        memory_gb: memory in GiB, swap and RAM-backed scratch directories included.
        disk_gb: the workspace's size in GiB.
        gpus: how many GPUs.
        gpu_kind: which GPU the task was made for (informative: ``H100``).
        gpu_ids: the devices to use (indices or UUIDs); empty: the first ``gpus`` visible ones.
    """

    cpus: float
    memory_gb: float
    disk_gb: float
    gpus: int = 0
    gpu_kind: str | None = None
    gpu_ids: tuple[str, ...] = ()

    KEYS = ("cpus", "memory_gb", "disk_gb", "gpus", "gpu_kind")

    @classmethod
    def parse(cls, data: Any, where: str) -> Resources:
        """Validate a ``resources`` mapping of ``task.yaml``; errors start with ``where``."""
        if not isinstance(data, Mapping):
            raise UsageError(f"{where}: must be a mapping")
        unknown = sorted(set(data) - set(cls.KEYS))
        if unknown:
            raise UsageError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {cls.KEYS}")
        for key in ("cpus", "memory_gb", "disk_gb"):
            if key not in data:
                raise UsageError(f"{where}: missing key {key!r}")
        kind = data.get("gpu_kind")
        if kind is not None and not isinstance(kind, str):
            raise UsageError(f"{where}: key 'gpu_kind' must be a string, not {kind!r}")
        return cls(
            cpus=_positive(data["cpus"], f"{where}: key 'cpus'"),
            memory_gb=_positive(data["memory_gb"], f"{where}: key 'memory_gb'"),
            disk_gb=_positive(data["disk_gb"], f"{where}: key 'disk_gb'"),
            gpus=_count(data.get("gpus", 0), f"{where}: key 'gpus'"),
            gpu_kind=kind,
        )

    def with_options(self, options: Mapping[str, Any]) -> Resources:
        """These resources with the resource keys of ``options`` applied (others are ignored).

        ``gpus`` is a count or a list of device ids (indices or UUIDs) to pin;
        ``resource_scale`` multiplies cpus, memory and disk (after the other overrides).
        """
        sizes = {
            key: _positive(options[key], f"sandbox option {key}")
            for key in ("cpus", "memory_gb", "disk_gb")
            if key in options
        }
        out = replace(
            self,
            cpus=sizes.get("cpus", self.cpus),
            memory_gb=sizes.get("memory_gb", self.memory_gb),
            disk_gb=sizes.get("disk_gb", self.disk_gb),
        )
        if "gpus" in options:
            gpus = options["gpus"]
            if isinstance(gpus, (list, tuple)):
                ids = tuple(str(g) for g in gpus)
                if not all(ids) or len(set(ids)) != len(ids):
                    raise UsageError(f"sandbox option gpus: distinct device ids, not {gpus!r}")
                out = replace(out, gpus=len(ids), gpu_ids=ids)
            else:
                out = replace(out, gpus=_count(gpus, "sandbox option gpus"), gpu_ids=())
        if "resource_scale" in options:
            f = _positive(options["resource_scale"], "sandbox option resource_scale")
            out = replace(
                out, cpus=out.cpus * f, memory_gb=out.memory_gb * f, disk_gb=out.disk_gb * f
            )
        return out

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_gb * GIB)

    @property
    def disk_bytes(self) -> int:
        return int(self.disk_gb * GIB)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["gpu_ids"] = list(self.gpu_ids)
        return out


def split_options(options: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``options`` as (resource options, the provider's own options)."""
    opts = dict(options or {})
    mine = {k: opts.pop(k) for k in RESOURCE_OPTIONS if k in opts}
    return mine, opts


def _positive(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e6:
        raise UsageError(f"{where} must be a positive number, not {value!r}")
    return float(value)


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(f"{where} must be a non-negative integer, not {value!r}")
    return value


@dataclass
class Enforcement:
    """The resources a sandbox was given and how each limit is (or is not) enforced."""

    resources: Resources | None
    #: resource -> how it is enforced
    enforced: dict[str, str] = field(default_factory=dict)
    #: resource -> why it is not
    unenforced: dict[str, str] = field(default_factory=dict)

    def info(self) -> dict[str, Any]:
        """What ``info["resources"]`` and the run store record."""
        declared = self.resources.to_dict() if self.resources is not None else None
        return {
            "declared": declared,
            "enforced": dict(self.enforced),
            "unenforced": dict(self.unenforced),
        }

    def pin_gpus(self, how: str) -> list[Gpu]:
        """The GPUs the sandbox gets (:func:`pick_gpus` over this machine's), recorded as
        enforced ``how`` or, where the declared ones are not all here, as unenforced."""
        if self.resources is None:
            return []
        gpus, missing = pick_gpus(self.resources, nvidia_gpus(), visible_devices())
        if missing:
            self.unenforced["gpus"] = missing
        if gpus:
            self.enforced["gpus"] = how
        return gpus

    def warning(self, provider: str) -> str | None:
        """One line naming every limit this machine cannot enforce (None: all are)."""
        if not self.unenforced:
            return None
        items = "; ".join(f"{k}: {v}" for k, v in sorted(self.unenforced.items()))
        return f"sandbox {provider!r} cannot enforce every resource limit here: {items}"


# ----- CPUs ----------------------------------------------------------------------------------
def machine_cpus() -> list[int]:
    """The CPUs this process may run on."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return list(range(os.cpu_count() or 1))


def capped_cpus(cpus: float, enforcement: Enforcement) -> float:
    """``cpus`` limited to what the machine has (recorded as unenforced when it has fewer)."""
    have = len(machine_cpus())
    if cpus > have:
        enforcement.unenforced["cpus_available"] = (
            f"{cpus:g} CPUs declared, the machine has {have}; the sandbox gets {have}"
        )
        return float(have)
    return cpus


def score_cpuset(cpus: float) -> tuple[int, ...]:
    """The CPU set of a scored run that was promised ``cpus`` cores: the last ones the driver
    may use (the first are where the driver and other envs' shells tend to run)."""
    have = machine_cpus()
    n = max(1, min(len(have), math.ceil(cpus)))
    return tuple(have[-n:])


# ----- disk ----------------------------------------------------------------------------------
class WorkspaceDisk:
    """An ext4 filesystem of a fixed size, in a sparse file on a loop device, mounted on the
    workspace directory (``nosuid,nodev``). Needs root and util-linux ``mount``/``mkfs.ext4``."""

    def __init__(self, mountpoint: Path, image: Path) -> None:
        self.mountpoint = mountpoint
        self.image = image

    @staticmethod
    def unavailable() -> str | None:
        """Why a disk cannot be made here (None: it can)."""
        if os.geteuid() != 0:
            return "not root: no loop-device filesystem for the workspace"
        for tool in ("mount", "umount", "mkfs.ext4"):
            if shutil.which(tool, path="/usr/sbin:/sbin:/usr/bin:/bin") is None:
                return f"{tool} is not installed (Debian: e2fsprogs, mount)"
        if not Path("/dev/loop-control").exists():
            return "no loop devices (/dev/loop-control)"
        return None

    @classmethod
    def mount(cls, mountpoint: Path, size_bytes: int) -> WorkspaceDisk:
        """Make and mount the filesystem on the empty directory ``mountpoint``; the image is
        its sibling ``<name>.disk``.

        Raises:
            SandboxUnavailableError: it cannot be made here (the message says why).
        """
        why = cls.unavailable()
        if why is not None:
            raise SandboxUnavailableError(why)
        if any(mountpoint.iterdir()):
            raise SandboxUnavailableError(f"{mountpoint} must be empty to get a disk limit")
        image = mountpoint.with_name(mountpoint.name + ".disk")
        with open(image, "wb") as fh:
            fh.truncate(size_bytes)
        mkfs = [
            "mkfs.ext4",
            "-q",
            "-F",
            "-m",
            "0",
            "-E",
            "lazy_itable_init=1,lazy_journal_init=1,root_owner=0:0",
            str(image),
        ]
        mount = ["mount", "-o", "loop,nosuid,nodev,noatime", str(image), str(mountpoint)]
        for argv in (mkfs, mount):
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                image.unlink(missing_ok=True)
                raise SandboxUnavailableError(
                    f"{argv[0]} failed for the workspace disk: {done.stderr.strip()[-300:]}"
                )
        disk = cls(mountpoint, image)
        _tell_disk_reaper("+", mountpoint)
        with contextlib.suppress(OSError):
            (mountpoint / "lost+found").rmdir()
        os.chmod(mountpoint, 0o755)
        return disk

    def unmount(self) -> None:
        """Unmount (lazily, should something still hold it) and delete the image; idempotent."""
        unmount_below(self.mountpoint)
        self.image.unlink(missing_ok=True)
        _tell_disk_reaper("-", self.mountpoint)


# A driver killed outright (SIGKILL) cannot unmount its workspaces: a small reaper process, one
# per driver, started with the first disk, holds a pipe from it and learns of each mount and
# unmount; when the pipe ends (the driver is gone) it lazily unmounts what is left and deletes
# the images.
_DISK_REAPER = r"""
import os, subprocess, sys
live = set()
for line in sys.stdin:
    op, _, path = line.rstrip("\n").partition(" ")
    (live.add if op == "+" else live.discard)(path)
for path in live:
    subprocess.run(["umount", "-l", path], capture_output=True)
    try:
        os.unlink(path + ".disk")
    except OSError:
        pass
"""
_disk_reaper: subprocess.Popen[str] | None = None
_disk_reaper_lock = threading.Lock()


def _tell_disk_reaper(op: str, mountpoint: Path) -> None:
    global _disk_reaper
    with _disk_reaper_lock:
        if _disk_reaper is None or _disk_reaper.poll() is not None:
            _disk_reaper = subprocess.Popen(
                [sys.executable, "-c", _DISK_REAPER],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                text=True,
                start_new_session=True,
            )
        assert _disk_reaper.stdin is not None
        with contextlib.suppress(OSError):
            _disk_reaper.stdin.write(f"{op} {mountpoint}\n")
            _disk_reaper.stdin.flush()


def mounts_below(path: Path) -> list[str]:
    """Mount points at or below ``path`` (deepest first), from ``/proc/self/mountinfo``."""
    root = str(path.resolve()) if path.exists() else str(path)
    found: list[str] = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = _unescape(line.split()[4])
            if point == root or point.startswith(root.rstrip("/") + "/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def unmount_below(path: Path) -> None:
    """Lazily unmount every filesystem mounted at or below ``path`` (root only; else none)."""
    if os.geteuid() != 0:
        return
    for point in mounts_below(path):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def _unescape(text: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        text = text.replace(code, char)
    return text


# ----- GPUs ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Gpu:
    """One NVIDIA device as ``nvidia-smi`` lists it."""

    index: int
    uuid: str


def nvidia_gpus() -> list[Gpu]:
    """The machine's NVIDIA GPUs (empty without ``nvidia-smi`` or a driver)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        done = subprocess.run(
            [smi, "--query-gpu=index,uuid", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return parse_gpu_list(done.stdout) if done.returncode == 0 else []


def parse_gpu_list(text: str) -> list[Gpu]:
    """``nvidia-smi --query-gpu=index,uuid --format=csv,noheader`` output as :class:`Gpu`s."""
    out = []
    for line in text.splitlines():
        index, _, uuid = (part.strip() for part in line.partition(","))
        if index.isdigit() and uuid.startswith("GPU-"):
            out.append(Gpu(int(index), uuid))
    return out


def pick_gpus(
    resources: Resources, available: Sequence[Gpu], visible: Sequence[str] | None
) -> tuple[list[Gpu], str | None]:
    """The devices an episode gets: its pinned ids, else the first ``gpus`` of ``visible``
    (the driver's ``CUDA_VISIBLE_DEVICES``, indices or UUIDs; None: every device).

    Returns the devices and, when they cannot all be found, why.
    """
    if resources.gpus == 0:
        return [], None
    by_id = {str(g.index): g for g in available} | {g.uuid: g for g in available}
    wanted = list(resources.gpu_ids) or list(visible if visible is not None else by_id)
    chosen: list[Gpu] = []
    for ident in wanted:
        gpu = by_id.get(ident)
        if gpu is not None and gpu not in chosen:
            chosen.append(gpu)
        if len(chosen) == resources.gpus:
            return chosen, None
    if not available:
        return chosen, f"{resources.gpus} GPU(s) declared, no NVIDIA GPU found (nvidia-smi)"
    return chosen, (
        f"{resources.gpus} GPU(s) declared ({', '.join(wanted) or 'any'}), "
        f"{len(chosen)} of them found"
    )


def visible_devices() -> list[str] | None:
    """The driver's ``CUDA_VISIBLE_DEVICES`` as a list (None when unset)."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    return [d.strip() for d in value.split(",") if d.strip() and d.strip() != "-1"]


def nvidia_device_nodes(gpus: Sequence[Gpu]) -> list[str]:
    """The ``/dev`` nodes a process needs to use ``gpus`` (the control nodes and theirs)."""
    if not gpus:
        return []
    nodes = ["/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset"]
    nodes += [f"/dev/nvidia{g.index}" for g in gpus]
    return [n for n in nodes if os.path.exists(n)]

"""Per-task Docker images for the ``docker`` sandbox: build them, tag them by content, find them.

Each task ships ``tasks/<task>/docker/Dockerfile.<scale>`` and ``requirements-<scale>.txt``.
An image's tag is ``rebench-gym/<task>:<scale>-<digest>``, where the digest covers the
Dockerfile, the requirements and the base image's id, so an unchanged image is never rebuilt and
a changed one never reused. For the mini scale the wheels are downloaded on the host with
``pip download`` (the build runs offline: containers here cannot reach a package index) and
cached under the rebench cache dir.

No registry is needed: the default base image ``rebench-gym/base:bookworm`` is made locally with
debootstrap (see :data:`BASE_IMAGE_RECIPE`, or ``.ci/docker-setup``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rebench_gym.cache import COMPLETE, cache_root
from rebench_gym.envs.registration import task_folder
from rebench_gym.errors import SandboxError, SandboxUnavailableError, UsageError

#: label every image and container of the project carries (``rebench sandbox cleanup`` uses it)
LABEL = "rebench_gym"
DEFAULT_BASE_IMAGES = {
    "mini": "rebench-gym/base:bookworm",
    "full": "nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04",
}
BASE_IMAGE_RECIPE = """\
# A Debian bookworm base image without a registry (about a minute, ~275 MB):
MIRROR=$(grep -hoE '(URIs:|deb) +https?://[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/* \\
         2>/dev/null | grep -v security | head -n1 | awk '{print $2}')
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \\
    bookworm /tmp/rebench-rootfs "${MIRROR:-http://deb.debian.org/debian}"
tar -C /tmp/rebench-rootfs -c . | docker import - rebench-gym/base:bookworm
"""


def docker_client() -> Any:
    """A docker-py client for the engine in the environment (``DOCKER_HOST`` or the socket).

    Raises:
        SandboxUnavailableError: docker-py is missing or no engine answers.
    """
    try:
        import docker
    except ImportError:
        raise SandboxUnavailableError(
            "sandbox='docker' needs the Docker SDK: pip install 'rebench-gym[docker]'"
        ) from None
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as e:
        raise SandboxUnavailableError(
            f"sandbox='docker' needs a running Docker engine ({type(e).__name__}: {e}); "
            "start dockerd (see .ci/docker-setup) or choose sandbox='bwrap'"
        ) from None
    return client


def docker_dir(task_name: str) -> Path:
    """The directory holding a task's Dockerfiles: ``docker/`` in the task's folder."""
    return task_folder(task_name).folder / "docker"


def _files(task_name: str, scale: str) -> tuple[Path, Path]:
    d = docker_dir(task_name)
    dockerfile, requirements = d / f"Dockerfile.{scale}", d / f"requirements-{scale}.txt"
    if not dockerfile.is_file():
        raise UsageError(f"task {task_name!r} has no Dockerfile for scale {scale!r} ({dockerfile})")
    return dockerfile, requirements


def _base_image_id(client: Any, base_image: str) -> str | None:
    import docker.errors

    try:
        return str(client.images.get(base_image).id)
    except docker.errors.ImageNotFound:
        return None


def image_digest(task_name: str, scale: str, base_image_id: str) -> str:
    """The content digest of a task image: Dockerfile, requirements and base image id."""
    dockerfile, requirements = _files(task_name, scale)
    h = hashlib.sha256()
    for part in (dockerfile.read_bytes(), _read(requirements), base_image_id.encode()):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()[:12]


def _read(path: Path) -> bytes:
    return path.read_bytes() if path.is_file() else b""


def image_repository(task_name: str) -> str:
    """The repository part of a task's image tags."""
    return f"rebench-gym/{task_name}"


def find_image(task_name: str, scale: str, base_image: str | None = None) -> str | None:
    """The tag of an up-to-date built image for ``task_name`` at ``scale``, or None."""
    client = docker_client()
    base = base_image or DEFAULT_BASE_IMAGES[scale]
    base_id = _base_image_id(client, base)
    if base_id is not None:
        tag = f"{image_repository(task_name)}:{scale}-{image_digest(task_name, scale, base_id)}"
        return tag if _image_exists(client, tag) else None
    # The base image is not here (e.g. pulled elsewhere): the newest built image will do.
    images = client.images.list(
        filters={"label": [f"{LABEL}.task={task_name}", f"{LABEL}.scale={scale}"]}
    )
    if not images:
        return None
    newest = max(images, key=lambda im: im.attrs.get("Created", ""))
    tags = [t for t in newest.tags if t.startswith(image_repository(task_name) + ":")]
    return tags[0] if tags else str(newest.id)


def _image_exists(client: Any, tag: str) -> bool:
    import docker.errors

    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def download_wheels(requirements: Path, *, cache: Path | None = None) -> Path:
    """``pip download`` the requirements on the host once; returns the (cached) wheel dir."""
    digest = hashlib.sha256(_read(requirements) + sys.version.encode()).hexdigest()[:12]
    dest = cache_root(cache) / "docker" / f"wheels-{digest}"
    if (dest / COMPLETE).exists():
        return dest
    tmp = Path(
        tempfile.mkdtemp(prefix="wheels-", dir=dest.parent if dest.parent.exists() else None)
    )
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:"]
    cmd += ["-d", str(tmp), "-r", str(requirements)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise SandboxError(f"pip download failed:\n{proc.stderr[-3000:]}")
    (tmp / COMPLETE).touch()
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    return dest


def build_image(
    task_name: str,
    scale: str = "mini",
    *,
    base_image: str | None = None,
    wheels: Path | None = None,
    force: bool = False,
    cache_dir: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> str:
    """Build (or find) the image for ``task_name`` at ``scale``; returns its tag.

    Args:
        task_name: the task's name (``optimize_kernel``) or its env id.
        scale: ``"mini"`` or ``"full"``.
        base_image: the ``FROM`` image (default :data:`DEFAULT_BASE_IMAGES`); it must be present
            locally when no registry is reachable.
        wheels: a directory of wheels to install offline (mini: downloaded on the host when
            omitted; full: installed from the package index when omitted).
        force: rebuild even when an image with the same content digest exists.
        cache_dir: the rebench cache dir (where downloaded wheels are kept).
        log: receives build output lines.

    Raises:
        SandboxUnavailableError: no engine, or the base image is missing (the message says how
            to make it).
        SandboxError: the build failed.
    """
    import docker.errors

    task_name = _task_name(task_name)
    say = log or (lambda _line: None)
    client = docker_client()
    base = base_image or DEFAULT_BASE_IMAGES[scale]
    base_id = _base_image_id(client, base)
    if base_id is None:
        how = (
            f"make it first (or pass --base-image):\n{BASE_IMAGE_RECIPE}"
            if base == DEFAULT_BASE_IMAGES["mini"]
            else f"`docker pull {base}` where a registry is reachable, or pass --base-image"
        )
        raise SandboxUnavailableError(f"base image {base!r} is not present; {how}")
    tag = f"{image_repository(task_name)}:{scale}-{image_digest(task_name, scale, base_id)}"
    if not force and _image_exists(client, tag):
        say(f"{tag} is up to date")
        return tag
    dockerfile, requirements = _files(task_name, scale)
    if wheels is None and scale == "mini":
        say(f"downloading wheels for {requirements.name} on the host")
        wheels = download_wheels(requirements, cache=cache_dir)
    with tempfile.TemporaryDirectory(prefix="rebench-image-") as ctx_dir:
        ctx = Path(ctx_dir)
        shutil.copy(dockerfile, ctx / "Dockerfile")
        (ctx / "requirements.txt").write_bytes(_read(requirements))
        (ctx / "wheels").mkdir()
        for whl in sorted(wheels.glob("*.whl")) if wheels is not None else []:
            try:
                os.link(whl, ctx / "wheels" / whl.name)
            except OSError:
                shutil.copy(whl, ctx / "wheels" / whl.name)
        say(f"building {tag} from {base}")
        try:
            _image, lines = client.images.build(
                path=str(ctx),
                tag=tag,
                buildargs={"BASE_IMAGE": base},
                labels={LABEL: "1", f"{LABEL}.task": task_name, f"{LABEL}.scale": scale},
                rm=True,
                forcerm=True,
            )
            for chunk in lines:
                text = str(chunk.get("stream", "")).rstrip()
                if text:
                    say(text)
        except docker.errors.BuildError as e:
            tail = "\n".join(str(c.get("stream", c.get("error", ""))) for c in e.build_log)
            raise SandboxError(f"building {tag} failed: {e}\n{tail[-3000:]}") from None
    return tag


def _task_name(name_or_id: str) -> str:
    """A task's name from its name or its env id (``RE-Bench/OptimizeKernel-v0``)."""
    return task_folder(name_or_id).name

"""Per-task Docker images for the ``docker`` sandbox: build them, tag them by content, find them.

Each task ships ``tasks/<task>/docker/Dockerfile.<scale>`` and ``requirements-<scale>.txt``,
which hold only what the task adds to its scale's shared base. An image's tag is
``rebench-gym/<task>:<scale>-<digest>``, where the digest covers the Dockerfile, the
requirements and the base image's id, so an unchanged image is never rebuilt and a changed one
never reused.

No registry is needed: the root image ``rebench-gym/base:bookworm`` is made locally with
debootstrap (see :data:`BASE_IMAGE_RECIPE`, or ``.ci/docker-setup``). On it, each scale has one
shared base, ``rebench-gym/<scale>-base:<digest>`` (``sandbox/docker/Dockerfile.<scale>-base``),
built first on demand: mini has the CPU torch, numpy and PyYAML; full has a CUDA build of torch
from the package index, git and a C toolchain (no CUDA base image is pulled: the torch wheels
bring the CUDA runtime, the host brings the driver at run time).

Wheels are downloaded on the host once and cached under the rebench cache dir (build containers
here cannot reach a package index): mini with the host's own pip configuration (the CPU torch),
full from ``$REBENCH_FULL_INDEX_URL`` (default PyPI; the local pip configuration's find-links and
extra indexes are ignored, since they may hold CPU builds under the same version). They are
served to the build over HTTP on the Docker bridge's gateway for the build's duration, so no
image layer keeps a copy of them and no intermediate image is left behind.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from rebench_gym.cache import COMPLETE, cache_root
from rebench_gym.envs.registration import task_folder
from rebench_gym.errors import SandboxError, SandboxUnavailableError, UsageError

#: label every image and container of the project carries (``rebench sandbox cleanup`` uses it)
LABEL = "rebench_gym"
#: the image each scale's build starts from (full: the image the shared full base is built on)
DEFAULT_BASE_IMAGES = {
    "mini": "rebench-gym/base:bookworm",
    "full": "rebench-gym/base:bookworm",
}
#: where the shared base images' recipes live (``Dockerfile.<scale>-base``,
#: ``requirements-<scale>-base.txt``); their repositories are ``rebench-gym/<scale>-base``
SHARED_BASE_DIR = Path(__file__).parent / "docker"
#: where full-scale wheels come from unless ``$REBENCH_FULL_INDEX_URL`` says otherwise
FULL_INDEX_URL = "https://pypi.org/simple"
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
        base_id = _base_image_id(client, shared_base_tag(scale, base_id))
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


def shared_base_files(scale: str) -> tuple[Path, Path]:
    """The Dockerfile and requirements of the base every task image of ``scale`` starts from."""
    return (
        SHARED_BASE_DIR / f"Dockerfile.{scale}-base",
        SHARED_BASE_DIR / f"requirements-{scale}-base.txt",
    )


def shared_base_tag(scale: str, root_image_id: str) -> str:
    """The tag of ``scale``'s shared base built on the image with id ``root_image_id``."""
    h = hashlib.sha256()
    for path in shared_base_files(scale):
        part = path.read_bytes()
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    h.update(root_image_id.encode())
    return f"rebench-gym/{scale}-base:{h.hexdigest()[:12]}"


def full_index_url() -> str:
    """The package index full-scale wheels come from (``$REBENCH_FULL_INDEX_URL`` or PyPI)."""
    return os.environ.get("REBENCH_FULL_INDEX_URL") or FULL_INDEX_URL


def _image_exists(client: Any, tag: str) -> bool:
    import docker.errors

    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def download_wheels(
    requirements: Path | Sequence[Path],
    *,
    cache: Path | None = None,
    index_url: str | None = None,
    python_version: str | None = None,
) -> Path:
    """``pip download`` the requirements on the host once; returns the (cached) wheel dir.

    Several requirement files are resolved one at a time into the same directory (the full
    scale's base and a task's own needs, which may pin another torch). With ``index_url``, pip
    uses only that index: the local pip configuration (find-links, extra indexes, constraints)
    is ignored. ``python_version`` (``3.11.2``): resolve for that interpreter (the image's)
    instead of the host's (``Requires-Python`` differs between patch releases).
    """
    files = [requirements] if isinstance(requirements, Path) else list(requirements)
    key = b"".join(_read(f) + b"\0" for f in files) + sys.version.encode()
    key += f"{index_url or ''}|{python_version or ''}".encode()
    digest = hashlib.sha256(key).hexdigest()[:12]
    dest = cache_root(cache) / "docker" / f"wheels-{digest}"
    if (dest / COMPLETE).exists():
        return dest
    tmp = Path(
        tempfile.mkdtemp(prefix="wheels-", dir=dest.parent if dest.parent.exists() else None)
    )
    env = None
    if index_url is not None:
        drop = ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL", "PIP_CONSTRAINT")
        env = {k: v for k, v in os.environ.items() if k not in drop}
        env["PIP_CONFIG_FILE"] = os.devnull
    for req in files:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:"]
        if index_url is not None:
            cmd += ["--index-url", index_url]
        if python_version is not None:
            cmd += ["--python-version", python_version]
        cmd += ["-d", str(tmp), "-r", str(req)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise SandboxError(f"pip download -r {req.name} failed:\n{proc.stderr[-3000:]}")
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
        base_image: the root image (default :data:`DEFAULT_BASE_IMAGES`) the scale's shared
            base (:func:`shared_base_tag`) is built on; the task's image starts from that. It
            must be present locally when no registry is reachable.
        wheels: a directory of wheels to install offline (default: downloaded on the host,
            mini with its pip configuration, full from :func:`full_index_url`), served to the
            build over HTTP.
        force: rebuild even when an image with the same content digest exists.
        cache_dir: the rebench cache dir (where downloaded wheels are kept).
        log: receives build output lines.

    Raises:
        SandboxUnavailableError: no engine, or the base image is missing (the message says how
            to make it).
        SandboxError: the build failed.
    """
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
    dockerfile, requirements = _files(task_name, scale)
    root = base
    # The scale's shared base first (on ``base``), then the task's image on top of it.
    shared = shared_base_tag(scale, base_id)
    if force or not _image_exists(client, shared):
        base_docker, base_requirements = shared_base_files(scale)
        _build(
            client,
            shared,
            base_docker,
            base_requirements,
            base,
            {LABEL: "1", f"{LABEL}.shared_base": scale},
            say,
            [wheels] if wheels else _wheels(scale, base_requirements, root, cache_dir, say),
        )
    base, base_id = shared, str(client.images.get(shared).id)
    tag = f"{image_repository(task_name)}:{scale}-{image_digest(task_name, scale, base_id)}"
    if not force and _image_exists(client, tag):
        say(f"{tag} is up to date")
        return tag
    labels = {LABEL: "1", f"{LABEL}.task": task_name, f"{LABEL}.scale": scale}
    served = [wheels] if wheels else _wheels(scale, requirements, root, cache_dir, say)
    _build(client, tag, dockerfile, requirements, base, labels, say, served)
    return tag


def _wheels(
    scale: str,
    requirements: Path,
    root: str,
    cache_dir: Path | None,
    say: Callable[[str], None],
) -> list[Path]:
    """The wheels a build of ``requirements`` installs, downloaded on the host once and cached:
    mini from the host's own pip configuration (the CPU torch it was installed from), full from
    :func:`full_index_url` for the Python of the image ``root``."""
    if not _has_requirements(requirements):
        return []
    if scale == "mini":
        say(f"downloading wheels for {requirements.name} on the host")
        return [download_wheels(requirements, cache=cache_dir)]
    index, version = full_index_url(), _python_version(root)
    say(f"downloading full-scale wheels for Python {version} from {index} on the host")
    return [download_wheels(requirements, cache=cache_dir, index_url=index, python_version=version)]


def _python_version(image: str) -> str:
    """The version of ``python3`` in ``image`` (``3.11.2``)."""
    probe = "import platform; print(platform.python_version())"
    cmd = ["docker", "run", "--rm", "--network", "none", image, "python3", "-c", probe]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise SandboxError(f"cannot run python3 in {image}: {proc.stderr[-1000:]}")
    return proc.stdout.strip()


def _has_requirements(path: Path) -> bool:
    lines = _read(path).decode().splitlines()
    return any(line.strip() and not line.strip().startswith("#") for line in lines)


def _build(
    client: Any,
    tag: str,
    dockerfile: Path,
    requirements: Path,
    base: str,
    labels: dict[str, str],
    say: Callable[[str], None],
    wheels: Sequence[Path],
) -> None:
    """Build ``tag`` with ``wheels`` served to it over HTTP (no layer keeps them, and there is
    no second stage whose image would be left behind).

    An image that the new build takes the tag from is removed when nothing else uses it, so a
    rebuild leaves no dangling image behind.
    """
    import docker.errors

    old_id = _base_image_id(client, tag)
    with tempfile.TemporaryDirectory(prefix="rebench-image-") as ctx_dir:
        ctx = Path(ctx_dir)
        shutil.copy(dockerfile, ctx / "Dockerfile")
        (ctx / "requirements.txt").write_bytes(_read(requirements))
        say(f"building {tag} from {base}")
        with _serve(client, wheels) as (url, host):
            buildargs = {"BASE_IMAGE": base, "WHEELS_URL": url, "WHEELS_HOST": host}
            try:
                _image, lines = client.images.build(
                    path=str(ctx),
                    tag=tag,
                    buildargs=buildargs,
                    labels=labels,
                    rm=True,
                    forcerm=True,
                )
                for chunk in lines:
                    text = str(chunk.get("stream", "")).rstrip()
                    if text:
                        say(text)
            except docker.errors.BuildError as e:
                build_log = list(e.build_log)  # an iterator: read once
                _remove_leftovers(client, build_log)
                tail = "".join(str(c.get("stream", c.get("error", ""))) for c in build_log)
                raise SandboxError(f"building {tag} failed: {e}\n{tail[-3000:]}") from None
    if old_id is not None and old_id != _base_image_id(client, tag):
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(old_id)  # refused (and kept) while a container or image uses it


def _remove_leftovers(client: Any, build_log: Any) -> None:
    """Remove the untagged step images a failed build made (they would be left dangling)."""
    import docker.errors

    text = "".join(str(chunk.get("stream", "")) for chunk in build_log)
    for image_id in reversed(re.findall(r"^ ---> ([0-9a-f]{12})\s*$", text, flags=re.M)):
        with contextlib.suppress(docker.errors.APIError):
            if not client.images.get(image_id).tags:  # never the FROM image or another tag
                client.images.remove(image_id)  # refused while another image builds on it


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def _serve(client: Any, directories: Sequence[Path]) -> Iterator[tuple[str, str]]:
    """Serve the wheels of ``directories`` over HTTP on the Docker bridge's gateway (from a
    temporary directory of hard links; the first directory wins a name both hold).

    Yields the URL and the host (for pip's ``--trusted-host``: plain HTTP, on the bridge only).

    Build containers reach the host there (the engine must run on this machine).
    """
    gateway = "172.17.0.1"
    with contextlib.suppress(Exception):
        gateway = client.networks.get("bridge").attrs["IPAM"]["Config"][0]["Gateway"]
    served = Path(tempfile.mkdtemp(prefix="rebench-wheels-"))
    for directory in directories:
        for whl in sorted(directory.glob("*.whl")):
            if not (served / whl.name).exists():
                try:
                    os.link(whl, served / whl.name)
                except OSError:
                    shutil.copy(whl, served / whl.name)
    handler = functools.partial(_QuietHandler, directory=str(served))
    try:
        server = http.server.ThreadingHTTPServer((gateway, 0), handler)
    except OSError as e:
        shutil.rmtree(served, ignore_errors=True)
        raise SandboxError(
            f"cannot serve the wheels to the build on the Docker bridge's gateway {gateway} ({e}); "
            "full-scale images are built with a local engine"
        ) from None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{gateway}:{server.server_address[1]}/", gateway
    finally:
        server.shutdown()
        server.server_close()
        shutil.rmtree(served, ignore_errors=True)


def _task_name(name_or_id: str) -> str:
    """A task's name from its name or its env id (``RE-Bench/OptimizeKernel-v0``)."""
    return task_folder(name_or_id).name

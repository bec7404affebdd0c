"""Full-scale Docker images: every task's recipe builds on the shared full base.

SKIPPED unless ``REBENCH_TEST_FULL_IMAGES=1``: these builds are too big for CI. The shared base
alone downloads about 2.6 GB of wheels (torch 2.13.0 with CUDA 13 and the nvidia-* runtime
libraries) and makes an image of about 5.7 GB (about 3 minutes on a 2-core machine); the
OptimizeLLMFoundry image adds llm-foundry and its torch 2.7.0 on top. They
need a local Docker engine and ``rebench-gym/base:bookworm`` (``.ci/docker-setup``), and network
access to the package index on the host (the build itself gets the wheels from the host). No GPU
is needed: the images are checked on CPU. ``REBENCH_TEST_FULL_IMAGES_TASKS`` (comma-separated
task names) narrows the parametrized build test; by default it covers all seven tasks.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from rebench_gym.envs.registration import ENV_IDS, task_folder

pytestmark = [
    pytest.mark.docker,
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("REBENCH_TEST_FULL_IMAGES") != "1",
        reason="full-scale images are too big for CI; set REBENCH_TEST_FULL_IMAGES=1",
    ),
]

TASKS = sorted(task_folder(i).name for i in ENV_IDS)
SELECTED = [
    t.strip() for t in os.environ.get("REBENCH_TEST_FULL_IMAGES_TASKS", "").split(",") if t.strip()
] or TASKS


def _docker(*args: str) -> str:
    return subprocess.run(
        ["docker", *args], check=True, capture_output=True, text=True, timeout=600
    ).stdout


def _dangling() -> set[str]:
    return set(_docker("images", "-q", "--no-trunc", "-f", "dangling=true").split())


def test_every_task_has_a_full_recipe_on_the_shared_base() -> None:
    from rebench_gym.sandbox.docker_images import docker_dir

    assert len(TASKS) == 7
    for name in TASKS:
        text = (docker_dir(name) / "Dockerfile.full").read_text()
        froms = re.findall(r"^FROM (\S+)", text, flags=re.M)
        assert froms == ["${BASE_IMAGE}"], (name, froms)  # one stage, on the shared base
        assert "ARG BASE_IMAGE=rebench-gym/full-base" in text, name
        assert "COPY wheels" not in text, name  # wheels are served, never kept in a layer
        assert (docker_dir(name) / "requirements-full.txt").is_file(), name


@pytest.mark.parametrize("name", SELECTED)
def test_full_image_builds_on_the_shared_base(name: str) -> None:
    from rebench_gym.sandbox.docker_images import (
        DEFAULT_BASE_IMAGES,
        build_image,
        docker_client,
        find_image,
        shared_base_tag,
    )

    before = _dangling()
    tag = build_image(name, "full")
    assert find_image(name, "full") == tag
    assert _dangling() <= before, "the build left a dangling image"
    client = docker_client()
    root_id = client.images.get(DEFAULT_BASE_IMAGES["full"]).id
    base = client.images.get(shared_base_tag("full", root_id))
    image = client.images.get(tag)
    base_layers = base.attrs["RootFS"]["Layers"]
    assert image.attrs["RootFS"]["Layers"][: len(base_layers)] == base_layers
    assert image.labels.get("rebench_gym.scale") == "full"

    probe = (
        "import torch, numpy; print(torch.__version__, torch.version.cuda, "
        "torch.cuda.is_available())"
    )
    out = _docker("run", "--rm", "--network", "none", "--user", "1000", tag, "python", "-c", probe)
    version, cuda, available = out.split()
    assert cuda != "None", f"{tag} has a CPU-only torch"
    assert available == "False"  # no GPU requested: the image still runs on CPU
    if name == "optimize_llm_foundry":
        assert version.startswith("2.7.0"), version  # llm-foundry 0.22 pins torch==2.7.0
        _docker("run", "--rm", "--network", "none", tag, "python", "-c", "import llmfoundry")
    else:
        assert version.startswith("2.13.0"), version
    if name == "optimize_kernel":
        _docker("run", "--rm", "--network", "none", tag, "python", "-c", "import triton")
    if name == "rust_codecontests":
        assert "rustc" in _docker("run", "--rm", "--network", "none", tag, "rustc", "--version")
        _docker("run", "--rm", "--network", "none", tag, "python", "-c", "import openai")
    assert _docker("run", "--rm", tag, "id", "-u", "agent").strip() == "1000"

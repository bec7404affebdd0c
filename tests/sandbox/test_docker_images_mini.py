"""Mini-scale Docker images: every task's recipe builds on the shared mini base, leaves nothing
dangling and runs what the task needs. ``.ci/docker-setup`` builds them all
(``rebench image build --all --scale mini``), so here they are found up to date."""

from __future__ import annotations

import re

import pytest

from tests.sandbox.test_docker import _SKIP as DOCKER_SKIP
from tests.sandbox.test_docker_images_full import TASKS, _dangling, _docker


def test_every_task_has_a_mini_recipe_on_the_shared_base() -> None:
    from rebench_gym.sandbox.docker_images import docker_dir

    assert len(TASKS) == 7
    for name in TASKS:
        text = (docker_dir(name) / "Dockerfile.mini").read_text()
        froms = re.findall(r"^FROM (\S+)", text, flags=re.M)
        assert froms == ["${BASE_IMAGE}"], (name, froms)  # one stage: nothing left dangling
        assert "ARG BASE_IMAGE=rebench-gym/mini-base" in text, name
        assert "COPY wheels" not in text, name  # wheels are served, never kept in a layer
        assert "torch" not in (docker_dir(name) / "requirements-mini.txt").read_text(), name


@pytest.mark.docker
@pytest.mark.skipif(DOCKER_SKIP is not None, reason=str(DOCKER_SKIP))
@pytest.mark.parametrize("name", TASKS)
def test_mini_image_is_built_on_the_shared_base_and_runs_the_task_tools(name: str) -> None:
    from rebench_gym.sandbox.docker_images import (
        DEFAULT_BASE_IMAGES,
        build_image,
        docker_client,
        find_image,
        shared_base_tag,
    )

    dangling = _dangling()
    tag = build_image(name, "mini")
    assert find_image(name, "mini") == tag
    assert _dangling() <= dangling, "the build left a dangling image"
    client = docker_client()
    root_id = client.images.get(DEFAULT_BASE_IMAGES["mini"]).id
    base_layers = client.images.get(shared_base_tag("mini", root_id)).attrs["RootFS"]["Layers"]
    assert client.images.get(tag).attrs["RootFS"]["Layers"][: len(base_layers)] == base_layers
    probe = "import torch, numpy, yaml; print(torch.__version__)"
    out = _docker("run", "--rm", "--network", "none", "--user", "1000", tag, "python", "-c", probe)
    assert out.startswith("2.13.0"), out
    if name == "rust_codecontests":
        assert "rustc" in _docker("run", "--rm", "--network", "none", tag, "rustc", "--version")
        _docker("run", "--rm", "--network", "none", tag, "python", "-c", "import openai")

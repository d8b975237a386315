"""Config ``builder`` / ``--builder``: every buildx call goes to the named builder (here a
second docker context's builder on the same engine: a docker-container, remote or kubernetes
builder needs a BuildKit image this machine cannot pull)."""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import AuthRegistry, Project


@pytest.fixture
def context_builder(docker_engine: None) -> Iterator[str]:
    """A docker context on this engine, which buildx lists as a builder of its own name."""
    name = f"bk-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["docker", "context", "create", name, "--docker", "host=unix:///var/run/docker.sock"],
        check=True,
        capture_output=True,
    )
    try:
        yield name
    finally:
        subprocess.run(["docker", "context", "rm", "--force", name], capture_output=True)


def test_builds_go_to_the_configured_builder(project: Project, context_builder: str) -> None:
    res = project.inv("image.build", "--name", "base", "--builder", context_builder, "--force")
    log = (project.path / "dist" / "logs" / "base.log").read_text()
    assert f'building with "{context_builder}" instance' in log, log[:300]
    assert project.report()["images"][0]["status"] == "succeeded", res.stdout
    # the same from config, for a bake of several images
    project.configure(f'builder = "{context_builder}"')
    project.inv("image.build", "--force")
    bake = (project.path / "dist" / "logs" / "bake.log").read_text()
    assert f'building with "{context_builder}" instance' in bake
    doctor = project.inv("doctor").stdout
    assert re.search(rf"local\s+ok\s+builder\s+{context_builder}: linux/amd64", doctor), doctor


def test_a_push_with_credentials_still_uses_the_users_builder(
    project: Project, context_builder: str, auth_registry: AuthRegistry
) -> None:
    """Registry credentials log in into a throw-away DOCKER_CONFIG: the builder (here a docker
    context, kept in the user's own config directory) must still be the one builds go to."""
    reg = auth_registry
    env = {
        "INVOKE_BUILDKIT_REGISTRY": f"{reg.host}/acme",
        "BUILDKIT_REGISTRY_USER": reg.user,
        "BUILDKIT_REGISTRY_PASSWORD": reg.password,
    }
    res = project.inv("image.push", "--builder", context_builder, "--force", env=env)
    log = "".join(p.read_text() for p in (project.path / "dist" / "logs").glob("*.log"))
    assert f'building with "{context_builder}" instance' in log, res.stderr
    images = {i["name"]: i for i in project.report()["images"]}
    assert images["worker"]["references"][0] == f"{reg.host}/acme/worker:2.3.0"
    assert all(i["status"] == "succeeded" and i["digest"] for i in images.values()), images
    # the login stayed in the run's own config: the user's has no entry for the registry
    own = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "config.json"
    assert not own.exists() or reg.host not in own.read_text()


def test_a_missing_builder_is_one_clear_line(project: Project) -> None:
    res = project.inv("image.build", "--builder", "no-such-builder", check=False)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "no-such-builder" in res.stderr, res.stderr
    doctor = project.inv("doctor", "--builder", "x", check=False)
    assert doctor.returncode != 0  # doctor takes no --builder: config only
    project.configure('builder = "no-such-builder"')
    doctor = project.inv("doctor", check=False)
    assert doctor.returncode == 1
    assert re.search(r"local\s+fail\s+builder\s+no-such-builder: not found", doctor.stdout)
    bad = project.inv("image.build", "--builder", "a b", check=False)
    assert bad.returncode == 1 and "--builder: expected a buildx builder name" in bad.stderr

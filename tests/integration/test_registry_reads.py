"""engines/registry.read against the real registry: what it reads of pushed manifest lists
(with provenance attestations) and single manifests is what ``docker buildx imagetools
inspect`` reports; a registry that wants a login is left to imagetools; and an unchanged
``image.push`` then reads the registry without starting a single docker command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from buildkit_tasks.engines import docker as engine
from buildkit_tasks.engines import registry as reg
from buildkit_tasks.runner import Runner

from .conftest import REPO, AuthRegistry, Project, docker
from .test_push import REG

pytestmark = pytest.mark.integration


def imagetools(ref: str) -> engine.RemoteImage:
    out = docker("buildx", "imagetools", "inspect", "--format", "{{json .}}", ref).stdout
    return engine.parse_imagetools(json.loads(out))


def unanswered(*args: object, **kwargs: object) -> None:
    raise reg.Unanswered("test: ask imagetools")


def calls(project: Project, *args: str) -> dict[str, int]:
    res = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "count_calls.py"), *args],
        cwd=project.path, capture_output=True, text=True, env=dict(os.environ), timeout=900,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    return json.loads(res.stderr.strip().splitlines()[-1].removeprefix("calls "))


def test_reads_agree_with_imagetools(
    project: Project, registry: str, auth_registry: AuthRegistry
) -> None:
    project.inv("image.push", "--platform", "linux/amd64,linux/arm64")
    refs = [f"{REG}/{n}:2.3.0" for n in ("base", "api", "worker")] + [f"{REG}/api:latest"]
    amd64 = imagetools(refs[0]).platform_digests["linux/amd64"]
    run = uuid.uuid4().hex[:8]
    single, one_entry = f"{REG}/base:single-{run}", f"{REG}/base:one-entry-{run}"
    plain = ["--from-plain-http", "--to-plain-http"]
    subprocess.run(["oras", "cp", *plain, f"{REG}/base@{amd64}", single], check=True)
    docker("buildx", "imagetools", "create", "--tag", one_entry, f"{REG}/base@{amd64}")
    for ref in [*refs, single, one_entry]:
        read = reg.read(ref)
        assert read is not None and read == imagetools(ref), ref
        assert read.labels.get("dev.buildkit-tasks.input-key")
    for ref in refs:  # the manifest lists with their attestations, for the report
        direct = engine.registry_index(Runner(), ref)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(reg, "manifest", unanswered)
            assert engine.registry_index(Runner(), ref) == direct, ref  # through imagetools
        assert direct[2] and set(direct[2]) == set(direct[1])  # provenance per platform
    many = reg.read(refs[1])
    assert many is not None and set(many.platform_digests) == {"linux/amd64", "linux/arm64"}
    for ref in (single, one_entry):  # a manifest, and a list holding only it
        got = reg.read(ref)
        assert got is not None and got.platform_digests == {"linux/amd64": amd64}
        assert (got.digest == amd64) == (ref == single)
    assert reg.read(f"{REG}/base:never-pushed") is None
    assert reg.read(f"{REG}/never/pushed:1") is None
    with pytest.raises(reg.Unanswered):  # wants a login: imagetools (Docker's credentials)
        reg.read(f"{auth_registry.host}/acme/base:1")

    # an unchanged push: every image and its tags found by reading the registry; one docker
    # command (buildx inspect: the builder's platforms), none per image
    counted = calls(project, "image.push", "--platform", "linux/amd64,linux/arm64")
    assert all(i["status"] == "cached" for i in project.report()["images"])
    assert counted["docker"] == 1, counted

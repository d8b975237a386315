"""``image.push --platform linux/amd64,linux/arm64 --hosts x86,arm`` over two real, separate
engines: host ``x86`` (sshd on 127.0.0.4) drives this machine's engine, host ``arm`` (sshd on
127.0.0.5, ``SetEnv DOCKER_HOST``) a second dockerd with its own store (tests/integration/
engines.py). Each platform must be built by its own host's engine, pushed by digest, and
tagged as one manifest list."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import engines, sshhosts
from .conftest import Project, docker, require, tags_in
from .test_push import manifest, platforms_of

pytestmark = pytest.mark.integration

AMD, ARM = "linux/amd64", "linux/arm64"


@pytest.fixture(scope="module")
def fan_hosts(
    tmp_path_factory: pytest.TempPathFactory, second_engine: engines.Engine
) -> Iterator[sshhosts.SshHosts]:
    require(sshhosts.available(), "sshd and the bkbuild account (scripts/setup.sh, as root)")
    hosts = sshhosts.start(
        tmp_path_factory.mktemp("fan-ssh"),
        {"x86": "127.0.0.4", "arm": "127.0.0.5"},
        extra={"arm": f"SetEnv DOCKER_HOST={second_engine.host}\n"},
    )
    try:
        yield hosts
    finally:
        sshhosts.stop(hosts)


def configure(project: Project, hosts: sshhosts.SshHosts, unreachable: bool = False) -> None:
    known = project.path.parent / "known_hosts"
    known.write_text("".join(h.known_hosts_line for h in hosts.hosts.values()))
    arm = "arm=127.0.0.9" if unreachable else "arm"
    pyproject = project.path / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            "[tool.buildkit]\n", f'[tool.buildkit]\nknown_hosts = "{known}"\n', 1
        )
        + "\n"
        + hosts.toml(["x86"], platforms=f'["{AMD}"]')
        + "\n"
        + hosts.toml([arm], platforms=f'["{ARM}"]')
    )
    project.commit("build hosts")


def blobs(save: bytes) -> set[str]:
    """The digests of every blob in a ``docker save`` archive (an OCI layout)."""
    with tarfile.open(fileobj=io.BytesIO(save)) as tar:
        return {
            "sha256:" + Path(m.name).name
            for m in tar.getmembers()
            if m.name.startswith("blobs/sha256/")
        }


def saved(ref: str, host: str | None) -> set[str]:
    env = {**os.environ, **({"DOCKER_HOST": host} if host else {})}
    res = subprocess.run(["docker", "save", ref], capture_output=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr.decode()
    return blobs(res.stdout)


def test_each_platform_is_built_by_its_hosts_engine_and_listed_once(
    project: Project,
    registry: str,
    second_engine: engines.Engine,
    fan_hosts: sshhosts.SshHosts,
) -> None:
    configure(project, fan_hosts)
    res = project.inv("image.push", "--platform", f"{AMD},{ARM}", "--hosts", "x86,arm")
    assert "[arm linux/arm64] api: succeeded" in res.stdout, res.stdout
    assert "[x86 linux/amd64] api: succeeded" in res.stdout, res.stdout
    images = {i["name"]: i for i in project.report()["images"]}
    for name in ("base", "api", "worker"):
        image = images[name]
        assert image["status"] == "succeeded" and image["tagged"] is True, image
        assert image["hosts"] == {AMD: "x86", ARM: "arm"}
        for tag in (image["references"][0].rsplit(":", 1)[1], "latest"):
            index = manifest(registry, f"acme/{name}", tag)
            assert platforms_of(index) == {AMD, ARM}
            assert index["manifests"][0]["digest"] in image["platform_digests"].values()
        # each host's provenance attestation is in the merged list, and in the report
        attested = {
            m["annotations"]["vnd.docker.reference.digest"]: m["digest"]
            for m in index["manifests"]
            if (m.get("annotations") or {}).get("vnd.docker.reference.type")
            == "attestation-manifest"
        }
        reported = {image["platform_digests"][p]: d for p, d in image["attestations"].items()}
        assert reported == attested and set(attested) == set(image["platform_digests"].values())
        # each platform's manifest (and so its layers' list) is in the store of the engine
        # that built it, and only there
        ref = image["references"][0]
        on_second = saved(ref, second_engine.host)
        on_first = saved(ref, None)
        arm_digest, amd_digest = image["platform_digests"][ARM], image["platform_digests"][AMD]
        assert arm_digest in on_second and arm_digest not in on_first
        assert amd_digest in on_first and amd_digest not in on_second
        arch = second_engine.docker("image", "inspect", "--format", "{{.Architecture}}", ref)
        assert arch.stdout.strip() == "arm64"
    assert (project.path / "dist" / "hosts" / "arm" / "logs" / "api.log").stat().st_size > 0
    api = images["api"]["references"][0]
    out = docker("run", "--rm", "--pull", "always", "--platform", ARM, api, "uname", "-m")
    assert out.stdout.strip() == "aarch64"

    # again, nothing changed: no host builds; the lists are made of the same manifests
    project.inv("image.push", "--platform", f"{AMD},{ARM}", "--hosts", "x86,arm")
    again = {i["name"]: i for i in project.report()["images"]}
    for name, image in images.items():
        assert again[name]["status"] == "cached", again[name]
        assert again[name]["platform_digests"] == image["platform_digests"]


def test_a_host_that_fails_fails_its_platform_and_no_tag_is_made(
    project: Project, registry: str, fan_hosts: sshhosts.SshHosts
) -> None:
    configure(project, fan_hosts, unreachable=True)
    repo = "acme/worker"
    latest = (
        manifest(registry, repo, "latest") if "latest" in (tags_in(registry, repo) or []) else None
    )
    res = project.inv("image.push", "--platform", f"{AMD},{ARM}", "--hosts", "x86,arm", check=False)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    report = {i["name"]: i for i in project.report()["images"]}
    for name in ("base", "api", "worker"):
        assert report[name]["status"] == "failed"
        assert report[name]["error"].startswith(
            "linux/arm64 on host arm: host arm: connection refused at 127.0.0.9:2222"
        ), report[name]
        assert report[name]["tagged"] is False and "@sha256:" in report[name]["pushed"]
    assert "no tag of this run was made" in res.stderr
    version_tag = project.report()["version"]["docker_tag"]
    assert version_tag not in (tags_in(registry, repo) or [])
    if latest is not None:
        assert manifest(registry, repo, "latest") == latest

"""Faults injected with real parts (issue 14): a registry that dies during a push, one that
answers 503 for a while, a disk that fills up during archive.export, two runs at once in one
project, a report left corrupt by a crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import Project, _free_port, tags_in
from .faultproxy import fault_proxy


@dataclass
class OwnRegistry:
    """A registry process of this test only (its own port and storage), stoppable."""

    address: str
    config: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("a") as fh:
            self.proc = subprocess.Popen(
                ["docker-registry", "serve", str(self.config)], stdout=fh, stderr=subprocess.STDOUT
            )
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://{self.address}/v2/", timeout=1)
                return
            except OSError:
                time.sleep(0.1)
        pytest.fail(f"registry on {self.address} did not start: {self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def own_registry(tmp_path: Path, registry: str) -> Iterator[OwnRegistry]:
    d = tmp_path / "own-registry"
    d.mkdir()
    address = f"127.0.0.1:{_free_port()}"
    config = d / "config.yml"
    config.write_text(
        "version: 0.1\nlog: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {d / 'data'}}}}}\n"
        f"http: {{addr: {address}}}\n"
    )
    reg = OwnRegistry(address, config, d / "registry.log")
    reg.start()
    try:
        yield reg
    finally:
        reg.stop()


def env_for(registry: str) -> tuple[str, dict[str, str]]:
    ns = f"faults-{uuid.uuid4().hex[:8]}"
    return ns, {"INVOKE_BUILDKIT_REGISTRY": f"{registry}/{ns}"}


def test_pushes_get_through_a_registry_answering_503_for_a_while(
    project: Project, own_registry: OwnRegistry
) -> None:
    with fault_proxy(own_registry.address, fail=40, methods={"POST"}) as proxy:
        ns, env = env_for(proxy.address)
        res = project.inv("image.push", env=env, check=False)
        assert res.returncode == 0, res.stdout + res.stderr
        assert proxy.failed == 40  # every injected 503 was met...
    logs = "".join(p.read_text() for p in (project.path / "dist" / "logs").glob("*.log"))
    assert "transient failure, retry 1" in logs  # ...and retried, then got through
    version = project.report()["version"]["docker_tag"]
    for name in ("base", "api", "worker"):
        assert sorted(tags_in(own_registry.address, f"{ns}/{name}") or []) == sorted(
            [version, "latest"]
        )


def test_a_registry_stopped_during_a_push_fails_clearly_and_tags_nothing(
    project: Project, own_registry: OwnRegistry
) -> None:
    ns, env = env_for(own_registry.address)
    bake_log = project.path / "dist" / "logs" / "bake.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "image.push"],
        cwd=project.path,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not bake_log.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        own_registry.stop()  # the images are being built: the registry is gone for the push
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out + err
    assert "Traceback" not in err
    assert f"by digest to {own_registry.address}/{ns}/base failed" in out + err
    assert "no tag of this run was made" in err
    own_registry.start()
    for name in ("base", "api", "worker"):
        assert tags_in(own_registry.address, f"{ns}/{name}") in (None, [])
    images = {i["name"]: i for i in project.report()["images"]}
    assert images["base"]["status"] == "failed"


@pytest.fixture
def small_disk(project: Project) -> Iterator[Path]:
    """``dist/`` of the project on a 1 MiB tmpfs (room for logs and the report, not for an
    image archive)."""
    if os.geteuid() != 0:
        pytest.fail("mounting a tmpfs needs root (as CI runs)")
    dist = project.path / "dist"
    dist.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(dist)], check=True)
    try:
        yield dist
    finally:
        subprocess.run(["umount", "-l", str(dist)], check=False)


def test_a_full_disk_during_archive_export_leaves_no_partial_archive(
    project: Project, small_disk: Path
) -> None:
    previous = small_disk / "charts" / "acme-2.2.0.tgz"
    previous.parent.mkdir()
    previous.write_bytes(b"an artifact of an earlier run" * 100)
    project.inv("image.build")
    res = project.inv("archive.export", "--compression", "none", check=False)
    err = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert len(err) == 1, err
    assert "images.tar: cannot write the image archive (No space left on device)" in err[0]
    left = sorted(p.name for p in small_disk.iterdir())
    assert not [n for n in left if n.startswith((".images", "images"))], left
    assert previous.read_bytes() == b"an artifact of an earlier run" * 100


def test_two_builds_at_once_in_one_project_take_turns(project: Project) -> None:
    def start() -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "invoke", "build.all"],
            cwd=project.path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    first = start()
    second = start()
    results = [p.communicate(timeout=600) for p in (first, second)]
    codes = [first.returncode, second.returncode]
    assert codes == [0, 0], results
    waited = [err for _, err in results if "waiting for another run in this project" in err]
    assert len(waited) == 1, [err for _, err in results]
    assert "pid " in waited[0]
    report = project.report()  # whole, and for the commit both built
    assert report["status"] == "succeeded"
    assert {i["name"] for i in report["images"]} == {"base", "api", "worker"}
    assert project.inv("archive.verify").returncode == 0  # checksums and archive agree


def test_a_corrupt_report_is_replaced_not_fatal(project: Project) -> None:
    dist = project.path / "dist"
    dist.mkdir(exist_ok=True)
    (dist / "build-report.json").write_text('{"schema": "buildkit-tasks/build-rep')  # cut off
    res = project.inv("helm.package")
    assert "build-report.json is not a readable report; starting a new one" in res.stderr
    report = json.loads((dist / "build-report.json").read_text())
    assert report["version"]["version"] == "2.3.0" and report["charts"][0]["name"] == "acme"

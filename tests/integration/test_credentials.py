"""image.push into a registry that wants a password: the password never leaks."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from .conftest import AuthRegistry, Project

INDEX = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
    ]
)


def registry_get(reg: AuthRegistry, path: str) -> tuple[dict, str]:
    token = base64.b64encode(f"{reg.user}:{reg.password}".encode()).decode()
    req = urllib.request.Request(
        f"http://{reg.host}{path}", headers={"Accept": INDEX, "Authorization": f"Basic {token}"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp), resp.headers.get("Docker-Content-Digest", "")


def push(
    project: Project,
    reg: AuthRegistry,
    password: str,
    *args: str,
    check: bool = True,
    watch: list[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "INVOKE_BUILDKIT_REGISTRY": f"{reg.host}/acme",
        "BUILDKIT_REGISTRY_USER": reg.user,
        "BUILDKIT_REGISTRY_PASSWORD": password,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "image.push", "--name", "worker", *args],
        cwd=project.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    done = threading.Event()

    def poll_ps() -> None:  # every process's argv while the push runs
        while not done.is_set():
            watch.append(
                subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
            )
            time.sleep(0.05)

    poller = threading.Thread(target=poll_ps) if watch is not None else None
    if poller:
        poller.start()
    out, err = proc.communicate(timeout=900)
    done.set()
    if poller:
        poller.join()
    res = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    if check and res.returncode != 0:
        raise AssertionError(f"push failed:\n{out}\n{err}")
    return res


def test_authenticated_multi_arch_push_never_shows_the_password(
    project: Project, auth_registry: AuthRegistry
) -> None:
    reg = auth_registry
    snapshots: list[str] = []
    res = push(project, reg, reg.password, "--platform", "linux/amd64,linux/arm64", watch=snapshots)
    assert len(snapshots) > 5  # ps was really watched while the build ran
    index, digest = registry_get(reg, "/v2/acme/worker/manifests/2.3.0")
    platforms = {
        f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
        for m in index["manifests"]
        if m["platform"]["os"] != "unknown"
    }
    assert set(platforms) == {"linux/amd64", "linux/arm64"}
    report = json.loads((project.path / "dist" / "build-report.json").read_text())
    worker = {i["name"]: i for i in report["images"]}["worker"]
    assert worker["references"] == [
        f"{reg.host}/acme/worker:2.3.0",
        f"{reg.host}/acme/worker:latest",
    ]
    assert worker["digest"] == digest
    assert worker["platform_digests"] == platforms

    # the pushed arm64 image runs (pulled with a login of this test's own)
    with tempfile.TemporaryDirectory() as cfg:
        env = {**os.environ, "DOCKER_CONFIG": cfg}
        subprocess.run(
            ["docker", "login", "-u", reg.user, "--password-stdin", reg.host],
            input=reg.password,
            text=True,
            env=env,
            check=True,
            capture_output=True,
        )
        ran = subprocess.run(
            [
                "docker",
                "run",
                "--rm",
                "--pull",
                "always",
                "--platform",
                "linux/arm64",
                f"{reg.host}/acme/worker:2.3.0",
                "uname",
                "-m",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    assert ran.stdout.strip() == "aarch64"

    # the password is nowhere: output, logs, report, anyone's argv during the run
    texts = [res.stdout, res.stderr, *snapshots]
    texts += [
        p.read_text(errors="replace") for p in (project.path / "dist").rglob("*") if p.is_file()
    ]
    assert all(reg.password not in t for t in texts)
    # and no login was left behind in the user's own Docker config
    own = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "config.json"
    assert not own.exists() or reg.host not in own.read_text()


def test_wrong_password_fails_fast_without_retries(
    project: Project, auth_registry: AuthRegistry
) -> None:
    reg = auth_registry
    before = reg.log.read_text().count("401") if reg.log.exists() else 0
    res = push(project, reg, "not-the-password", check=False)
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith(f"buildkit: registry login to {reg.host} as {reg.user} failed:")
    assert "check the user and password" in last
    assert "not-the-password" not in res.stdout + res.stderr
    assert not (project.path / "dist" / "logs").exists()  # nothing was built or pushed
    refused = reg.log.read_text().count("401") - before
    assert 1 <= refused <= 4  # one login's requests, not a retry storm


def test_an_unchanged_push_reads_the_password_registry_itself(
    project: Project, auth_registry: AuthRegistry
) -> None:
    """A registry taking the login as HTTP Basic auth (``htpasswd``) is read directly with the
    run's login, not through a ``docker buildx imagetools inspect`` process per lookup."""
    reg = auth_registry
    push(project, reg, reg.password)
    seen = len(reg.log.read_text())
    res = push(project, reg, reg.password, "--echo")  # --echo prints every command, queries too
    assert "imagetools" not in res.stdout + res.stderr, res.stdout
    images = {i["name"]: i for i in project.report()["images"]}
    assert images["worker"]["status"] == "cached", res.stdout
    _, digest = registry_get(reg, "/v2/acme/worker/manifests/2.3.0")
    assert images["worker"]["digest"] == digest
    assert reg.password not in res.stdout + res.stderr
    # this process read them, with the login: the registry answered its manifest reads
    reads = [
        line
        for line in reg.log.read_text()[seen:].splitlines()
        if "GET /v2/acme/worker/manifests/" in line and "Python-urllib" in line
    ]
    assert reads and all('HTTP/1.1" 200 ' in line for line in reads), reads

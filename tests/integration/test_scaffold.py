"""buildkit-tasks scaffold into empty repositories: the result lints with the real tools."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import git

from .conftest import docker

BIN = Path(sys.executable).parent


def run(cwd: Path, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=os.environ.copy())
    if check and res.returncode != 0:
        raise AssertionError(f"{argv} exited {res.returncode}\n{res.stdout}\n{res.stderr}")
    return res


@pytest.mark.parametrize("kind", ["python", "node"])
def test_scaffold_then_lint_passes(
    tmp_path: Path, kind: str, docker_engine: None, helm_bin: None
) -> None:
    repo = tmp_path / "newrepo"
    repo.mkdir()
    git(repo, "init", "-q")
    # base images are template variables: point them at one made here
    base = f"localhost:5000/scaffold-test/{kind}:1"
    res = run(repo, str(BIN / "buildkit-tasks"), "scaffold", "--kind", kind, "--base-image", base)
    assert "scaffold: wrote Dockerfile" in res.stdout
    assert f"ARG {kind.upper()}_IMAGE={base}" in (repo / "Dockerfile").read_text()
    # the rendered Dockerfile passes hadolint at its default (strictest) threshold
    run(repo, str(BIN / "hadolint"), "Dockerfile")
    lint = run(repo, sys.executable, "-m", "invoke", "lint.all")
    assert "1 chart(s) linted, 0 chart(s) failed" in lint.stdout
    if kind == "python":
        assert "1 passed" in run(repo, sys.executable, "-m", "invoke", "test.all").stdout
    # the build plan names the image and its build argument
    plan = run(repo, sys.executable, "-m", "invoke", "image.graph", "--format", "json").stdout
    assert '"name": "newrepo"' in plan
    # a second run refuses and changes nothing
    before = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts}
    again = run(repo, str(BIN / "buildkit-tasks"), "scaffold", "--kind", kind, check=False)
    assert again.returncode == 1 and "already exist" in again.stderr and "--force" in again.stderr
    after = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts}
    assert after == before
    run(repo, str(BIN / "buildkit-tasks"), "scaffold", "--kind", kind, "--force")


def test_scaffolded_dockerfile_builds_from_a_local_base(
    tmp_path: Path, docker_engine: None, busybox: dict[str, Path]
) -> None:
    """The node Dockerfile's stages run on a base made here from busybox plus a fake `npm`
    and `node` (nothing is pulled): the structure (builder, runtime, non-root user) works."""
    base_ctx = tmp_path / "base"
    base_ctx.mkdir()
    (base_ctx / "busybox").write_bytes(busybox["amd64"].read_bytes())
    (base_ctx / "npm").write_text('#!/bin/sh\necho "npm $*"\nmkdir -p node_modules\n')
    (base_ctx / "node").write_text('#!/bin/sh\necho "node ran $*"\n')
    (base_ctx / "Dockerfile").write_text(
        "FROM scratch\nCOPY --chmod=755 busybox /bin/busybox\n"
        'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
        "COPY --chmod=755 npm node /usr/local/bin/\n"
        "RUN mkdir -p /etc /home/node /tmp"
        " && echo node:x:1000:1000::/home/node:/bin/sh >/etc/passwd\n"
    )
    base = "localhost:5000/scaffold-test/node:fake"
    docker("buildx", "build", "--load", "-q", "-t", base, str(base_ctx))
    repo = tmp_path / "web"
    repo.mkdir()
    run(repo, str(BIN / "buildkit-tasks"), "scaffold", "--kind", "node", "--base-image", base)
    ref = "localhost:5000/scaffold-test/web:test"
    docker("buildx", "build", "--load", "-q", "-t", ref, str(repo))
    out = docker("run", "--rm", ref).stdout
    assert out.strip() == "node ran index.js"
    user = docker("image", "inspect", "--format", "{{.Config.User}}", ref).stdout.strip()
    assert user == "1000"
    docker("rmi", ref, base)

"""The daily experience against the real engine: dry runs of every task, the live view in a
terminal, doctor, quality gates, archives and their verification."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from buildkit_tasks import ns

from .conftest import Project, docker

REG = "localhost:5000/acme"

# Arguments a task needs to run at all under --dry.
DRY_ARGS = {"remote.run": ["--host", "far", "build.all"]}


def _tree(root: Path) -> dict[str, float]:
    return {
        p.relative_to(root).as_posix(): p.stat().st_mtime
        for p in root.rglob("*")
        if ".git" not in p.parts and "__pycache__" not in p.parts
    }


def _images() -> set[str]:
    return set(
        docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout.split("\n")
    )


def test_dry_run_of_every_task_prints_commands_and_writes_nothing(project: Project) -> None:
    pyproject = project.path / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text()
        + '\n[[tool.buildkit.hosts]]\nname = "far"\naddress = "ci@127.0.0.9:2222"\n'
        + '\n[tool.buildkit.helm.publish]\ngit = "/nonexistent/charts.git"\nurl = "https://x"\n'
    )
    project.commit("a host")
    before, images_before = _tree(project.path), _images()
    for name in sorted(ns.task_names):
        res = project.inv("--dry", name, *DRY_ARGS.get(name, []), check=False)
        assert res.returncode == 0, f"{name}: {res.stdout}\n{res.stderr}"
        assert "Traceback" not in res.stderr
        assert _tree(project.path) == before, f"--dry {name} wrote files"
    assert _images() == images_before
    # commands are printed, in order, exactly as they would run
    out = project.inv("--dry", "archive.export").stdout
    assert re.search(r"^docker save \S+/base:\S+ \S+/api:\S+ \S+/worker:\S+$", out, re.M), out
    out = project.inv("--dry", "lint.all").stdout
    assert out.index(" -m ruff check ") < out.index("hadolint") < out.index("helm lint --strict")
    out = project.inv("--dry", "remote.hosts").stdout
    assert out.startswith("ssh ci@127.0.0.9:2222 'sh -c ")


def test_live_view_in_a_terminal(project: Project) -> None:
    """image.build on a pseudo-terminal (no CI) draws and redraws the rich table."""
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update({"TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"})
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "image.build"],
        cwd=project.path,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=60)
    os.close(master)
    out = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0, out
    assert "\x1b[" in out  # cursor movement and colour: a live view, not plain lines
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)
    assert re.search(r"image\s+state\s+time\s+step", plain), plain
    assert re.search(r"base\s+building\s+\d+\.\ds", plain), plain  # a frame mid-build
    assert re.search(r"worker\s+succeeded\s+\d+\.\ds", plain), plain  # the last frame
    assert not re.search(r"^\d\d:\d\d:\d\d image", plain, re.M)  # no plain lines


def test_quiet_build_prints_only_the_summary(project: Project) -> None:
    res = project.inv("image.build", "--quiet")
    assert "image base: building" not in res.stdout
    assert re.search(r"^  base\s+succeeded", res.stdout, re.M)


def test_doctor_checks_this_machine(project: Project) -> None:
    res = project.inv("doctor")
    lines = res.stdout.splitlines()
    for what in ("buildx", "image store", "helm", "emulation", "registry"):
        assert any(re.match(rf"local\s+ok\s+{what}\b", x) for x in lines), res.stdout
    # Engine 26 (the CI engine) is usable but warned about: moby/buildkit#5106
    assert any(re.match(r"local\s+(ok|warn)\s+docker engine\b", x) for x in lines), res.stdout
    assert "answers 200" in res.stdout
    bad = project.inv("doctor", env={"INVOKE_BUILDKIT_REGISTRY": "127.0.0.1:9/acme"}, check=False)
    assert bad.returncode == 1
    line = next(x for x in bad.stdout.splitlines() if "registry" in x)
    assert re.match(r"local\s+fail\s+registry", line) and "-> start the registry" in line
    assert "checks failed: local registry" in bad.stderr


def test_size_budget_fails_the_build_with_the_measured_size(project: Project) -> None:
    pyproject = project.path / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            'context = "images/base"\n', 'context = "images/base"\nmax_size_mb = 0.001\n', 1
        )
    )
    project.commit("tiny budget")
    res = project.inv("image.build", check=False)
    assert res.returncode == 1
    assert re.search(r"over size budget: base is [0-9.]+ MB \(max_size_mb = 0\.001\)", res.stderr)
    [budget] = project.report()["size_budgets"]
    assert budget["name"] == "base" and budget["over"] is True and budget["size_mb"] > 0.001
    inspect = json.loads(docker("image", "inspect", budget["reference"]).stdout)[0]
    assert abs(budget["size_mb"] - inspect["Size"] / 1e6) < 0.001  # the engine's own figure


def test_selectable_linters_and_coverage_floor(project: Project) -> None:
    pyproject = project.path / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            "[tool.buildkit.lint]\n", '[tool.buildkit.lint]\ntools = ["black", "isort", "mypy"]\n'
        )
        + "\n[tool.buildkit.test]\ncoverage = 100\n"
        # mypy cannot follow an editable install's import hook to buildkit_tasks
        + "\n[tool.mypy]\nignore_missing_imports = true\n"
        # the project's own coverage config says what counts (unimported files too)
        + '\n[tool.coverage.run]\nsource = ["src"]\n'
    )
    project.commit("gates")
    res = project.inv("lint.all")
    assert "-m black --check" in res.stdout or "would reformat" not in res.stdout
    assert "Success: no issues found" in res.stdout  # mypy ran
    (project.path / "src" / "acme" / "ugly.py").write_text("import os,sys\nx=( 1 , 2 )\n")
    res = project.inv("lint.all", check=False)
    assert res.returncode == 1 and "lint failed: black, isort" in res.stderr
    (project.path / "src" / "acme" / "ugly.py").unlink()
    assert project.inv("test.all").returncode == 0  # the example's tests cover all of it
    (project.path / "src" / "acme" / "untested.py").write_text("def f(x):\n    return x + 1\n")
    res = project.inv("test.all", check=False)
    assert res.returncode == 1 and "coverage (floor 100%) failed" in res.stderr
    assert not (project.path / ".coverage").exists()  # coverage data stays in output_dir


def test_image_scan_without_trivy_is_a_warning(project: Project) -> None:
    res = project.inv("image.scan")
    assert "warning: trivy is not installed" in res.stderr


@pytest.mark.parametrize("compression, suffix", [("zstd", ".zst"), ("gzip", ".gz")])
def test_compressed_archive_loads_and_verifies(
    project: Project, compression: str, suffix: str
) -> None:
    project.inv("archive.export", "--compression", compression)
    dist = project.path / "dist"
    path = dist / f"images.tar{suffix}"
    assert path.is_file() and not (dist / "images.tar").exists()
    arch = project.report()["archive"]
    assert arch["compression"] == compression and arch["path"] == path.name
    subprocess.run(["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=dist, check=True)
    res = project.inv("archive.verify")
    assert "checksums: 1 artifacts OK" in res.stdout and "3 images" in res.stdout
    refs = arch["images"]
    docker("rmi", *refs)
    loaded = docker("load", "-i", str(path)).stdout
    assert all(ref in loaded for ref in refs)
    # a flipped byte is caught
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    bad = project.inv("archive.verify", check=False)
    assert bad.returncode == 1 and "checksum mismatch" in bad.stderr

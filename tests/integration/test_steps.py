"""Each step task on its own against the real tools: lint, test, version, helm, archive."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import Project, docker


def test_lint_fails_on_ruff_error_and_still_runs_helm(project: Project) -> None:
    project.inv("lint.all")
    (project.path / "src" / "acme" / "bad.py").write_text("import os\n")
    res = project.inv("lint.all", check=False)
    assert res.returncode == 1
    assert "F401" in res.stdout
    assert "1 chart(s) linted, 0 chart(s) failed" in res.stdout  # helm lint still ran
    assert res.stderr.strip() == "buildkit: lint failed: ruff"


def test_lint_fails_on_hadolint_error(project: Project) -> None:
    dockerfile = project.path / "images" / "worker" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "MAINTAINER x\nRUN cd /tmp\n")
    res = project.inv("lint.all", check=False)
    assert res.returncode == 1 and "hadolint" in res.stderr


def test_lint_fails_on_broken_chart(project: Project) -> None:
    (project.path / "charts" / "acme" / "templates" / "broken.yaml").write_text("{{ .Values.x \n")
    res = project.inv("lint.all", check=False)
    assert res.returncode == 1 and "helm lint acme" in res.stderr


def test_test_all_runs_pytest_and_fails_with_it(project: Project) -> None:
    assert "2 passed" in project.inv("test.all").stdout
    (project.path / "tests" / "test_broken.py").write_text("def test_x():\n    assert 1 == 2\n")
    res = project.inv("test.all", check=False)
    assert res.returncode == 1
    assert "1 failed, 2 passed" in res.stdout
    assert res.stderr.strip() == "buildkit: pytest failed (exit 1)"


def test_version_show_and_stamp(project: Project) -> None:
    assert project.inv("version.show").stdout.strip() == "2.3.0"
    (project.path / "NEWS").write_text("x")
    head = project.commit("past the tag")
    assert project.inv("version.show").stdout.strip() == f"2.3.1.dev1+{head[:7]}"
    assert (
        project.inv("version.show", "--format", "docker").stdout.strip() == f"2.3.1.dev1-{head[:7]}"
    )
    data = json.loads(project.inv("version.show", "--format", "json").stdout)
    assert data["commit"] == head and data["distance"] == 1
    project.inv("version.stamp")
    stamped = json.loads((project.path / "dist" / "version.json").read_text())
    assert stamped["version"] == f"2.3.1.dev1+{head[:7]}"


def test_helm_package_alone(project: Project) -> None:
    project.inv("helm.package")
    chart = project.path / "dist" / "charts" / "acme-2.3.0.tgz"
    shown = subprocess.run(
        ["helm", "show", "chart", str(chart)], capture_output=True, text=True, check=True
    ).stdout
    assert "version: 2.3.0" in shown and "appVersion: 2.3.0" in shown
    assert project.report()["charts"][0]["path"] == "charts/acme-2.3.0.tgz"
    assert not list((project.path / "dist" / "charts").glob(".helm-*"))


def test_archive_export_builds_then_saves_with_shared_layers(project: Project) -> None:
    project.inv("archive.export")
    dist = project.path / "dist"
    subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=dist, check=True, capture_output=True)
    # one docker save of all three stores the busybox layer they share once
    listing = subprocess.run(
        ["tar", "tf", str(dist / "images.tar")], capture_output=True, text=True, check=True
    ).stdout.split()
    blobs = [x for x in listing if x.startswith("blobs/sha256/") and len(x) > 20]
    assert len(blobs) == len(set(blobs))
    index = json.loads(
        subprocess.run(
            ["tar", "xOf", str(dist / "images.tar"), "index.json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    names = {m["annotations"].get("io.containerd.image.name") for m in index["manifests"]}
    assert names == {
        f"docker.io/localhost:5000/acme/{n}:2.3.0" for n in ("base", "api", "worker")
    } or names == {f"localhost:5000/acme/{n}:2.3.0" for n in ("base", "api", "worker")}


def test_archive_export_names_a_missing_image(project: Project) -> None:
    project.inv("image.build")
    docker("rmi", "localhost:5000/acme/worker:2.3.0")
    # Calling the plain API (no pre-task) shows the error a user gets for a missing image.
    code = (
        "from pathlib import Path\n"
        "from buildkit_tasks import config, archive\n"
        "from buildkit_tasks.runner import Runner\n"
        "from buildkit_tasks.errors import CommandError\n"
        "s = config.load(Path('.'))\n"
        "try:\n"
        "    archive.export(s, ['localhost:5000/acme/worker:2.3.0'], Runner())\n"
        "except CommandError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=project.path, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == (
        "image localhost:5000/acme/worker:2.3.0 is not in the local image store; "
        "run inv image.build"
    )
    assert not (project.path / "dist" / "images.tar").exists()


def test_dry_run_batch_prints_the_bake_and_writes_nothing(project: Project) -> None:
    out = project.inv("--dry", "build.all").stdout
    assert "docker buildx bake --file - --progress=plain" in out
    definition = out.split("# bake definition (stdin):\n", 1)[1]
    definition = definition[: definition.index("\n}\n") + 2]
    targets = json.loads(definition)["target"]
    assert set(targets) == {"base", "api", "worker", "base--ctx1"}
    assert targets["api"]["contexts"] == {
        "base": "target:base",
        "localhost:5000/acme/base": "target:base--ctx1",
    }
    assert not (project.path / "dist").exists()


def test_dry_run_prints_commands_in_order_and_writes_nothing(project: Project) -> None:
    (project.path / "invoke.yaml").write_text("buildkit:\n  batch: false\n")
    out = project.inv("--dry", "build.all").stdout
    lines = out.splitlines()
    builds = [x for x in lines if x.startswith("docker buildx build")]
    assert len(builds) == 3
    assert "/images/base" in builds[0].rsplit(" ", 1)[1]
    assert any(x.startswith("helm package ") for x in lines)
    assert any(x.startswith("docker save ") for x in lines)
    assert lines.index(builds[-1]) < [i for i, x in enumerate(lines) if "docker save" in x][0]
    assert not (project.path / "dist").exists()

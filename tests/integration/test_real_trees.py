"""Issue 11 against the real engine and the real hadolint: Dockerfiles as companies write them
(``FROM localhost:5000/...``), and build-only bases that are built but never published."""

from __future__ import annotations

import json
import uuid

import pytest

from .conftest import Project, docker, tags_in


def test_lint_accepts_registry_ports_and_still_fails_real_errors(project: Project) -> None:
    worker = project.path / "images" / "worker" / "Dockerfile"
    assert "FROM localhost:5000/acme/base:latest" in worker.read_text()
    res = project.inv("lint.all")
    assert "DL1000" not in res.stdout + res.stderr
    assert "unexpected ':'" not in res.stdout + res.stderr

    # a real hadolint error on the same file is reported against it, with its line, and fails
    lines = worker.read_text().splitlines()
    worker.write_text("\n".join([*lines, "WORKDIR relative/dir", ""]))
    res = project.inv("lint.all", check=False)
    assert res.returncode != 0
    assert f"images/worker/Dockerfile:{len(lines) + 1} DL3000 error" in res.stdout, res.stdout
    assert "lint failed: hadolint" in res.stderr


def test_a_dockerfile_hadolint_cannot_read_but_docker_can_is_not_a_failure(
    project: Project,
) -> None:
    worker = project.path / "images" / "worker" / "Dockerfile"
    worker.write_text(
        worker.read_text()
        + "COPY <<EOF /etc/motd\nwelcome\nEOF\nRUN <<EOT sh\nset -e\necho ok\nEOT\n"
    )
    res = project.inv("lint.all")
    assert "hadolint cannot read images/worker/Dockerfile:" in res.stderr
    assert "BuildKit can, so it is not linted" in res.stderr
    # and the engine agrees that the file is valid
    project.inv("image.build", "--name", "worker")


def test_a_build_only_base_is_built_for_dependents_but_never_pushed(
    project: Project, registry: str
) -> None:
    prefix = f"bo-{uuid.uuid4().hex[:8]}"
    pyproject = project.path / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            'context = "images/base"\n', 'context = "images/base"\npush = false\n', 1
        )
    )
    project.commit("base is build-only")
    env = {"INVOKE_BUILDKIT_REGISTRY": f"{registry}/{prefix}"}
    project.inv("image.push", env=env)
    tag = project.report()["version"]["docker_tag"]
    assert tags_in(registry, f"{prefix}/base") is None
    assert set(tags_in(registry, f"{prefix}/api") or []) == {tag, "latest"}
    assert set(tags_in(registry, f"{prefix}/worker") or []) == {tag, "latest"}
    images = {i["name"]: i for i in project.report()["images"]}
    assert images["base"]["status"] == "succeeded" and "digest" not in images["base"]
    assert images["api"]["digest"].startswith("sha256:")
    # the pushed worker runs the base this run built (busybox from the base's context)
    ref = f"{registry}/{prefix}/worker:{tag}"
    docker("rmi", ref, check=False)
    out = docker("run", "--rm", "--pull", "always", ref, "sh", "-c", "echo $PATH").stdout
    assert "/bin" in out

    # nor is it exported to the offline archive
    project.inv("archive.export", env=env)
    exported = project.report()["archive"]["images"]
    assert sorted(r.rsplit("/", 1)[1].split(":")[0] for r in exported) == ["api", "worker"]


def test_a_chart_cannot_name_a_build_only_image(project: Project) -> None:
    pyproject = project.path / "pyproject.toml"
    text = pyproject.read_text().replace(
        'context = "images/base"\n', 'context = "images/base"\npush = false\n', 1
    )
    pyproject.write_text(text.replace('"worker.image" = "worker"', '"worker.image" = "base"'))
    project.commit("chart names the base")
    res = project.inv("helm.package", check=False)
    assert res.returncode == 1
    assert "names build-only image 'base' (push = false)" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("bare", [True, False])
def test_bare_names_decide_whether_from_base_is_the_project_image(
    project: Project, bare: bool
) -> None:
    pyproject = project.path / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace("bare_names = true", f"bare_names = {str(bare).lower()}")
    )
    data = json.loads(project.inv("image.graph", "--format", "json").stdout)
    deps = {i["name"]: i["depends_on"] for i in data["images"]}
    # worker names the base with the registry port: an edge either way
    assert deps["worker"] == ["base"]
    # api's build stage says `FROM base`: ours only with bare names
    assert deps["api"] == ["base"]  # its runtime stage names the full reference too
    res = project.inv("image.build", "--name", "api", check=False)
    if bare:
        assert res.returncode == 0, res.stdout + res.stderr
    else:  # `FROM base` is then Docker Hub's `base`, which this offline engine cannot pull
        assert res.returncode != 0
        assert "docker.io/library/base" in (project.path / "dist/logs/api.log").read_text()

"""Charts against real helm and the loopback registry: the example's subchart and values map,
lint --strict, reproducible packages, OCI push and pull, per-path image versions."""

from __future__ import annotations

import hashlib
import re
import subprocess
import tarfile
import uuid
from pathlib import Path

from .conftest import AuthRegistry, Project

REG = "localhost:5000/acme"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _chart(project: Project) -> Path:
    [tgz] = (project.path / "dist" / "charts").glob("acme-*.tgz")
    return tgz


def test_package_vendors_the_subchart_stamps_images_and_is_reproducible(
    project: Project,
) -> None:
    project.inv("lint.all")  # helm lint --strict on the staged chart passes
    project.inv("helm.package")
    tgz = _chart(project)
    first = _sha(tgz)
    with tarfile.open(tgz) as tar:
        names = tar.getnames()
        values = tar.extractfile("acme/values.yaml").read().decode()  # type: ignore[union-attr]
    assert "acme/charts/acme-config/Chart.yaml" in names  # file:// subchart vendored
    assert "repository: localhost:5000/acme/api" in values and 'tag: "2.3.0"' in values
    assert "# repository and tag are set" in values  # comments kept in the stamped copy
    rendered = subprocess.run(
        ["helm", "template", "rel", str(tgz)], capture_output=True, text=True, check=True
    ).stdout
    assert f'image: "{REG}/api:2.3.0"' in rendered and f'image: "{REG}/worker:2.3.0"' in rendered
    assert 'GREETING: "hello from acme api"' in rendered  # the subchart renders, values flow
    # the source tree is untouched: placeholders stay, no charts/ vendored there
    assert "repository: acme/api" in (project.path / "charts/acme/values.yaml").read_text()
    assert not (project.path / "charts/acme/charts").exists()
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=project.path, capture_output=True, text=True
    ).stdout
    assert status == ""
    # same inputs, same bytes
    tgz.unlink()
    project.inv("helm.package")
    assert _sha(_chart(project)) == first
    with tarfile.open(_chart(project)) as tar:
        commit_time = int(
            subprocess.run(
                ["git", "log", "-1", "--format=%ct"],
                cwd=project.path,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        assert {m.mtime for m in tar.getmembers()} == {commit_time}


def test_unreachable_remote_dependency_is_a_clear_error(project: Project) -> None:
    chart_yaml = project.path / "charts/acme/Chart.yaml"
    chart_yaml.write_text(
        chart_yaml.read_text()
        + "  - name: redis\n    version: 1.0.0\n    repository: oci://127.0.0.1:9/charts\n"
    )
    project.commit("remote dependency")
    res = project.inv("helm.package", check=False)
    assert res.returncode == 1
    assert "remote dependencies oci://127.0.0.1:9/charts must be reachable" in res.stderr
    assert "Traceback" not in res.stderr
    assert not list((project.path / "dist" / "charts").glob("*.tgz"))


def test_remote_oci_dependency_is_fetched(project: Project, tmp_path: Path) -> None:
    """acme-config published to the loopback registry, then required from there."""
    repo = f"localhost:5000/deps-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["helm", "package", str(project.path / "charts/acme-config"), "-d", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        ["helm", "push", str(tmp_path / "acme-config-0.1.0.tgz"), f"oci://{repo}", "--plain-http"],
        check=True,
        capture_output=True,
    )
    chart_yaml = project.path / "charts/acme/Chart.yaml"
    chart_yaml.write_text(chart_yaml.read_text().replace("file://../acme-config", f"oci://{repo}"))
    project.commit("acme-config from the registry")
    project.inv("helm.package")
    with tarfile.open(_chart(project)) as tar:
        assert "acme/charts/acme-config/templates/configmap.yaml" in tar.getnames()
    assert not (project.path / "charts/acme/charts").exists()  # fetched into the staged copy


def _own_chart_repository(project: Project) -> str:
    """A chart repository no other test run uses (every test project is version 2.3.0)."""
    repo = f"localhost:5000/charts-{uuid.uuid4().hex[:8]}"
    pyproject = project.path / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            "[tool.buildkit.helm]\n", f'[tool.buildkit.helm]\nrepository = "oci://{repo}"\n'
        )
    )
    project.commit("own chart repository")
    return repo


def test_push_to_oci_and_pull_back_refusing_to_overwrite(project: Project, tmp_path: Path) -> None:
    repo = _own_chart_repository(project)
    res = project.inv("helm.push")
    tgz = _chart(project)
    pushed = project.report()["chart_pushes"][0]
    version = pushed["version"]
    assert pushed["reference"] == f"oci://{repo}/acme:{version}"
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", pushed["digest"])
    assert "pushed oci://" in res.stdout
    pulled = tmp_path / "pulled"
    pulled.mkdir()
    pull = ["helm", "pull", f"oci://{repo}/acme", "--version", version, "--plain-http"]
    subprocess.run([*pull, "--destination", str(pulled)], check=True, capture_output=True)
    assert _sha(pulled / tgz.name) == _sha(tgz)  # the registry holds our exact bytes
    again = project.inv("helm.push", check=False)
    assert (
        again.returncode == 1 and "already in oci://" in again.stderr and "--force" in again.stderr
    )
    project.inv("helm.push", "--force")


def test_push_with_credentials(project: Project, auth_registry: AuthRegistry) -> None:
    env = {
        "INVOKE_BUILDKIT_REGISTRY": f"{auth_registry.host}/acme",
        "BUILDKIT_REGISTRY_USER": auth_registry.user,
        "BUILDKIT_REGISTRY_PASSWORD": auth_registry.password,
    }
    res = project.inv("helm.push", env=env)
    assert f"pushed oci://{auth_registry.host}/acme/charts/acme:" in res.stdout
    assert auth_registry.password not in res.stdout + res.stderr
    assert auth_registry.password not in (project.path / "dist" / "build-report.json").read_text()
    wrong = {**env, "BUILDKIT_REGISTRY_PASSWORD": "wrong"}
    bad = project.inv("helm.push", "--force", env=wrong, check=False)
    assert bad.returncode == 1 and "helm registry login" in bad.stderr


def test_image_with_version_paths_keeps_its_tag_until_its_paths_change(project: Project) -> None:
    pyproject = project.path / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            '[tool.buildkit.images.worker]\ncontext = "images/worker"\n',
            '[tool.buildkit.images.worker]\ncontext = "images/worker"\n'
            'version_paths = ["images/worker"]\n',
        )
    )
    head = project.commit("worker versioned by its own paths")
    project.inv("image.build")
    refs = {i["name"]: i["references"][0] for i in project.report()["images"]}
    assert refs["worker"] == f"{REG}/worker:2.3.0"  # nothing under images/worker changed
    assert refs["api"] == f"{REG}/api:2.3.1.dev1-{head[:7]}"
    values = tarfile.open  # the chart gets each image's own tag too
    project.inv("helm.package")
    with values(_chart(project)) as tar:
        text = tar.extractfile("acme/values.yaml").read().decode()  # type: ignore[union-attr]
    assert 'tag: "2.3.0"' in text and f'tag: "2.3.1.dev1-{head[:7]}"' in text


def test_chart_with_version_paths_keeps_its_version_until_they_change(project: Project) -> None:
    pyproject = project.path / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            "[tool.buildkit.helm.image_values]\n",
            '[tool.buildkit.helm.version_paths]\n"charts/acme" = ["charts"]\n\n'
            "[tool.buildkit.helm.image_values]\n",
        )
    )
    head = project.commit("chart versioned by its own paths")
    project.inv("helm.package")
    [chart] = project.report()["charts"]
    assert chart["version"] == "2.3.0"  # no commit touched charts/ since the tag
    assert chart["app_version"] == f"2.3.1.dev1-{head[:7]}"  # the images this build made
    (project.path / "charts/acme/values.yaml").write_text(
        (project.path / "charts/acme/values.yaml")
        .read_text()
        .replace("replicas: 1", "replicas: 2", 1)
    )
    head = project.commit("chart change")
    project.inv("helm.package")
    [chart] = project.report()["charts"]
    assert chart["version"].startswith("2.3.1-") and head[:7] in chart["version"]

"""A chartpress-style chart repository moved over without changing its chart: packaged with its
values schema (image mappings with ``name``) it passes ``helm lint --strict`` and ``helm
template``; ``appVersion`` is kept; ``helm.stamp`` and ``--reset`` round-trip the source tree;
``helm.publish`` maintains a chart repository in a git branch of a local bare repository; and
``extra_build_args`` reach a real build."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tests.conftest import commit_all, git
from tests.fixtures import chartrepo

from .conftest import REPO, Project, docker


@pytest.fixture
def chart_repo(tmp_path: Path, helm_bin: None) -> Path:
    repo = tmp_path / "z2jh"
    repo.mkdir()
    # up to the dev commits past the prerelease tag 4.0.0-beta.1
    for step, act in chartrepo.HISTORY:
        act(repo)
        if step == "chart template changed":
            break
    (repo / "tasks.py").write_text("from buildkit_tasks import ns  # noqa: F401\n")
    commit_all(repo, "tasks.py")
    return repo


def inv(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=300,
    )
    if check and res.returncode != 0:
        raise AssertionError(f"inv {' '.join(args)}: {res.returncode}\n{res.stdout}\n{res.stderr}")
    return res


class yaml:  # noqa: N801 - reads like PyYAML's module, which is not a dependency
    @staticmethod
    def safe_load(stream: Any) -> Any:
        return YAML(typ="safe", pure=True).load(stream)


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["helm", *args], capture_output=True, text=True, timeout=120)


def test_packaged_chart_passes_its_schema_and_keeps_app_version(chart_repo: Path) -> None:
    out = inv(chart_repo, "helm.package").stdout
    [tgz] = (chart_repo / "dist" / "charts").glob("jupyterhub-*.tgz")
    assert tgz.name in out
    version = tgz.name[len("jupyterhub-") : -len(".tgz")]
    assert version.startswith("4.0.0-beta.1.git.")  # chartpress's form past a prerelease
    lint = helm("lint", "--strict", str(tgz))
    assert lint.returncode == 0, lint.stdout + lint.stderr
    rendered = helm("template", "hub", str(tgz))
    assert rendered.returncode == 0, rendered.stderr
    with tarfile.open(tgz) as tar:
        meta = yaml.safe_load(tar.extractfile("jupyterhub/Chart.yaml"))  # type: ignore[arg-type]
        values = yaml.safe_load(tar.extractfile("jupyterhub/values.yaml"))  # type: ignore[arg-type]
    assert meta["appVersion"] == "5.2.1"  # scheme chartpress: Chart.yaml's own is kept
    assert meta["version"] == version
    hub = values["hub"]["image"]
    assert set(hub) == {"name", "tag", "pullPolicy", "pullSecrets"}  # no `repository` added
    assert hub["name"] == f"{chartrepo.REGISTRY}/{chartrepo.PREFIX}hub"
    assert f"{hub['name']}:{hub['tag']}" in rendered.stdout
    profile = values["singleuser"]["profileList"][0]["kubespawner_override"]["image"]
    assert profile.startswith(f"{chartrepo.REGISTRY}/{chartrepo.PREFIX}singleuser-sample:")
    assert 'app.kubernetes.io/version: "5.2.1"' in rendered.stdout  # .Chart.AppVersion

    # the peer check: what the chart would fail without the `name` rule
    bad = chart_repo / "bad"
    with tarfile.open(tgz) as tar:
        tar.extractall(bad, filter="data")
    text = (bad / "jupyterhub" / "values.yaml").read_text()
    (bad / "jupyterhub" / "values.yaml").write_text(
        text.replace("    name: ", "    repository: ", 1)
    )
    refused = helm("lint", "--strict", str(bad / "jupyterhub"))
    assert refused.returncode != 0 and "repository" in refused.stdout + refused.stderr


def test_app_version_image_sets_the_image_tag(chart_repo: Path) -> None:
    pyproject = chart_repo / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            "[tool.buildkit.helm]\n", '[tool.buildkit.helm]\napp_version = "image"\n'
        )
    )
    inv(chart_repo, "helm.package")
    [tgz] = (chart_repo / "dist" / "charts").glob("jupyterhub-*.tgz")
    with tarfile.open(tgz) as tar:
        meta = yaml.safe_load(tar.extractfile("jupyterhub/Chart.yaml"))  # type: ignore[arg-type]
    # the project's tag: chartpress's version of the whole tree (uncommitted config ignored)
    assert meta["appVersion"].startswith("4.0.0-beta.1.git.")


def test_stamp_and_reset_round_trip_the_source_tree(chart_repo: Path) -> None:
    before = {
        p: (chart_repo / p).read_text() for p in ("jupyterhub/Chart.yaml", "jupyterhub/values.yaml")
    }
    dry = inv(chart_repo, "--dry", "helm.stamp").stdout
    assert "would change" in dry and git(chart_repo, "status", "--porcelain") == ""
    out = inv(chart_repo, "helm.stamp").stdout
    assert "jupyterhub/values.yaml: changed" in out
    values = yaml.safe_load((chart_repo / "jupyterhub/values.yaml").read_text())
    assert values["hub"]["image"]["tag"].startswith("4.0.0-beta.1")
    chart = yaml.safe_load((chart_repo / "jupyterhub/Chart.yaml").read_text())
    assert chart["version"].startswith("4.0.0-beta.1.git.")
    lint = helm("lint", "--strict", str(chart_repo / "jupyterhub"))  # the stamped source lints
    assert lint.returncode == 0, lint.stdout
    assert "nothing to change" in inv(chart_repo, "helm.stamp").stdout  # idempotent
    inv(chart_repo, "helm.stamp", "--reset")
    values = yaml.safe_load((chart_repo / "jupyterhub/values.yaml").read_text())
    assert values["hub"]["image"] == {
        "name": f"{chartrepo.REGISTRY}/{chartrepo.PREFIX}hub",
        "tag": "set-by-chartpress",
        "pullPolicy": None,
        "pullSecrets": [],
    }
    assert yaml.safe_load((chart_repo / "jupyterhub/Chart.yaml").read_text())["version"] == (
        "0.0.1-set.by.chartpress"
    )
    # only the image names differ from the committed file (they now carry this registry)
    chart_text = before["jupyterhub/Chart.yaml"]
    assert (chart_repo / "jupyterhub/Chart.yaml").read_text() == chart_text
    values_text = before["jupyterhub/values.yaml"].replace(
        "name: quay.io/jupyterhub/", f"name: {chartrepo.REGISTRY}/"
    )
    assert (chart_repo / "jupyterhub/values.yaml").read_text() == values_text.replace(
        '"quay.io/jupyterhub/k8s-singleuser-sample:',
        f'"{chartrepo.REGISTRY}/k8s-singleuser-sample:',
    )


def test_a_values_path_typo_is_an_error_naming_file_and_path(chart_repo: Path) -> None:
    pyproject = chart_repo / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"hub.image"', '"hub.imagee"'))
    res = inv(chart_repo, "helm.package", check=False)
    assert res.returncode != 0
    assert "jupyterhub/values.yaml" in res.stderr and "'hub.imagee'" in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not list((chart_repo / "dist").glob("charts/*.tgz"))


def test_publish_to_a_chart_repository_in_a_git_branch(chart_repo: Path, tmp_path: Path) -> None:
    bare = tmp_path / "helm-chart.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    pyproject = chart_repo / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text()
        + f'\n[tool.buildkit.helm.publish]\ngit = "{bare}"\nurl = "https://charts.example.invalid/"\n'
    )
    commit_all(chart_repo, "publish config")

    dry = inv(chart_repo, "--dry", "helm.publish").stdout
    assert "helm repo index" in dry, dry
    assert "push -q origin gh-pages" in dry and ".tgz" in dry, dry
    assert git(bare, "branch", "--list") == ""  # a dry run pushed nothing

    out = inv(chart_repo, "helm.publish", "--extra-message", "from CI run 7").stdout
    [tgz] = (chart_repo / "dist" / "charts").glob("jupyterhub-*.tgz")
    version = tgz.name[len("jupyterhub-") : -len(".tgz")]
    assert f"published {version} -> https://charts.example.invalid/{tgz.name}" in out
    index = yaml.safe_load(git(bare, "show", "gh-pages:index.yaml"))
    [entry] = index["entries"]["jupyterhub"]
    assert entry["version"] == version
    assert entry["urls"] == [f"https://charts.example.invalid/{tgz.name}"]
    first_created = entry["created"]
    message = git(bare, "log", "-1", "--format=%B", "gh-pages")
    assert message.startswith(f"[jupyterhub] Automatic update for commit {version}")
    assert "from CI run 7" in message
    files = git(bare, "ls-tree", "--name-only", "gh-pages").splitlines()
    assert sorted(files) == sorted(["index.yaml", tgz.name])

    again = inv(chart_repo, "helm.publish", check=False)  # the same version again
    assert again.returncode != 0 and "already in" in again.stderr and "--force" in again.stderr
    assert "Traceback" not in again.stderr
    assert len(git(bare, "rev-list", "gh-pages").splitlines()) == 1

    (chart_repo / "jupyterhub" / "templates" / "NOTES.txt").write_text("changed\n")
    commit_all(chart_repo, "chart change")
    inv(chart_repo, "helm.publish")
    index = yaml.safe_load(git(bare, "show", "gh-pages:index.yaml"))
    versions = [e["version"] for e in index["entries"]["jupyterhub"]]
    assert len(versions) == 2 and version in versions
    old = next(e for e in index["entries"]["jupyterhub"] if e["version"] == version)
    assert old["created"] == first_created  # --merge keeps existing entries as they were

    inv(chart_repo, "helm.publish", "--force")  # allowed to replace
    assert len(git(bare, "rev-list", "gh-pages").splitlines()) == 3


def test_dry_helm_push_names_the_packaged_archive(chart_repo: Path) -> None:
    out = inv(chart_repo, "--dry", "helm.push").stdout
    assert "helm push" in out
    push_line = next(ln for ln in out.splitlines() if ln.startswith("helm push"))
    assert ".tgz" in push_line and "jupyterhub-4.0.0-beta.1.git." in push_line


def test_extra_build_args_and_templated_build_args_reach_the_build(project: Project) -> None:
    pyproject = project.path / "pyproject.toml"
    text = pyproject.read_text()
    assert "[tool.buildkit.images.worker]\n" in text
    pyproject.write_text(
        text.replace(
            "[tool.buildkit.images.worker]\n",
            "[tool.buildkit.images.worker]\n"
            'extra_build_args = ["--label=org.example.ref={TAG}-{LAST_COMMIT}", "--no-cache"]\n',
        )
    )
    head = project.commit("extra build args")
    project.inv("image.build")
    report = project.report()
    tag = report["version"]["docker_tag"]
    [worker] = [i for i in report["images"] if i["name"] == "worker"]
    assert worker["status"] == "succeeded" and not worker.get("batch")  # built outside the bake
    label = docker(
        "image",
        "inspect",
        "--format",
        '{{ index .Config.Labels "org.example.ref" }}',
        worker["references"][0],
    ).stdout.strip()
    short = git(project.path, "rev-parse", "--short", head)
    assert label == f"{tag}-{short}"


def test_extra_build_args_that_we_set_ourselves_are_refused(project: Project) -> None:
    pyproject = project.path / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            "[tool.buildkit.images.worker]\n",
            '[tool.buildkit.images.worker]\nextra_build_args = ["--push"]\n',
        )
    )
    res = project.inv("image.build", check=False)
    assert res.returncode != 0 and "extra_build_args" in res.stderr and "--push" in res.stderr
    assert "Traceback" not in res.stderr

"""The chartpress scheme against chartpress itself (the peer, installed with the test extras),
run on the same commits of a chart repository shaped like zero-to-jupyterhub: every image tag
(``chartpress --list-images``) and the stamped ``Chart.yaml`` and ``values.yaml``
(``chartpress --skip-build``) must be byte for byte what buildkit-tasks gives."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from buildkit_tasks import buildplan, charts, config
from buildkit_tasks.errors import ConfigError
from tests.conftest import commit_all, git
from tests.fixtures import chartrepo


def chartpress(repo: Path, *args: str) -> str:
    res = subprocess.run(
        [sys.executable, "-m", "chartpress", *args],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


def fresh_plan(repo: Path) -> tuple[config.Settings, buildplan.BuildPlan]:
    buildplan._VERSIONS.clear()  # versions are asked once per process; here HEAD moves
    buildplan._PROJECT.clear()
    settings = config.load(repo)
    return settings, buildplan.make(settings)


def stamped_by_chartpress(repo: Path) -> tuple[list[str], dict[str, str]]:
    images = chartpress(repo, "--list-images").split()
    chartpress(repo, "--skip-build")
    files = {f: (repo / "jupyterhub" / f).read_text() for f in ("Chart.yaml", "values.yaml")}
    git(repo, "checkout", "-q", "--", "jupyterhub")
    return images, files


def stamped_by_us(repo: Path) -> tuple[list[str], dict[str, str]]:
    settings, plan = fresh_plan(repo)
    images = [plan.images[name].reference for name in chartrepo.IMAGE_VALUES]
    charts.stamp(settings, plan)
    files = {f: (repo / "jupyterhub" / f).read_text() for f in ("Chart.yaml", "values.yaml")}
    git(repo, "checkout", "-q", "--", "jupyterhub")
    return images, files


def committed(tmp_path: Path) -> Path:
    """The fixture repository written and committed once."""
    repo = tmp_path / "z2jh"
    repo.mkdir()
    chartrepo.write(repo)
    commit_all(repo, "initial")
    return repo


def test_versions_match_chartpress_commit_by_commit(tmp_path: Path) -> None:
    repo = tmp_path / "z2jh"
    repo.mkdir()
    seen = []
    for step, act in chartrepo.HISTORY:
        act(repo)
        theirs_images, theirs_files = stamped_by_chartpress(repo)
        ours_images, ours_files = stamped_by_us(repo)
        assert ours_images == theirs_images, step
        assert ours_files["Chart.yaml"] == theirs_files["Chart.yaml"], step
        assert ours_files["values.yaml"] == theirs_files["values.yaml"], step
        version = next(
            ln.split()[1]
            for ln in ours_files["Chart.yaml"].splitlines()
            if ln.startswith("version")
        )
        seen.append(version)
        # both really stamped: names and tags from this build, not the placeholders
        hub_tag = ours_images[0].rsplit(":", 1)[1]
        assert f"name: {chartrepo.REGISTRY}/{chartrepo.PREFIX}hub\n" in ours_files["values.yaml"]
        assert f'tag: "{hub_tag}"' in ours_files["values.yaml"]
        assert "set-by-chartpress" not in ours_files["values.yaml"], step
    # the history walks every rule: a tagged commit, dev versions past a release and past a
    # prerelease, base_version, a backport branch and its release
    assert "3.0.0" in seen and "3.0.1" in seen and "4.0.0-beta.1" in seen and "4.1.0" in seen
    assert any(v.startswith("3.0.0-0.dev.git.") for v in seen)
    assert any(v.startswith("4.0.0-beta.1.git.") for v in seen)
    assert any(v.startswith("4.1.0-0.dev.git.") for v in seen)
    assert any(v.startswith("3.0.1-0.dev.git.") for v in seen)
    assert len(seen) >= 8


def test_build_args_are_templated_with_the_image_tag(tmp_path: Path) -> None:
    repo = committed(tmp_path)
    head = git(repo, "rev-parse", "HEAD")
    _, plan = fresh_plan(repo)
    hub = plan.images["hub"]
    assert hub.tag == f"0.0.1-0.dev.git.1.h{git(repo, 'rev-parse', '--short', head)}"
    assert hub.spec.build_args == {"JUPYTERHUB_VERSION": hub.tag}
    assert plan.graph.nodes["hub"].spec.build_args == {"JUPYTERHUB_VERSION": hub.tag}


def test_base_version_checked_as_chartpress_does(tmp_path: Path) -> None:
    repo = committed(tmp_path)
    git(repo, "tag", "-a", "4.0.0", "-m", "4.0.0")
    (repo / "README.md").write_text("past the tag\n")
    commit_all(repo, "past")
    (repo / "pyproject.toml").write_text(chartrepo.pyproject("3.9.0-0.dev"))
    with pytest.raises(ConfigError, match="3.9.0-0.dev is not greater than the last tag 4.0.0"):
        fresh_plan(repo)
    (repo / "pyproject.toml").write_text(chartrepo.pyproject("4.0.0"))  # = 4.0.0-0.dev
    with pytest.raises(ConfigError, match="4.0.0-0.dev is not greater"):
        fresh_plan(repo)
    (repo / "pyproject.toml").write_text(chartrepo.pyproject("minor"))
    commit_all(repo, "base version: minor")  # the config is one of the chart's paths
    _, plan = fresh_plan(repo)
    assert plan.charts[0].version.startswith("4.1.0-0.dev.git.")
    (repo / "pyproject.toml").write_text(chartrepo.pyproject("not-a-version"))
    with pytest.raises(ConfigError, match="base_version: expected a SemVer version"):
        fresh_plan(repo)


def test_a_matching_tag_without_a_version_is_an_error(tmp_path: Path) -> None:
    repo = committed(tmp_path)
    git(repo, "tag", "-a", "workshop-2024", "-m", "not a release")
    with pytest.raises(ConfigError, match="'workshop-2024' is not a SemVer version"):
        fresh_plan(repo)

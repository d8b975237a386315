from pathlib import Path

import pytest

from buildkit_tasks import buildplan, config, versioning
from buildkit_tasks.errors import ConfigError
from tests.conftest import commit_all, git

PYPROJECT = """\
[tool.buildkit]
registry = "localhost:5000/acme"

[tool.buildkit.images.base]
context = "images/base"
push = false

[tool.buildkit.images.api]
context = "images/api"

[tool.buildkit.images.worker]
context = "images/worker"
version_paths = ["images/worker"]

[tool.buildkit.helm]
charts = ["charts/acme"]

[tool.buildkit.helm.version_paths]
"charts/acme" = ["charts"]

[tool.buildkit.helm.image_values]
"api.image" = "api"
"""


def make_project(root: Path, pyproject: str = PYPROJECT) -> config.Settings:
    for name, text in {
        "base": "FROM scratch\n",
        "api": "FROM localhost:5000/acme/base:latest\n",
        "worker": "FROM localhost:5000/acme/base:latest\n",
    }.items():
        (root / "images" / name).mkdir(parents=True)
        (root / "images" / name / "Dockerfile").write_text(text)
    (root / "charts/acme").mkdir(parents=True)
    (root / "charts/acme/Chart.yaml").write_text("apiVersion: v2\nname: acme-chart\nversion: 0\n")
    (root / "pyproject.toml").write_text(pyproject)
    commit_all(root, "start")
    git(root, "tag", "v2.3.0")
    (root / "images/api/Dockerfile").write_text("FROM localhost:5000/acme/base:latest\nENV A=1\n")
    commit_all(root, "api")
    return config.load(root)


def test_plan_names_every_reference_and_version_once(tmp_path: Path) -> None:
    s = make_project(tmp_path)
    plan = buildplan.make(s)
    head = git(tmp_path, "rev-parse", "HEAD")[:7]
    assert list(plan.images) == ["base", "api", "worker"]
    assert plan.image("api").reference == f"localhost:5000/acme/api:2.3.1.dev1-{head}"
    assert plan.image("api").references[1] == "localhost:5000/acme/api:latest"
    assert plan.image("worker").tag == "2.3.0"  # nothing under images/worker since the tag
    assert plan.references(pushed_only=True) == [
        plan.image("api").reference,
        plan.image("worker").reference,
    ]
    [chart] = plan.charts
    assert (chart.name, chart.version) == ("acme-chart", "2.3.0")
    assert chart.app_version == plan.version.docker_tag
    assert chart.image_values == {"api.image": ("localhost:5000/acme/api", f"2.3.1.dev1-{head}")}
    assert chart.filename == "acme-chart-2.3.0.tgz"
    assert list(plan.select(["api"]).images) == ["base", "api"]
    with pytest.raises(ConfigError, match="no image 'nope'"):
        plan.select(["nope"])


def test_git_is_asked_once_per_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = make_project(tmp_path)
    calls: list[tuple[str, ...]] = []
    real = versioning.for_paths

    def counting(root: Path, paths: tuple[str, ...], *args: str) -> versioning.VersionInfo:
        calls.append(paths)
        return real(root, paths, *args)

    monkeypatch.setattr(versioning, "for_paths", counting)
    first = buildplan.make(s)
    (tmp_path / "images/worker/NOTES").write_text("changed\n")
    commit_all(tmp_path, "worker changes after the plan was made")
    again = buildplan.make(config.load(tmp_path))
    assert again.as_dict() == first.as_dict()  # the same run: the same versions
    assert sorted(calls) == [("charts",), ("images/worker",)]


def test_image_values_naming_an_unknown_or_build_only_image(tmp_path: Path) -> None:
    s = make_project(tmp_path, PYPROJECT.replace('"api.image" = "api"', '"x" = "nope"'))
    with pytest.raises(ConfigError, match="names image 'nope'; known images: api, worker"):
        buildplan.make(s)
    s = config.load(tmp_path, {"helm": {"image_values": {"x": "base"}}})
    with pytest.raises(ConfigError, match="names build-only image 'base'"):
        buildplan.make(s)

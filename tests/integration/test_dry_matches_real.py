"""``inv --dry X`` and ``inv X`` name the same versions and references, for every task that
names any: both read the one build plan (issue 12: ``helm.package --dry`` printed the project's
chart version while the real run used the chart's own from ``helm.version_paths``)."""

from __future__ import annotations

import re

import pytest

from tests.integration.conftest import Project

# References under the example's registry, and versions in the forms this project takes
# (2.3.0, 2.3.1.dev3+abc1234, 2.3.1.dev3-abc1234, 2.3.1-pre.3+abc1234).
REFERENCE = re.compile(r"(?:localhost|127\.0\.0\.1):\d+/acme/[a-z0-9_.-]+:[A-Za-z0-9_.-]+")
VERSION = re.compile(r"\b2\.3\.\d+(?:[-.](?:dev|pre)\.?\d+)?(?:[+-][0-9a-f]{7,40})?\b")

# Every task that names a version or reference, as a user would run it.
TASKS = [
    ("version.show", "--format", "json"),
    ("image.plan", "--format", "json"),
    ("image.build",),
    ("image.scan",),
    ("helm.package",),
    ("archive.export",),
    ("image.push",),
    ("helm.push", "--force"),
    ("build.all",),
]


def names(text: str) -> set[str]:
    return set(REFERENCE.findall(text)) | set(VERSION.findall(text))


@pytest.fixture
def versioned(project: Project) -> Project:
    """The example with its own version paths for one image and the chart, and commits past
    the tag touching each differently: project, worker and chart versions all differ."""
    pyproject = project.path / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text()
        .replace(
            '[tool.buildkit.images.worker]\ncontext = "images/worker"\n',
            '[tool.buildkit.images.worker]\ncontext = "images/worker"\n'
            'version_paths = ["images/worker"]\n',
        )
        .replace(
            "[tool.buildkit.helm.image_values]\n",
            '[tool.buildkit.helm.version_paths]\n"charts/acme" = ["charts"]\n\n'
            "[tool.buildkit.helm.image_values]\n",
        )
    )
    project.commit("own version paths")
    values = project.path / "charts/acme/values.yaml"
    values.write_text(values.read_text().replace("replicas: 1", "replicas: 2", 1))
    project.commit("chart change")
    (project.path / "images/api/NOTES").write_text("a change only api sees\n")
    project.commit("api change")
    return project


def test_dry_and_real_runs_name_the_same_versions_and_references(
    versioned: Project, registry: str
) -> None:
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    plan = versioned.inv("image.plan", "--format", "json", env=env)
    assert plan.returncode == 0
    seen: dict[str, set[str]] = {}
    for task in TASKS:
        dry = versioned.inv("--dry", *task, env=env)
        real = versioned.inv(*task, env=env)
        report = versioned.path / "dist" / "build-report.json"
        wrote = report.read_text() if report.is_file() else ""
        said = names(real.stdout + real.stderr) | names(wrote)
        shown = names(dry.stdout + dry.stderr)
        # what the dry run names is what the real run names or writes (its report holds
        # every reference and version it made)
        assert said, f"inv {' '.join(task)} named no version or reference"
        assert names(real.stdout + real.stderr) <= shown, (task, real.stdout, dry.stdout)
        seen[task[0]] = shown
        assert shown <= said | seen.get("image.build", set()) | seen.get("version.show", set()), (
            task,
            shown - said,
        )
    # the chart's own version, not the project's, on both sides (the reported mismatch)
    chart = versioned.report()["charts"][0]["version"]
    project = versioned.report()["version"]["chart_version"]
    assert (
        chart != project and chart in seen["helm.package"] and project not in seen["helm.package"]
    )
    worker = next(i for i in versioned.report()["images"] if i["name"] == "worker")
    assert worker["references"][0] in seen["image.build"]

"""``inv image.plan`` and ``image.build --explain``: why each image builds or is reused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import Project, docker


@pytest.fixture
def cache_env(tmp_path: Path) -> dict[str, str]:
    """Input manifests kept in this test's own cache folder."""
    return {"BUILDKIT_CACHE_HOME": str(tmp_path / "bk-cache")}


def images() -> set[str]:
    return set(docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout.split())


def decisions(project: Project, env: dict[str, str], *args: str) -> dict[str, dict]:
    out = project.inv("image.plan", "--format", "json", *args, env=env).stdout
    return {i["name"]: i for i in json.loads(out)["images"]}


def test_plan_names_the_changed_file_and_every_image_it_rebuilds(
    project: Project, cache_env: dict[str, str]
) -> None:
    before = decisions(project, cache_env)
    assert {n: i["decision"] for n, i in before.items()} == dict.fromkeys(
        ["base", "api", "worker"], "build"
    )
    project.inv("image.build", env=cache_env)
    assert {i["decision"] for i in decisions(project, cache_env).values()} == {"cached"}

    (project.path / "images" / "worker" / "work.sh").write_text("#!/bin/sh\necho changed\n")
    plan = decisions(project, cache_env)
    assert plan["worker"]["decision"] == "build"
    assert plan["worker"]["reasons"] == ["changed work.sh"]
    assert plan["base"]["decision"] == plan["api"]["decision"] == "cached"
    project.inv("image.build", env=cache_env)

    # a change in the base names the base's file and rebuilds everything built on it
    (project.path / "images" / "base" / "busybox-arm64").write_bytes(b"not busybox\n")
    text = project.inv("image.plan", env=cache_env).stdout
    lines = {line.split()[0]: line for line in text.splitlines()}
    assert lines["base"].split()[1:] == ["build", "changed", "busybox-arm64"]
    assert "base image base changed" in lines["api"]
    assert "base image base changed" in lines["worker"]
    assert text.splitlines()[-1] == "3 to build, 0 cached, 0 skipped"


def test_dry_run_and_explain_agree_with_the_plan(
    project: Project, cache_env: dict[str, str]
) -> None:
    project.inv("image.build", env=cache_env)
    (project.path / "images" / "api" / "page.html.in").write_text("<p>@GREETING@ changed</p>\n")
    plan = project.inv("image.plan", env=cache_env).stdout.splitlines()
    images_before = images()

    dry = project.inv("--dry", "image.build", "--explain", env=cache_env).stdout
    assert all(line in dry.splitlines() for line in plan), (plan, dry)
    # the dry run knows what is cached: only api is in the build it would run
    assert "api" in dry and "# base: cached" in dry and "# worker: cached" in dry
    assert images() == images_before

    real = project.inv("image.build", "--explain", env=cache_env).stdout
    assert all(line in real.splitlines() for line in plan), (plan, real)
    statuses = {i["name"]: i["status"] for i in project.report()["images"]}
    assert statuses == {"base": "cached", "api": "succeeded", "worker": "cached"}


def test_plan_rejects_an_unknown_format(project: Project) -> None:
    res = project.inv("image.plan", "--format", "yaml", check=False)
    assert res.returncode == 1
    assert res.stderr.strip() == "buildkit: --format: expected one of text, json, got 'yaml'"

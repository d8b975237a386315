"""Fan-out planning and merging (buildkit_tasks.fanout); the pushes themselves are in
tests/integration/test_fanout.py against two real engines."""

from pathlib import Path

import pytest

from buildkit_tasks import buildplan, config, fanout
from buildkit_tasks.config import HostSpec
from buildkit_tasks.errors import ConfigError
from buildkit_tasks.images import ImageResult
from buildkit_tasks.runner import Runner
from tests.unit.test_buildplan import make_project

AMD, ARM = "linux/amd64", "linux/arm64"


def host(name: str, *platforms: str) -> HostSpec:
    return HostSpec(name=name, hostname="127.0.0.9", user="bk", platforms=platforms)


def test_assign_gives_each_platform_to_a_host_that_builds_it() -> None:
    shares = fanout.assign([AMD, ARM], [host("x86", AMD), host("arm", ARM)])
    assert [(s.host.name, s.platforms) for s in shares] == [("x86", (AMD,)), ("arm", (ARM,))]


def test_assign_spreads_over_hosts_that_build_the_same_platforms() -> None:
    both = [host("a", AMD, ARM), host("b", AMD, ARM)]
    shares = fanout.assign([AMD, ARM, "linux/arm/v7"], [*both, host("c", "linux/arm/v7")])
    assert [(s.host.name, s.platforms) for s in shares] == [
        ("a", (AMD,)),
        ("b", (ARM,)),
        ("c", ("linux/arm/v7",)),
    ]
    # a host nobody needs gets nothing to do
    assert [s.host.name for s in fanout.assign([AMD], both)] == ["a"]


def test_assign_names_a_platform_no_host_builds() -> None:
    with pytest.raises(ConfigError, match=r"--platform linux/s390x: no host .*a: linux/amd64"):
        fanout.assign(["linux/s390x"], [host("a", AMD), host("b")])
    with pytest.raises(ConfigError, match="b: none set"):
        fanout.assign(["linux/s390x"], [host("a", AMD), host("b")])
    with pytest.raises(ConfigError, match="--hosts: name the platforms"):
        fanout.assign([], [host("a", AMD)])


def pushed(name: str, platform: str, digest: str) -> ImageResult:
    return ImageResult(
        name,
        "succeeded",
        platforms=[platform],
        seconds=1.0,
        pushed=f"localhost:5000/acme/{name}@sha256:{digest * 64}",
    )


def runs(results: dict[str, list[ImageResult]], error: dict[str, str] | None = None) -> list:
    out = []
    for name, platform in (("a", AMD), ("b", ARM)):
        run = fanout.HostRun(fanout.Share(host(name, platform), (platform,)))
        run.results = {r.name: r for r in results.get(name, [])}
        run.error = (error or {}).get(name)
        out.append(run)
    return out


@pytest.fixture
def settings(tmp_path: Path) -> config.Settings:
    return make_project(tmp_path)


@pytest.fixture
def plan(settings: config.Settings) -> buildplan.BuildPlan:
    return buildplan.make(settings)


def test_merge_makes_one_manifest_list_per_image_from_every_hosts_digest(
    settings: config.Settings, plan: buildplan.BuildPlan, capsys: pytest.CaptureFixture[str]
) -> None:
    names = plan.graph.order()
    host_runs = runs(
        {
            "a": [pushed(n, AMD, "a") for n in names],
            "b": [pushed(n, ARM, "b") for n in names],
        }
    )
    merged = fanout.merge(settings, Runner(dry=True), plan, host_runs)
    assert [r.status for r in merged] == ["succeeded"] * len(names)
    api = merged[names.index("api")]
    assert api.hosts == {AMD: "a", ARM: "b"} and api.tagged is True
    assert api.references == list(plan.images["api"].references)
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if "imagetools create" in ln and "/api" in ln)
    # both hosts' digests, both tags, in one command
    assert f"localhost:5000/acme/api@sha256:{'a' * 64}" in line
    assert f"localhost:5000/acme/api@sha256:{'b' * 64}" in line
    for ref in plan.images["api"].references:
        assert f"--tag {ref}" in line


def test_a_failing_host_fails_its_platform_of_each_image_and_no_tag_is_made(
    settings: config.Settings, plan: buildplan.BuildPlan, capsys: pytest.CaptureFixture[str]
) -> None:
    names = plan.graph.order()
    broken = ImageResult("api", "failed", error="exit 1", log="/x/dist/hosts/b/logs/api.log")
    host_runs = runs(
        {
            "a": [pushed(n, AMD, "a") for n in names],
            "b": [broken if n == "api" else pushed(n, ARM, "b") for n in names],
        }
    )
    merged = {r.name: r for r in fanout.merge(settings, Runner(dry=True), plan, host_runs)}
    assert merged["api"].status == "failed"
    assert merged["api"].error == (
        "linux/arm64 on host b: failed: exit 1; log: /x/dist/hosts/b/logs/api.log"
    )
    assert merged["api"].pushed.endswith("a" * 64) and merged["api"].tagged is False
    assert merged["worker"].status == "succeeded" and merged["worker"].tagged is False
    captured = capsys.readouterr()
    assert "imagetools create" not in captured.out
    assert "no tag of this run was made" in captured.err

    # --no-atomic: every image whose platforms all pushed is tagged
    merged = {
        r.name: r for r in fanout.merge(settings, Runner(dry=True), plan, host_runs, atomic=False)
    }
    assert merged["worker"].tagged is True and merged["api"].tagged is False


def test_an_unreachable_host_fails_every_image_naming_it(
    settings: config.Settings, plan: buildplan.BuildPlan
) -> None:
    names = plan.graph.order()
    host_runs = runs(
        {"a": [pushed(n, AMD, "a") for n in names]},
        error={"b": "host b: connection refused at 127.0.0.9:22 (is sshd running?)"},
    )
    merged = fanout.merge(settings, Runner(dry=True), plan, host_runs)
    assert {r.status for r in merged} == {"failed"}
    assert all(
        r.error.startswith("linux/arm64 on host b: host b: connection refused") for r in merged
    )


def test_an_image_whose_platforms_exclude_a_host_is_listed_without_it(
    settings: config.Settings,
    plan: buildplan.BuildPlan,
) -> None:
    names = plan.graph.order()
    left_out = ImageResult(
        "api", "skipped", error="skipped: linux/arm64 not in its platforms (linux/amd64)"
    )
    host_runs = runs(
        {
            "a": [pushed(n, AMD, "a") for n in names],
            "b": [left_out if n == "api" else pushed(n, ARM, "b") for n in names],
        }
    )
    merged = {r.name: r for r in fanout.merge(settings, Runner(dry=True), plan, host_runs)}
    assert merged["api"].status == "succeeded" and merged["api"].hosts == {AMD: "a"}


def test_hosts_that_reused_their_manifests_give_them_to_the_new_list(
    settings: config.Settings, plan: buildplan.BuildPlan, capsys: pytest.CaptureFixture[str]
) -> None:
    names = plan.graph.order()
    reused = [pushed(n, ARM, "b") for n in names]
    for r in reused:
        r.status = "cached"
    host_runs = runs({"a": [pushed(n, AMD, "a") for n in names], "b": reused})
    merged = {r.name: r for r in fanout.merge(settings, Runner(dry=True), plan, host_runs)}
    assert merged["api"].status == "succeeded"  # a host built it
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "/api@" in ln)
    assert f"api@sha256:{'b' * 64}" in line and f"api@sha256:{'a' * 64}" in line

    both = runs({"a": [r for r in reused], "b": reused})
    merged = {r.name: r for r in fanout.merge(settings, Runner(dry=True), plan, both)}
    assert merged["api"].status == "cached" and merged["api"].tagged is True

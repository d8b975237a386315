from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from buildkit_tasks.engines import docker
from buildkit_tasks.errors import CommandError
from buildkit_tasks.images import ImageBuild

LOST_SNAPSHOT = (
    "#12 exporting to image\n#12 exporting layers done\n"
    "#12 ERROR: failed to commit b0suw3 to omzkw5 during finalize: failed to stat active key "
    "during commit: snapshot b0suw3 does not exist: not found\n"
)
STEP_FAILED = '#7 ERROR: process "/bin/sh -c exit 3" did not complete successfully: exit code: 3\n'


def fake_run(push_retries: int = 3, stopping: bool = False) -> Any:
    """What ImageBuild.retrying reads of its ImageBuild."""
    return SimpleNamespace(
        settings=SimpleNamespace(push_retries=push_retries),
        notes={},
        runner=SimpleNamespace(stopping=stopping),
    )


def failing(calls: list[int], tail: str) -> Callable[[], str]:
    def action() -> str:
        calls.append(1)
        raise CommandError("failed", 1, tail)

    return action


def run_build(tmp_path: Path, tails: list[str]) -> tuple[Any, list[str], Path]:
    """ImageBuild.retrying of a build whose first tries fail with ``tails`` (then succeeds)."""
    run = fake_run()
    log = tmp_path / "worker.log"
    log.write_text("")
    tries: list[str] = []

    def action() -> str:
        tries.append("build")
        if len(tries) <= len(tails):
            raise CommandError("docker buildx build failed", 1, tails[len(tries) - 1])
        return "sha256:" + "1" * 64

    try:
        result = ImageBuild.retrying(run, "r/worker:1", False, log, action, build="worker")
    except CommandError:
        result = None
    return run, tries if result else [*tries, "raised"], log


def test_a_build_the_engine_failed_is_built_once_more_and_said(tmp_path: Path) -> None:
    run, tries, log = run_build(tmp_path, [LOST_SNAPSHOT])
    assert tries == ["build", "build"]
    assert "the engine failed its build" in run.notes["worker"]
    assert "failed to stat active key during commit" in run.notes["worker"]
    assert "built again" in log.read_text()


def test_only_once(tmp_path: Path) -> None:
    _, tries, _ = run_build(tmp_path, [LOST_SNAPSHOT, LOST_SNAPSHOT])
    assert tries == ["build", "build", "raised"]


def test_an_image_s_own_failure_is_not_built_again(tmp_path: Path) -> None:
    run, tries, _ = run_build(tmp_path, [STEP_FAILED])
    assert tries == ["build", "raised"]
    assert run.notes == {}


def test_pushes_and_copies_are_not_rebuilt_on_engine_errors(tmp_path: Path) -> None:
    calls: list[int] = []
    with pytest.raises(CommandError):
        ImageBuild.retrying(
            fake_run(0), "r/worker:1", False, tmp_path / "x.log", failing(calls, LOST_SNAPSHOT)
        )
    assert calls == [1]


def test_nothing_is_built_again_once_ctrl_c_stops_the_runner(tmp_path: Path) -> None:
    run, calls = fake_run(stopping=True), []
    canceled = failing(calls, "ERROR: failed to list workers: Canceled\n")
    with pytest.raises(CommandError):
        ImageBuild.retrying(run, "r/worker:1", True, tmp_path / "w.log", canceled, build="worker")
    assert calls == [1] and run.notes == {}


# -- close: aliases are kept listed, stale ones collected, even when a Ctrl-C comes --
class Interrupted:
    """A pool whose shutdown a Ctrl-C interrupts; a temp dir that cleans up."""

    def __init__(self, raise_in: str) -> None:
        self.raise_in = raise_in

    def shutdown(self, wait: bool, cancel_futures: bool) -> None:
        if self.raise_in == "shutdown":
            raise KeyboardInterrupt

    def cleanup(self) -> None:
        pass


PROJECT = "0123456789ab"


def run_with(raise_in: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A run of base -> api in project PROJECT that made base's alias, its kept lists in a
    cache of its own, on the local engine."""
    monkeypatch.setenv("BUILDKIT_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(docker, "remember_tags", lambda moved: None)
    run = ImageBuild.__new__(ImageBuild)
    run._pool = Interrupted(raise_in)  # type: ignore[assignment]
    run._tmp = Interrupted("")  # type: ignore[assignment]
    run.project, run.keys = PROJECT, {"base": "b" * 64, "api": "a" * 64}
    run.graph = SimpleNamespace(nodes=dict.fromkeys(["base", "api"]))
    run.runner = SimpleNamespace(dry=False)
    run.aliases = [run.alias("base")]
    run.built, run.moved = {}, {}
    run._ahead, run._early, run._stale, run._collecting = None, None, None, None
    return run


class CancelInterrupted:
    """A bake started ahead whose stopping a Ctrl-C interrupts."""

    def cancel(self) -> None:
        raise KeyboardInterrupt


@pytest.mark.parametrize("raise_in", ["stopping the bake", "shutdown", "nowhere"])
def test_a_run_keeps_its_aliases_listed_whatever_interrupts_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raise_in: str
) -> None:
    from buildkit_tasks import imagecache

    run = run_with(raise_in, tmp_path, monkeypatch)
    if raise_in == "stopping the bake":
        run._ahead = CancelInterrupted()
    if raise_in == "nowhere":
        run.close()
    else:
        with pytest.raises(KeyboardInterrupt):
            run.close()
    assert imagecache.kept_aliases(run._alias_scope()) == [run.alias("base")]


@pytest.mark.parametrize("removal", ["works", "fails"])
def test_a_run_that_built_removes_its_project_s_stale_aliases_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, removal: str
) -> None:
    """Kept from earlier runs: base's alias for an old input key (stale: removed), api's for
    its key now (kept), one of an image this graph does not hold and one of another project
    (neither touched). A failed removal leaves the stale alias listed for a later run."""
    from concurrent.futures import ThreadPoolExecutor

    from buildkit_tasks import imagecache

    removed: list[list[str]] = []

    def remove(refs: list[str]) -> None:
        removed.append(sorted(refs))
        if removal == "fails":
            raise RuntimeError("ctr went away")

    monkeypatch.setattr(docker, "remove_names", remove)
    run = run_with("nowhere", tmp_path, monkeypatch)
    run._pool = ThreadPoolExecutor(2)
    stale = docker.alias_reference(PROJECT, "base", "c" * 64)
    others = [
        run.alias("api"),
        docker.alias_reference(PROJECT, "gone", "d" * 64),
        docker.alias_reference("ba9876543210", "base", "e" * 64),
    ]
    imagecache.keep_aliases(run._alias_scope(), [stale, *others])
    run.built = {"base": "sha256:" + "f" * 64}
    run.collect_aliases()
    run.collect_aliases()  # once per run
    run.close()
    assert removed == [[stale]]
    left = sorted([*others, run.alias("base"), *([stale] if removal == "fails" else [])])
    assert imagecache.kept_aliases(run._alias_scope()) == left


def test_a_run_that_built_nothing_collects_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from buildkit_tasks import imagecache

    monkeypatch.setattr(docker, "remove_names", lambda refs: pytest.fail("removed {refs}"))
    run = run_with("nowhere", tmp_path, monkeypatch)
    stale = docker.alias_reference(PROJECT, "base", "c" * 64)
    imagecache.keep_aliases(run._alias_scope(), [stale])
    run.aliases = []
    run.close()
    assert imagecache.kept_aliases(run._alias_scope()) == [stale]


def test_alias_references_name_project_image_and_key() -> None:
    ref = docker.alias_reference(PROJECT, "service.40-processing-3.8", "0f" * 32)
    assert ref == f"localhost:1/buildkit-tasks/{PROJECT}/service.40-processing-3.8:{'0f' * 16}"
    assert docker.alias_parts(ref) == (PROJECT, "service.40-processing-3.8", "0f" * 16)
    assert docker.alias_parts("localhost:5000/platform/base:1") is None
    assert docker.alias_parts("localhost:1/buildkit-tasks/base:r1") is None  # no project


# -- a bake started ahead of the lookups, when a build is likely --
class FakeStarted:
    def __init__(self, log: Path, metadata: Path) -> None:
        self.log, self.metadata, self.canceled = log, metadata, False

    def cancel(self) -> None:
        self.canceled = True


def ahead_run(tmp_path: Path, new_keys: set[str], *, force: bool = False, dry: bool = False) -> Any:
    run = ImageBuild.__new__(ImageBuild)
    run.graph = SimpleNamespace(nodes=dict.fromkeys(["base", "api", "worker"]))
    run.settings = SimpleNamespace(logs_dir=tmp_path / "logs")
    run.runner = SimpleNamespace(dry=dry)
    run.force, run.new_keys, run.batch_count, run._ahead = force, new_keys, 0, None
    run._tmp = SimpleNamespace(name=str(tmp_path / "tmp"))
    return run


@pytest.mark.parametrize(
    ("new_keys", "force", "dry", "started"),
    [
        ({"base", "api"}, False, False, True),  # an edit: its image and a dependent
        ({"worker"}, False, False, False),  # one image: built alone, no bake
        (set(), True, False, True),  # --force: everything builds
        ({"base", "api"}, False, True, False),  # --dry starts nothing
    ],
)
def test_a_bake_is_started_ahead_when_two_images_are_likely_to_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    new_keys: set[str], force: bool, dry: bool, started: bool,
) -> None:  # fmt: skip
    monkeypatch.setattr(docker, "start_bake", lambda runner, log, meta: FakeStarted(log, meta))
    run = ahead_run(tmp_path, new_keys, force=force, dry=dry)
    run.bake_ahead()
    assert (run._ahead is not None) == started
    if started:  # under the first batch's log and metadata file, which bake() takes
        assert (run._ahead.log, run._ahead.metadata) == run._bake_files(1)
        assert run._ahead.log == tmp_path / "logs" / "bake.log" and run._ahead.log.parent.is_dir()


def test_a_bake_started_ahead_that_no_batch_took_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(docker, "start_bake", lambda runner, log, meta: FakeStarted(log, meta))
    run = ahead_run(tmp_path, {"base", "api"})
    run.bake_ahead()
    ahead = run._ahead
    run.drop_ahead()
    assert ahead.canceled and run._ahead is None
    run.drop_ahead()  # nothing left to stop


def test_the_registry_is_asked_about_new_keys_beside_the_local_lookup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from buildkit_tasks import cachekey

    asked: list[str] = []
    registry_asked = threading.Event()

    def remote_image(runner: object, ref: str) -> None:
        asked.append(ref)
        registry_asked.set()
        return None  # the registry holds nothing there

    def local_lookup() -> dict[str, docker.LocalImage]:
        # the local store answers only once the registry was asked (or after 5 s)
        seen_first = registry_asked.wait(5)
        held = docker.LocalImage("sha256:" + "a" * 64, ("r/api:1", "r/api:latest"), {})
        held.labels[cachekey.KEY_LABEL] = "k-api"
        return {"seen": seen_first, "r/api:1": held, "r/api:latest": held}  # type: ignore[dict-item]

    monkeypatch.setattr(docker, "remote_image", remote_image)
    run = ImageBuild.__new__(ImageBuild)
    run._pool = ThreadPoolExecutor(4)
    run._asked = None  # the registry asked by look_up itself
    run._local = run._pool.submit(local_lookup)
    run._ahead = None  # no bake waiting: no aliases made early
    run.force, run.push, run.atomic, run.tag, run.errors = False, False, False, True, {}
    run.runner = SimpleNamespace(dry=False)
    run.settings = SimpleNamespace(pull=True, registry="r")
    run.plan = SimpleNamespace(images={n: SimpleNamespace(push=True) for n in ("base", "api")})
    run.tags = {"base": ["r/base:1", "r/base:latest"], "api": ["r/api:1", "r/api:latest"]}
    run.keys, run.new_keys = {"base": "k-base", "api": "k-api"}, {"base"}
    index = run._local
    hits = run.look_up(["base", "api"])
    run._pool.shutdown()
    assert index.result()["seen"] is True  # asked before the local answer, not after it
    assert hits["base"] is None and hits["api"] is not None
    assert sorted(asked) == ["r/base:1", "r/base:latest"]  # api: found in the local store


def test_the_source_label_asks_git_once_per_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every image's request carries the origin remote as its source label; git is asked
    for it once per run, not once per image (a 164-image cold build spawned 164 gits)."""
    from buildkit_tasks import buildplan, images
    from buildkit_tasks.runner import Runner
    from tests.conftest import git
    from tests.unit.test_buildplan import make_project

    settings = make_project(tmp_path)
    git(tmp_path, "remote", "add", "origin", "https://example.invalid/acme.git")
    asked: list[Path] = []
    real = images.git_remote

    def counted(root: Path) -> str | None:
        asked.append(root)
        return real(root)

    monkeypatch.setattr(images, "git_remote", counted)
    monkeypatch.setattr(docker, "engine_platform", lambda: "linux/amd64")
    plan = buildplan.make(settings)
    run = ImageBuild(settings, plan, Runner(dry=True), push=False, platforms=(), force=True)
    try:
        labels = [run.request(n, {}).labels for n in plan.graph.nodes]
    finally:
        run.close()
    assert asked == [tmp_path]
    assert {lab["org.opencontainers.image.source"] for lab in labels} == {
        "https://example.invalid/acme.git"
    }
    assert len(labels) == 3


@pytest.mark.parametrize("kept", [False, True])
def test_a_waiting_bake_s_bases_get_their_aliases_while_the_registry_is_asked(
    monkeypatch: pytest.MonkeyPatch, kept: bool
) -> None:
    """An edit with a bake started ahead: the local store has the base, not its two edited
    dependents; the base's alias is either seen by the lookup (an earlier run left it
    naming the base: no call makes it) or made while the registry is still asked about the
    dependents (the registry answers only once that call came, or after 5 s), and the
    batch's make_sources makes none again."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from buildkit_tasks import cachekey
    from buildkit_tasks.images import CacheHit

    aliased = threading.Event()
    made: list[list[str]] = []
    registry_waited: list[bool] = []

    def add_names(wanted: dict[str, tuple[str, tuple[str, ...]]]) -> None:
        made.append(sorted(wanted))
        aliased.set()

    def remote_image(runner: object, ref: str) -> None:
        registry_waited.append(aliased.wait(5))
        return None

    alias = docker.alias_reference(PROJECT, "base", "k-base")
    seen = (alias,) if kept else ()
    base = docker.LocalImage("sha256:" + "b" * 64, ("r/base:1", "r/base:latest"), {}, 0, seen)
    base.labels[cachekey.KEY_LABEL] = "k-base"
    if kept:
        aliased.set()
    monkeypatch.setattr(docker, "add_names", add_names)
    monkeypatch.setattr(docker, "remote_image", remote_image)
    run = ImageBuild.__new__(ImageBuild)
    run._pool = ThreadPoolExecutor(4)
    run._asked = None  # the registry asked by look_up itself
    run._local = run._pool.submit(lambda: {"r/base:1": base, "r/base:latest": base})
    run._ahead, run._early, run._lock = object(), None, threading.Lock()
    run.force, run.push, run.atomic, run.tag, run.errors = False, False, False, True, {}
    run.runner = SimpleNamespace(dry=False)
    run.settings = SimpleNamespace(pull=True, registry="r")
    names = ("base", "api", "worker")
    run.plan = SimpleNamespace(images={n: SimpleNamespace(push=True) for n in names})
    run.tags = {n: [f"r/{n}:1", f"r/{n}:latest"] for n in names}
    run.keys = {n: f"k-{n}" for n in names}
    run.new_keys = {"api", "worker"}
    run.project, run.aliases, run.sources = PROJECT, [], {}
    run.graph = SimpleNamespace(
        nodes={
            "base": SimpleNamespace(local_refs={}),
            "api": SimpleNamespace(local_refs={"r/base:1": "base"}),
            "worker": SimpleNamespace(local_refs={"r/base:latest": "base"}),
        }
    )
    run.hits = run.look_up(names)
    assert run.hits["base"] == CacheHit(base.image_id, base.tags, base.image_id, aliases=seen)
    assert run.hits["api"] is None and run.hits["worker"] is None
    assert registry_waited == [True] * 4  # each of api's and worker's two tags, after the alias
    run.make_sources(["base"])
    run._pool.shutdown()
    assert made == ([] if kept else [[alias]]) and run.aliases == [alias]
    assert run.sources == {"base": f"docker-image://{alias}"}


def test_an_interrupted_run_keeps_aliases_still_being_made_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while the aliases made beside the registry lookups are still being made: the
    end of the run waits for them (the pool is not waited for) and keeps them listed too,
    for a later run to collect once their keys are gone; it removes nothing itself."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from buildkit_tasks import imagecache

    monkeypatch.setattr(docker, "remove_names", lambda refs: pytest.fail(f"removed {refs}"))
    run = run_with("nowhere", tmp_path, monkeypatch)
    run.built = {"base": "sha256:" + "f" * 64}
    late = run.alias("api")
    go = threading.Event()

    def making() -> None:
        go.wait(5)
        time.sleep(0.2)
        run.aliases.append(late)

    with ThreadPoolExecutor(1) as own:
        run._early = own.submit(making)
        go.set()
        run.close(interrupted=True)
    assert imagecache.kept_aliases(run._alias_scope()) == sorted([run.alias("base"), late])

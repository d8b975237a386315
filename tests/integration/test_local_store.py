"""Which image each tag names, read from the engine's containerd (engines/containerd.py) with
labels kept by image ID (imagecache.py), against what the real engine itself lists: the same
answers, tags moved or removed behind our back seen at once, and a containerd that is not the
engine's (a second dockerd's) caught by the one image the engine confirms."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from buildkit_tasks import imagecache
from buildkit_tasks.engines import containerd
from buildkit_tasks.engines import docker as engine

from . import engines
from .conftest import REPO, Project, docker, require

pytestmark = pytest.mark.integration

KEY = "dev.buildkit-tasks.input-key"
View = dict[str, tuple[str, str, tuple[str, ...]]]
LISTED = engine._listed  # the engine's own list (the fixture below spies on it)


def _build(ctx: Path, busybox: dict[str, Path], key: str, tags: list[str],
           run: Callable[..., object] = docker) -> None:  # fmt: skip
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "busybox").write_bytes(busybox["amd64"].read_bytes())
    (ctx / "Dockerfile").write_text(f"FROM scratch\nCOPY busybox /bin/busybox\nLABEL seed={key}\n")
    argv = ["buildx", "build", "--platform", "linux/amd64", "--label", f"{KEY}={key}"]
    run(*argv, *(x for t in tags for x in ("--tag", t)), str(ctx))


def _view(index: dict[str, engine.LocalImage], refs: list[str]) -> View:
    out: View = {}
    for ref in refs:
        found = engine.find_local(index, ref)
        if found is not None:
            out[ref] = (found.image_id, found.labels.get(KEY, ""), tuple(sorted(found.tags)))
    return out


@pytest.fixture
def lookups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[str]]]:
    """A fresh label cache and agreement; yields the reference lists the engine was asked."""
    monkeypatch.setenv("BUILDKIT_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(engine, "_containerd_agrees", {})
    asked: list[list[str]] = []

    def spy(refs: list[str], label: str, remember: bool) -> dict[str, engine.LocalImage]:
        asked.append(list(refs))
        return LISTED(refs, label, remember)

    monkeypatch.setattr(engine, "_listed", spy)
    yield asked


def test_containerd_names_the_images_the_engine_lists(
    docker_engine: None,
    busybox: dict[str, Path],
    tmp_path: Path,
    lookups: list[list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require(containerd.engine_socket() is not None, "the engine's containerd socket and ctr")
    run = uuid.uuid4().hex[:8]
    p = f"127.0.0.1:5000/lookup-{run}"  # never pushed
    a = [f"{p}/a.b-c:0.9.0", f"{p}/a.b-c:latest", f"lookup-{run}-short:1"]
    b = [f"{p}/b:1"]
    refs = [*a, *b, f"{p}/gone:1"]
    try:
        _build(tmp_path / "a", busybox, f"ka-{run}", a)
        _build(tmp_path / "b", busybox, f"kb-{run}", b)

        def truth() -> View:
            return _view(LISTED(refs, KEY, False), refs)

        first = _view(engine.local_images(refs, label=KEY), refs)
        assert first == truth() and set(first) == set(a + b)
        assert first[a[0]][1] == f"ka-{run}" and first[b[0]][1] == f"kb-{run}"
        assert first[a[0]][0] != first[b[0]][0]
        lookups.clear()
        assert _view(engine.local_images(refs, label=KEY), refs) == first
        assert lookups == [[]]  # containerd alone: every label kept, the engine agreed
        # and a new process asks the engine nothing either: this engine run agreed before
        address = containerd.engine_socket()
        assert address is not None
        instance = containerd.engine_instance(address)
        assert instance is not None and imagecache.confirmed_store(instance)
        monkeypatch.setattr(engine, "_containerd_agrees", {})
        assert _view(engine.local_images(refs, label=KEY), refs) == first
        assert lookups == [[], []]

        docker("tag", b[0], a[0])  # moved behind our back: seen at once, nothing asked
        moved = _view(engine.local_images(refs, label=KEY), refs)
        assert moved[a[0]][:2] == first[b[0]][:2]  # b's image and input key
        assert moved[a[1]][:2] == first[a[1]][:2]  # latest still names a
        assert lookups[-1] == []
        assert moved == truth()

        docker("rmi", b[0])  # removed: gone at once
        gone = _view(engine.local_images(refs, label=KEY), refs)
        assert b[0] not in gone and gone == truth() and lookups[-1] == []
    finally:
        docker("rmi", "--force", *a, *b, check=False)


def test_guessed_targets_are_confirmed_by_containerd_not_trusted(
    docker_engine: None, busybox: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = containerd.engine_socket()
    require(address is not None, "the engine's containerd socket and ctr")
    assert address is not None
    run = uuid.uuid4().hex[:8]
    p = f"127.0.0.1:5000/guess-{run}"  # never pushed
    a, b = [f"{p}/a:1", f"{p}/a:latest"], [f"{p}/b:1"]
    names = [*a, *b, f"{p}/gone:1"]
    calls: list[list[str]] = []
    real = containerd._run
    monkeypatch.setattr(
        containerd, "_run", lambda argv, parse: calls.append(argv) or real(argv, parse)
    )
    try:
        _build(tmp_path / "a", busybox, f"ka-{run}", a)
        _build(tmp_path / "b", busybox, f"kb-{run}", b)
        truth = containerd.targets(address, names)
        assert truth is not None and set(truth) == {*a, *b}
        assert truth[a[0]] != truth[b[0]]
        calls.clear()
        # all guessed right: one quiet call, no listing (which reads every manifest)
        assert containerd.targets(address, names, truth) == truth
        assert len(calls) == 1 and "--quiet" in calls[0]
        calls.clear()
        # wrong, stale and made-up guesses: only those names listed, the answer the truth
        wrong = {a[0]: truth[b[0]], b[0]: truth[a[0]], f"{p}/gone:1": truth[a[0]]}
        assert containerd.targets(address, names, {**truth, **wrong}) == truth
        assert len(calls) == 2 and "--quiet" not in calls[1]
        assert sorted(calls[1][calls[1].index("list") + 1 :]) == sorted(f"name=={n}" for n in wrong)
    finally:
        docker("rmi", "--force", *a, *b, check=False)


def test_aliases_are_made_and_removed_through_containerd(
    docker_engine: None,
    busybox: dict[str, Path],
    tmp_path: Path,
    lookups: list[list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Run aliases (the names a bake's named contexts use) by ``ctr`` once a lookup found
    containerd to be the engine's store, each confirmed; one that names another image than
    asked (its tag moved) is made by the engine by image ID."""
    require(containerd.engine_socket() is not None, "the engine's containerd socket and ctr")
    run = uuid.uuid4().hex[:8]
    p = f"127.0.0.1:5000/alias-{run}"
    a, b = [f"{p}/a:1", f"{p}/a:latest"], [f"{p}/b:1"]
    alias_a, alias_b = f"{engine.ALIAS_REGISTRY}/a:{run}", f"{engine.ALIAS_REGISTRY}/b:{run}"
    by_engine: list[tuple[str, str]] = []
    real_tag, real_untag = engine.tag, engine.untag
    monkeypatch.setattr(engine, "tag", lambda s, t: by_engine.append((s, t)) or real_tag(s, t))
    monkeypatch.setattr(engine, "untag", lambda r: by_engine.append(("untag", r)) or real_untag(r))
    try:
        _build(tmp_path / "a", busybox, f"ka-{run}", a)
        _build(tmp_path / "b", busybox, f"kb-{run}", b)
        found = engine.local_images([*a, *b], label=KEY)
        id_a, id_b = found[a[0]].image_id, found[b[0]].image_id
        assert engine._containerd_agrees == {(): True}
        # alias_b asked for b's image from a's tags: containerd's copy names a, not confirmed
        engine.add_names({alias_a: (id_a, tuple(a)), alias_b: (id_b, tuple(a))})
        assert by_engine == [(id_b, alias_b)]
        now = LISTED([alias_a, alias_b], KEY, False)
        assert now[alias_a].image_id == id_a and now[alias_b].image_id == id_b
        by_engine.clear()
        engine.remove_names([alias_a, alias_b, f"{engine.ALIAS_REGISTRY}/never:{run}"])
        assert by_engine == [] and LISTED([alias_a, alias_b], KEY, False) == {}
        assert LISTED(a, KEY, False)[a[0]].image_id == id_a  # the image keeps its own tags
    finally:
        docker("rmi", "--force", *a, *b, alias_a, alias_b, check=False)


def test_an_earlier_runs_alias_is_seen_by_the_lookup_in_its_one_ctr_call(
    docker_engine: None,
    busybox: dict[str, Path],
    tmp_path: Path,
    lookups: list[list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The alias an earlier run left (named by project, image and input key) is seen by the
    local lookup in the same quiet ``ctr`` call as the tags, and only while it names the
    image its tag names."""
    require(containerd.engine_socket() is not None, "the engine's containerd socket and ctr")
    run = uuid.uuid4().hex[:12]
    p = f"127.0.0.1:5000/alias-{run}"
    a, b = [f"{p}/a:1"], [f"{p}/b:1"]
    alias_a = engine.alias_reference(run, "a", f"ka-{run}")
    calls: list[list[str]] = []
    real_run = containerd._run

    def counted(argv: list[str], parse: Callable[[str], object]) -> object:
        calls.append(argv)
        return real_run(argv, parse)

    monkeypatch.setattr(containerd, "_run", counted)

    def alias(ref: str, key: str) -> str | None:
        return engine.alias_reference(run, "a", key) if ref in a else None

    try:
        _build(tmp_path / "a", busybox, f"ka-{run}", a)
        _build(tmp_path / "b", busybox, f"kb-{run}", b)
        first = engine.local_images(a, label=KEY, alias=alias)  # guesses and labels kept
        id_a = first[a[0]].image_id
        assert first[a[0]].aliases == ()
        engine.add_names({alias_a: (id_a, tuple(a))})
        calls.clear()
        again = engine.local_images(a, label=KEY, alias=alias)
        assert again[a[0]].aliases == (alias_a,) and again[a[0]].tags == tuple(a)
        assert len(calls) == 1 and "--quiet" in calls[0], calls
        docker("tag", b[0], alias_a)  # the alias moved to another image: not a's any more
        assert engine.local_images(a, label=KEY, alias=alias)[a[0]].aliases == ()
    finally:
        docker("rmi", "--force", *a, *b, alias_a, check=False)


def test_a_containerd_that_is_not_the_engines_is_caught(
    docker_engine: None,
    second_engine: engines.Engine,
    busybox: dict[str, Path],
    tmp_path: Path,
    lookups: list[list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sock = second_engine.root / "exec" / "containerd" / "containerd.sock"
    require(sock.is_socket(), f"the second engine's containerd socket {sock}")
    ref = f"127.0.0.1:5000/lookup-{uuid.uuid4().hex[:8]}/a:1"
    try:
        _build(tmp_path / "first", busybox, "first", [ref])
        _build(tmp_path / "second", busybox, "second", [ref], second_engine.docker)
        with engine.engine_at({"DOCKER_HOST": second_engine.host}):  # keeps its labels
            theirs = engine.local_images([ref], label=KEY)[ref]
        assert theirs.labels[KEY] == "second"
        name = containerd.store_name(ref)
        assert name is not None
        assert containerd.targets(str(sock), [name]) == {name: theirs.image_id}

        monkeypatch.setattr(containerd, "SOCKETS", (str(sock),))  # the wrong containerd
        lookups.clear()
        got = engine.local_images([ref], label=KEY)[ref]
        assert got.labels[KEY] == "first" and got.image_id != theirs.image_id
        assert engine._containerd_agrees == {(): False}
        assert lookups == [[ref], [ref]]  # the confirmation, then the whole list
    finally:
        docker("rmi", "--force", ref, check=False)


@pytest.mark.parametrize("batch", ["--batch", "--no-batch"])
def test_a_build_keeps_the_input_key_of_each_image_it_made(
    project: Project, tmp_path: Path, batch: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    require(containerd.engine_socket() is not None, "the engine's containerd socket and ctr")
    cache = tmp_path / "bk-cache"
    env = {"BUILDKIT_CACHE_HOME": str(cache)}
    project.inv("image.build", batch, env=env)
    images = project.report()["images"]
    assert images and all(i["status"] == "succeeded" for i in images)
    monkeypatch.setenv("BUILDKIT_CACHE_HOME", str(cache))
    for image in images:  # the engine's own ID for the tag: what the build kept
        ref = image["references"][0]
        engine_id = docker("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()
        assert image["image_id"] == engine_id
        assert imagecache.recall(engine_id, KEY) == (True, image["key"])

    # so the next run asks the engine about no image (the first run found this engine run
    # reporting containerd's image IDs): one quiet containerd call confirms every tag
    res = project.inv("image.build", env=env)
    assert all(i["status"] == "cached" for i in project.report()["images"]), res.stdout
    counted = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "count_calls.py"), "image.build"],
        cwd=project.path, capture_output=True, text=True, env={**os.environ, **env},
    )  # fmt: skip
    calls = json.loads(counted.stderr.strip().splitlines()[-1].removeprefix("calls "))
    assert calls["ctr"] == 1 and calls["image_lists"] == 0 and calls["docker"] == 0
    assert calls["api"] == 0, calls
    # nor does it load the docker SDK: the context listings are remembered, and the engine's
    # platform is kept for this engine run (nor is any API request made: counted below)
    loaded = subprocess.run(
        [sys.executable, "-c", NO_SDK_RUN], cwd=project.path, capture_output=True, text=True,
        env={**os.environ, **env},
    )  # fmt: skip
    assert loaded.stdout.splitlines()[-1] == "docker SDK loaded: False", loaded
    assert all(i["status"] == "cached" for i in project.report()["images"])


def _counted_build(project: Project, env: dict[str, str], *args: str) -> dict[str, int]:
    """``inv image.build ARGS`` through benchmarks/count_calls.py: what it asked the engine."""
    counted = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "count_calls.py"), "image.build", *args],
        cwd=project.path, capture_output=True, text=True, env={**os.environ, **env},
    )  # fmt: skip
    assert counted.returncode == 0, counted.stderr[-2000:]
    return json.loads(counted.stderr.strip().splitlines()[-1].removeprefix("calls "))


GRACE = 60.0  # stop_grace of the bake-ahead test: a stopped bake waiting it out fails it


def _bakes_running() -> list[str]:
    ps = subprocess.run(["pgrep", "-af", "buildx bake --file -"], capture_output=True, text=True)
    return ps.stdout.splitlines()


def test_a_bake_started_ahead_builds_an_edit_or_is_stopped(
    project: Project, tmp_path: Path
) -> None:
    require(containerd.engine_socket() is not None, "the engine's containerd socket and ctr")
    # a bake stopped unused must not wait out stop_grace (bake ignores SIGTERM on its stdin)
    pyproject = project.path / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            "[tool.buildkit]\n", f"[tool.buildkit]\nstop_grace = {GRACE:g}\n", 1
        )
    )
    home = {"BUILDKIT_CACHE_HOME": str(tmp_path / "cache")}
    project.inv("image.build", env=home)  # every key new here: the bake started ahead builds
    assert all(i["status"] == "succeeded" for i in project.report()["images"])
    log = project.path / "dist" / "logs" / "bake.log"
    assert log.read_text().count("load local bake definitions") == 1

    # an edit of the base: its key and its dependents' are new; the bake started ahead builds
    # them, and the bake log (and each image's) holds that build only
    dockerfile = project.path / "images" / "base" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "# edited\n")
    project.inv("image.build", env=home)
    status = {i["name"]: i["status"] for i in project.report()["images"]}
    assert status == {"base": "succeeded", "api": "succeeded", "worker": "succeeded"}
    assert log.read_text().count("load local bake definitions") == 1
    own = (project.path / "dist" / "logs" / "api.log").read_text()
    # this bake's steps of api only (a step api and worker share may carry either's name):
    # one step loads its Dockerfile (plain progress prints a step's header again when its
    # output resumes after another step's, so the step is counted by its number)
    assert own.startswith("# steps of api from bake.log") and own.count("# steps of") == 1
    loads = {ln.split()[0] for ln in own.splitlines() if "[api internal] load build def" in ln}
    assert len(loads) == 1, own

    # nothing changed: no bake starts, and the last run's bake.log stays as it was
    edit_log = log.read_text()
    project.inv("image.build", env=home)
    assert all(i["status"] == "cached" for i in project.report()["images"])
    assert log.read_text() == edit_log and not _bakes_running()
    assert sorted(p.name for p in log.parent.glob("*bake*")) == ["bake.log"]

    # another machine's cache: every key is new there, yet every image is found cached; the
    # bake started ahead is killed before it read a definition (it only dialed the engine):
    # one docker command more than the same run without batches (which starts none), and
    # none left running
    began = time.monotonic()
    with_batch = _counted_build(project, {"BUILDKIT_CACHE_HOME": str(tmp_path / "other")})
    assert time.monotonic() - began < GRACE  # killed at once, not after SIGTERM's grace
    assert all(i["status"] == "cached" for i in project.report()["images"])
    assert not _bakes_running()
    without = _counted_build(
        project, {"BUILDKIT_CACHE_HOME": str(tmp_path / "third")}, "--no-batch"
    )
    assert with_batch["docker"] == without["docker"] + 1, (with_batch, without)
    assert with_batch["api"] == without["api"] and with_batch["ctr"] == without["ctr"]


NO_SDK_RUN = """
import sys
from invoke.main import program
try:
    program.run(["inv", "image.build"])
except SystemExit as exc:
    assert not exc.code, exc.code
print("docker SDK loaded:", "docker" in sys.modules)
"""

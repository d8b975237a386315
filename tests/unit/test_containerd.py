"""engines/containerd.py, imagecache.py and the containerd path of docker.local_images, with
fake answers (the real engine's answers: tests/integration/test_local_store.py)."""

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from buildkit_tasks import imagecache
from buildkit_tasks.engines import containerd, docker

KEY = "dev.buildkit-tasks.input-key"
A, B, C = ("sha256:" + c * 64 for c in "abc")

# what ctr 1.7 prints (SIZE holds a space; PLATFORMS a comma list; columns padded)
MEDIA = "application/vnd.oci.image.index.v1+json"
LISTING = "\n".join([
    "REF" + " " * 40 + "TYPE" + " " * 36 + "DIGEST" + " " * 66 + "SIZE     PLATFORMS     LABELS ",
    f"127.0.0.1:5000/acme/api:2.3.0   {MEDIA} {{A}} 1.0 MiB  linux/amd64,linux/arm64 -      ",
    f"docker.io/library/base-python-cpu-3.10:latest {MEDIA} {{B}} 12.5 KiB linux/amd64 -  ",
    "",
])  # fmt: skip


def test_the_listing_is_read_name_to_target() -> None:
    got = containerd.parse_list(LISTING.format(A=A, B=B))
    assert got == {
        "127.0.0.1:5000/acme/api:2.3.0": A,
        "docker.io/library/base-python-cpu-3.10:latest": B,
    }
    assert containerd.parse_list(LISTING.splitlines()[0] + "\n") == {}
    with pytest.raises(ValueError, match="unexpected ctr images list line"):
        containerd.parse_list("REF TYPE DIGEST\nx y notadigest 1 KiB\n")


def test_names_are_what_containerd_keeps() -> None:
    assert containerd.store_name("api:1") == "docker.io/library/api:1"
    assert containerd.store_name("acme/api") == "docker.io/acme/api:latest"
    assert containerd.store_name("127.0.0.1:5000/p/x.y:0.9") == "127.0.0.1:5000/p/x.y:0.9"
    assert containerd.store_name(f"127.0.0.1:5000/p/x@{A}") is None  # a digest is no name
    assert containerd.store_name("Upper/Case:1") is None
    argv = containerd.list_argv("/run/c.sock", ["a:1", "b:2"])
    assert argv == ["ctr", "--address", "/run/c.sock", "--namespace", "moby", "images", "list",
                    "name==a:1", "name==b:2"]  # fmt: skip


def test_only_the_default_local_engine_is_read_through_containerd() -> None:
    assert containerd.local_engine({})
    assert containerd.local_engine({"DOCKER_HOST": "unix:///var/run/docker.sock"})
    assert containerd.local_engine({"DOCKER_CONTEXT": "default"})
    assert not containerd.local_engine({"DOCKER_HOST": "unix:///tmp/e2/docker.sock"})
    assert not containerd.local_engine({"DOCKER_HOST": "ssh://bk@127.0.0.2"})
    assert not containerd.local_engine({"DOCKER_CONTEXT": "remote"})


def _listen(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    return s


def test_the_engine_socket_is_the_one_containerd_alive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(containerd.shutil, "which", lambda name: f"/usr/bin/{name}")
    one, two, plain = tmp_path / "one.sock", tmp_path / "two.sock", tmp_path / "plain"
    plain.write_text("")
    s1 = _listen(one)
    try:
        assert containerd.engine_socket([str(tmp_path / "gone.sock"), str(one)]) == str(one)
        assert containerd.engine_socket([str(plain)]) is None  # not a socket
        (tmp_path / "link.sock").symlink_to(one)  # the same socket twice is one
        assert containerd.engine_socket([str(one), str(tmp_path / "link.sock")]) == str(one)
        s2 = _listen(two)
        try:  # two containerds: which one is the engine's cannot be told
            assert containerd.engine_socket([str(one), str(two)]) is None
        finally:
            s2.close()
        monkeypatch.setattr(containerd.shutil, "which", lambda name: None)
        assert containerd.engine_socket([str(one)]) is None  # no ctr
    finally:
        s1.close()


def test_an_images_label_is_kept_by_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUILDKIT_CACHE_HOME", str(tmp_path))
    assert imagecache.recall(A, KEY) == (False, None)
    imagecache.remember(A, KEY, "k1")
    assert imagecache.recall(A, KEY) == (True, "k1")
    imagecache.remember(A, KEY, "other")  # an ID's labels never change: kept as first known
    assert imagecache.recall(A, KEY) == (True, "k1")
    assert imagecache.recall(A, "other.label") == (False, None)  # never asked about
    imagecache.remember(B, KEY, None)  # known to carry none
    assert imagecache.recall(B, KEY) == (True, None)
    imagecache.remember("not-an-id", KEY, "k")
    assert imagecache.recall("not-an-id", KEY) == (False, None)
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == [
        f"{'a' * 64}.json",
        f"{'b' * 64}.json",
    ]
    (tmp_path / "images" / f"{'b' * 64}.json").write_text('{"id": "sha256:' + "b" * 63)
    assert imagecache.recall(B, KEY) == (False, None)  # cut off: asked again
    (tmp_path / "images" / f"{'c' * 64}.json").write_text(
        f'{{"id": "{A}", "label": "{KEY}", "value": "k1"}}'
    )
    assert imagecache.recall(C, KEY) == (False, None)  # a file under another ID's name


class FakeEngine:
    """The engine's image list: ``tags`` maps ``repository:tag`` -> (ID, labels)."""

    def __init__(self, tags: dict[str, tuple[str, dict[str, str]]]) -> None:
        self.tags, self.asked = tags, []  # type: ignore[var-annotated]
        self.api = self

    def images(self, filters: dict[str, list[str]]) -> list[dict[str, object]]:
        refs = filters["reference"]
        self.asked.extend(refs)
        by_id: dict[str, list[str]] = {}
        for ref in refs:
            if ref in self.tags:
                by_id.setdefault(self.tags[ref][0], []).append(ref)
        return [
            {"Id": i, "RepoTags": t, "Labels": {**self.tags[t[0]][1], "other": "x"}, "Size": 1}
            for i, t in by_id.items()
        ]


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """containerd's names -> targets, read by a fake ``ctr``; a fresh label cache."""
    monkeypatch.setenv("BUILDKIT_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.setattr(docker, "_containerd_agrees", {})
    held: dict[str, str] = {}
    monkeypatch.setattr(containerd, "engine_socket", lambda: "/fake/containerd.sock")
    monkeypatch.setattr(
        containerd,
        "targets",
        lambda address, names, guesses=None, also=None: {n: held[n] for n in names if n in held},
    )
    return held


def test_labels_once_listed_are_not_asked_again(
    store: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    R = "127.0.0.1:5000/p/"
    N = "sha256:" + "d" * 64
    engine = FakeEngine({
        f"{R}a:1": (A, {KEY: "ka"}), f"{R}a:latest": (A, {KEY: "ka"}), f"{R}b:1": (B, {KEY: "kb"}),
        f"{R}n:1": (N, {}),  # not ours: no input key
    })  # fmt: skip
    monkeypatch.setattr(docker, "client", lambda: engine)
    store.update({f"{R}a:1": A, f"{R}a:latest": A, f"{R}b:1": B, f"{R}n:1": N})
    refs = [f"{R}a:1", f"{R}a:latest", f"{R}b:1", f"{R}n:1", f"{R}gone:1"]

    first = docker.local_images(refs, label=KEY)
    assert sorted(engine.asked) == sorted(refs[:4])  # nothing kept yet: the engine lists
    assert docker._containerd_agrees == {(): True}
    assert first[f"{R}a:1"].labels == {KEY: "ka"}  # only the label asked about
    assert first[f"{R}n:1"].labels == {}
    engine.asked.clear()
    second = docker.local_images(refs, label=KEY)
    assert engine.asked == []  # every label kept, agreement known: containerd alone
    assert second == first
    assert second[f"{R}a:1"].tags == (f"{R}a:1", f"{R}a:latest")  # as the engine lists them
    assert f"{R}gone:1" not in second

    # a tag moved behind our back: containerd names the new image, whose labels are kept
    store[f"{R}a:1"] = B
    engine.tags[f"{R}a:1"] = (B, {KEY: "kb"})
    third = docker.local_images(refs, label=KEY)
    assert engine.asked == []
    assert third[f"{R}a:1"].image_id == B and third[f"{R}a:1"].labels[KEY] == "kb"
    assert third[f"{R}a:latest"].image_id == A

    # a new image: the engine is asked about it, with every tag naming it
    store.update({f"{R}a:1": C, f"{R}a:latest": C})
    engine.tags.update({f"{R}a:1": (C, {KEY: "kc"}), f"{R}a:latest": (C, {KEY: "kc"})})
    fourth = docker.local_images(refs, label=KEY)
    assert sorted(engine.asked) == [f"{R}a:1", f"{R}a:latest"]
    assert fourth[f"{R}a:1"].labels[KEY] == "kc" and fourth[f"{R}b:1"].image_id == B


def test_a_containerd_that_disagrees_with_the_engine_is_not_used_again(
    store: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = FakeEngine({"r/a:1": (A, {KEY: "ka"}), "r/b:1": (B, {KEY: "kb"})})
    monkeypatch.setattr(docker, "client", lambda: engine)
    imagecache.remember(C, KEY, "stale")
    store.update({"docker.io/r/a:1": C, "docker.io/r/b:1": B})  # another store's a:1
    got = docker.local_images(["r/a:1", "r/b:1"], label=KEY)
    assert got["r/a:1"].image_id == A and got["r/a:1"].labels == {KEY: "ka"}  # the engine's
    assert docker._containerd_agrees == {(): False}
    calls: list[object] = []
    monkeypatch.setattr(containerd, "targets", lambda *a: calls.append(a))
    assert docker.local_images(["r/a:1"], label=KEY)["r/a:1"].image_id == A
    assert calls == []  # containerd is not asked again in this process


def test_dry_runs_keep_no_labels(store: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    engine = FakeEngine({"r/a:1": (A, {KEY: "ka"})})
    monkeypatch.setattr(docker, "client", lambda: engine)
    store["docker.io/r/a:1"] = A
    assert docker.local_images(["r/a:1"], label=KEY, remember=False)["r/a:1"].labels == {KEY: "ka"}
    assert imagecache.recall(A, KEY) == (False, None)


def test_other_engines_are_listed_by_the_engine(
    store: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = FakeEngine({"r/a:1": (A, {KEY: "ka"})})
    monkeypatch.setattr(docker, "client", lambda: engine)
    store["docker.io/r/a:1"] = A
    imagecache.remember(A, KEY, "ka")
    monkeypatch.setenv("DOCKER_HOST", "unix:///tmp/e2/docker.sock")
    docker.local_images(["r/a:1"], label=KEY)
    assert engine.asked == ["r/a:1"] and docker._containerd_agrees == {}


def test_an_engine_run_that_agreed_once_is_not_asked_again(
    store: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the engine keeps its images in cannot change while it runs: the check that it
    reports containerd's image IDs is made once per engine run (kept in the cache), not once
    per process; another run of the engine is checked again."""
    engine = FakeEngine({"r/a:1": (A, {KEY: "ka"}), "r/b:1": (B, {KEY: "kb"})})
    monkeypatch.setattr(docker, "client", lambda: engine)
    store.update({"docker.io/r/a:1": A, "docker.io/r/b:1": B})
    instance = ["/fake/containerd.sock\n4242\n1000\nboot"]
    monkeypatch.setattr(containerd, "engine_instance", lambda address: instance[0])
    docker.local_images(["r/a:1", "r/b:1"], label=KEY)
    assert engine.asked  # labels unknown, agreement unknown
    engine.asked.clear()
    monkeypatch.setattr(docker, "_containerd_agrees", {})  # a new process
    assert docker.local_images(["r/a:1", "r/b:1"], label=KEY)["r/a:1"].image_id == A
    assert engine.asked == []  # labels kept, agreement kept for this engine run
    instance[0] = "/fake/containerd.sock\n4343\n2000\nboot"  # the engine was restarted
    monkeypatch.setattr(docker, "_containerd_agrees", {})
    docker.local_images(["r/a:1", "r/b:1"], label=KEY)
    assert len(engine.asked) == 1  # one image asked, to confirm the agreement anew


def test_a_disagreeing_engine_run_is_not_kept_as_agreeing(
    store: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = FakeEngine({"r/a:1": (A, {KEY: "ka"})})
    monkeypatch.setattr(docker, "client", lambda: engine)
    monkeypatch.setattr(containerd, "engine_instance", lambda address: "run-1")
    store.update({"docker.io/r/a:1": C})  # another store's a:1
    docker.local_images(["r/a:1"], label=KEY)
    assert docker._containerd_agrees == {(): False}
    assert not imagecache.confirmed_store("run-1")


def test_an_engine_run_is_named_only_for_a_dockerd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "docker.pid"
    monkeypatch.setattr(containerd, "PID_FILE", str(pid_file))
    assert containerd.engine_instance("/c.sock") is None  # no pid file
    pid_file.write_text(f"{os.getpid()}\n")
    assert containerd.engine_instance("/c.sock") is None  # this process is no dockerd
    pid_file.write_text("not a pid\n")
    assert containerd.engine_instance("/c.sock") is None


def test_tags_a_build_moved_are_the_next_guesses(
    store: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    guessed: list[dict[str, str]] = []
    monkeypatch.setattr(
        containerd,
        "targets",
        lambda address, names, guesses=None, also=None: (
            guessed.append(dict(guesses or {})) or {n: store[n] for n in names if n in store}
        ),
    )
    engine = FakeEngine({"r/a:1": (A, {KEY: "ka"}), "r/b:1": (B, {KEY: "kb"})})
    monkeypatch.setattr(docker, "client", lambda: engine)
    store.update({"docker.io/r/a:1": A, "docker.io/r/b:1": B})
    docker.local_images(["r/a:1", "r/b:1"], label=KEY)
    store["docker.io/r/a:1"] = C  # a build made r/a:1 name C
    docker.remember_tags({"r/a:1": C, "other/x:1": C})  # other/x was not asked about
    docker.local_images(["r/a:1", "r/b:1"], label=KEY)
    assert guessed[-1] == {"docker.io/r/a:1": C, "docker.io/r/b:1": B}


def test_names_go_through_the_engine_until_containerd_is_known_to_be_its_store(
    store: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    by_engine: list[tuple[str, ...]] = []
    by_ctr: list[tuple[str, ...]] = []
    monkeypatch.setattr(docker, "tag", lambda s, t: by_engine.append(("tag", s, t)))
    monkeypatch.setattr(docker, "untag", lambda r: by_engine.append(("untag", r)))
    monkeypatch.setattr(containerd, "tag", lambda a, s, n: by_ctr.append(("tag", s, *n)) or True)
    monkeypatch.setattr(containerd, "remove", lambda a, n: by_ctr.append(("rm", *n)) or False)
    docker.add_names({"localhost:1/x/a:r": (A, ("r/a:1",))})
    docker.remove_names(["localhost:1/x/a:r"])
    assert by_ctr == [] and by_engine == [
        ("tag", A, "localhost:1/x/a:r"),
        ("untag", "localhost:1/x/a:r"),
    ]
    by_engine.clear()

    monkeypatch.setattr(docker, "_containerd_agrees", {(): True})
    store["docker.io/r/a:1"] = A
    # containerd copies the source tag; the copy is confirmed (the fake store answers)
    store["localhost:1/x/a:r"] = A
    store["localhost:1/x/b:r"] = A  # b was asked for B: containerd's copy is not confirmed
    docker.add_names({"localhost:1/x/a:r": (A, ("r/a:1",)), "localhost:1/x/b:r": (B, ("r/a:1",))})
    assert sorted(by_ctr) == [
        ("tag", "docker.io/r/a:1", "localhost:1/x/a:r"),
        ("tag", "docker.io/r/a:1", "localhost:1/x/b:r"),
    ]
    assert by_engine == [("tag", B, "localhost:1/x/b:r")]
    by_engine.clear()
    docker.remove_names(["localhost:1/x/a:r"])  # ctr failing: the engine removes it
    assert by_ctr[-1] == ("rm", "localhost:1/x/a:r") and by_engine == [
        ("untag", "localhost:1/x/a:r")
    ]


REAL_TARGETS = containerd.targets


def fake_ctr(held: dict[str, str], calls: list[list[str]]) -> Callable[..., Any]:
    """``containerd._run`` answering from ``held`` (name -> target) as ``ctr images list``
    does: ``--quiet`` prints the names each filter matches, else the full listing."""

    def matches(spec: str, name: str) -> bool:
        parts = dict(p.split("==", 1) for p in spec.split(","))
        return parts["name"] == name and parts.get("target.digest", held[name]) == held[name]

    def run(argv: list[str], parse: Callable[[str], Any]) -> Any:
        calls.append(argv)
        quiet = "--quiet" in argv
        specs = [a for a in argv[argv.index("list") + 1 :] if a.startswith("name==")]
        found = [n for n in sorted(held) if any(matches(f, n) for f in specs)]
        if quiet:
            return parse("".join(f"{n}\n" for n in found))
        lines = [f"{n} {MEDIA} {held[n]} 1.0 MiB linux/amd64 -" for n in found]
        return parse("\n".join(["REF TYPE DIGEST SIZE PLATFORMS LABELS", *lines]))

    return run


def test_an_image_s_alias_is_confirmed_in_the_lookup_s_one_quiet_call(
    store: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """local_images with ``alias``: the alias of the image each tag was last seen naming
    (by its kept label) is confirmed in the same quiet ``ctr`` call as the tags, and listed
    in that image's ``aliases`` only while it names that image; one that is missing is not
    listed in full (no second call)."""
    calls: list[list[str]] = []
    monkeypatch.setattr(containerd, "targets", REAL_TARGETS)
    monkeypatch.setattr(containerd, "_run", fake_ctr(store, calls))
    monkeypatch.setattr(docker, "_containerd_agrees", {(): True})
    engine = FakeEngine({"r/a:1": (A, {KEY: "ka"}), "r/b:1": (B, {KEY: "kb"})})
    monkeypatch.setattr(docker, "client", lambda: engine)
    store.update({"docker.io/r/a:1": A, "docker.io/r/b:1": B})

    def alias(ref: str, key: str) -> str:
        return f"localhost:1/p/{ref.split('/')[1].split(':')[0]}:{key}"

    first = docker.local_images(["r/a:1", "r/b:1"], label=KEY, alias=alias)
    assert first["r/a:1"].aliases == () and first["r/b:1"].aliases == ()  # nothing guessed yet
    store["localhost:1/p/a:ka"] = A  # an earlier run made a's alias
    store["localhost:1/p/b:kb"] = C  # b's names another image
    calls.clear()
    index = docker.local_images(["r/a:1", "r/b:1"], label=KEY, alias=alias)
    assert len(calls) == 1 and "--quiet" in calls[0]
    assert f"name==localhost:1/p/a:ka,target.digest=={A}" in calls[0]
    assert index["r/a:1"].aliases == ("localhost:1/p/a:ka",) and index["r/b:1"].aliases == ()
    assert index["r/a:1"].tags == ("r/a:1",)  # an alias is not one of the image's tags


def test_aliases_left_without_their_tags_leave_the_lookup_to_the_engine(
    store: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every tag removed (``docker rmi``), the aliases of their images kept: containerd
    confirms only aliases, so none of the tags is there and the engine answers (a
    benchmark's cold start once failed here with ``min() arg is an empty sequence``)."""
    calls: list[list[str]] = []
    monkeypatch.setattr(containerd, "targets", REAL_TARGETS)
    monkeypatch.setattr(containerd, "_run", fake_ctr(store, calls))
    monkeypatch.setattr(docker, "_containerd_agrees", {(): True})
    engine = FakeEngine({"r/a:1": (A, {KEY: "ka"})})
    monkeypatch.setattr(docker, "client", lambda: engine)
    store.update({"docker.io/r/a:1": A, "localhost:1/p/a:ka": A})

    def alias(ref: str, key: str) -> str:
        return f"localhost:1/p/a:{key}"

    docker.local_images(["r/a:1"], label=KEY, alias=alias)
    del store["docker.io/r/a:1"]
    engine.tags.clear()
    assert docker.local_images(["r/a:1"], label=KEY, alias=alias) == {}
    assert engine.asked[-1:] == ["r/a:1"]  # the engine was asked, and holds nothing

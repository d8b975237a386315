import dataclasses
import os
from pathlib import Path

import pytest

from buildkit_tasks import cachekey, config
from buildkit_tasks.config import ImageSpec


def ctx(tmp_path: Path, files: dict[str, str], ignore: str | None = None) -> Path:
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    if ignore is not None:
        (tmp_path / ".dockerignore").write_text(ignore)
    return tmp_path


def digest(path: Path) -> str:
    return cachekey.context_digest(path, path / "Dockerfile")


def test_content_changes_change_the_digest(tmp_path: Path) -> None:
    c = ctx(tmp_path, {"Dockerfile": "FROM scratch\n", "a/b.txt": "1"})
    first = digest(c)
    assert digest(c) == first
    (c / "a" / "b.txt").write_text("2")
    assert digest(c) != first


def test_ignored_files_do_not_count(tmp_path: Path) -> None:
    c = ctx(
        tmp_path,
        {"Dockerfile": "FROM scratch\n", "keep.txt": "k", "build/out.o": "x", "notes.md": "n"},
        ignore="# comment\nbuild\n*.md\n",
    )
    first = digest(c)
    (c / "build" / "out.o").write_text("changed")
    (c / "notes.md").write_text("changed")
    (c / "new.md").write_text("new")
    assert digest(c) == first
    (c / "keep.txt").write_text("changed")
    assert digest(c) != first


def test_exception_patterns_and_dockerfile_specific_ignore(tmp_path: Path) -> None:
    c = ctx(tmp_path, {"Dockerfile": "FROM scratch\n", "x/a": "1", "x/b": "1"}, ignore="x\n!x/b\n")
    first = digest(c)
    (c / "x" / "a").write_text("2")
    assert digest(c) == first
    (c / "x" / "b").write_text("2")
    second = digest(c)
    assert second != first
    # <Dockerfile>.dockerignore wins over .dockerignore
    (c / "Dockerfile.dockerignore").write_text("x\n")
    third = digest(c)
    (c / "x" / "b").write_text("3")
    assert digest(c) == third


def test_executable_bit_and_symlinks_count(tmp_path: Path) -> None:
    c = ctx(tmp_path, {"Dockerfile": "FROM scratch\n", "run.sh": "echo"})
    first = digest(c)
    os.chmod(c / "run.sh", 0o755)
    second = digest(c)
    assert second != first
    os.symlink("run.sh", c / "link")
    assert digest(c) != second


def test_key_covers_args_target_platforms_and_dependencies(tmp_path: Path) -> None:
    c = ctx(tmp_path, {"Dockerfile": "FROM base\n"})
    spec = ImageSpec("api", c, c / "Dockerfile", {"A": "1"}, None)
    base = cachekey.image_key(spec, ["linux/amd64"], {"base": "k1"})
    assert cachekey.image_key(spec, ["linux/amd64"], {"base": "k1"}) == base
    variants = [
        cachekey.image_key(
            ImageSpec("api", c, c / "Dockerfile", {"A": "2"}), ["linux/amd64"], {"base": "k1"}
        ),
        cachekey.image_key(
            ImageSpec("api", c, c / "Dockerfile", {"A": "1"}, "t"), ["linux/amd64"], {"base": "k1"}
        ),
        cachekey.image_key(spec, ["linux/arm64"], {"base": "k1"}),
        cachekey.image_key(spec, ["linux/amd64"], {"base": "k2"}),
        cachekey.image_key(
            ImageSpec("web", c, c / "Dockerfile", {"A": "1"}), ["linux/amd64"], {"base": "k1"}
        ),
    ]
    assert len({base, *variants}) == 6
    assert cachekey.image_key(
        spec, ["linux/arm64", "linux/amd64"], {"base": "k1"}
    ) == cachekey.image_key(spec, ["linux/amd64", "linux/arm64"], {"base": "k1"})
    (c / "Dockerfile").write_text("FROM base\nRUN true\n")
    assert cachekey.image_key(spec, ["linux/amd64"], {"base": "k1"}) != base


def test_manifests_name_what_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUILDKIT_CACHE_HOME", str(tmp_path / "cache"))
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM base\nCOPY . /app\n")
    (ctx / "app.py").write_text("print(1)\n")
    (ctx / "gone.txt").write_text("x\n")
    spec = config.ImageSpec("api", ctx, ctx / "Dockerfile", build_args={"A": "1"})
    old = cachekey.manifest(spec, ["linux/amd64"], {"base": "k1"})
    assert old.key() == cachekey.image_key(spec, ["linux/amd64"], {"base": "k1"})
    assert cachekey.record(old)  # a key this machine never planned before
    assert not cachekey.record(old)  # known now
    assert cachekey.recall(old.key()) == old
    assert cachekey.recall("0" * 64) is None

    (ctx / "app.py").write_text("print(2)\n")
    (ctx / "gone.txt").unlink()
    (ctx / "new.txt").write_text("y\n")
    (ctx / "Dockerfile").write_text("FROM base\nCOPY . /srv\n")
    changed = dataclasses.replace(spec, build_args={"A": "2", "B": "x"}, target="rt")
    new = cachekey.manifest(changed, ["linux/arm64"], {"base": "k2", "tools": "k3"})
    assert cachekey.changes(old, new) == [
        "changed app.py",  # the Dockerfile, also in the context, is named once, below
        "added new.txt",
        "removed gone.txt",
        "Dockerfile changed",
        "build arg A changed",
        "build arg B added",
        "target (last stage) -> rt",
        "platforms linux/amd64 -> linux/arm64",
        "base image base changed",
        "now builds on image tools",
    ]
    assert cachekey.changes(new, new) == []


def test_many_changed_files_are_counted(tmp_path: Path) -> None:
    m = cachekey.InputManifest("x", {f"f{i}": "F 0 a" for i in range(8)}, "d", {}, None, (), {})
    n = dataclasses.replace(m, context={f"f{i}": "F 0 b" for i in range(8)})
    assert cachekey.changes(m, n) == ["changed f0, f1, f2, f3, f4 and 3 more"]


def test_an_unwritable_cache_is_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("BUILDKIT_CACHE_HOME", str(tmp_path / "file"))
    m = cachekey.InputManifest("x", {}, "d", {}, None, (), {})
    cachekey.record(m)
    assert cachekey.recall(m.key()) is None

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from buildkit_tasks import cachekey, filedigests


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """The files hashed by reading them (a fresh cache home; nothing counts as racy)."""
    monkeypatch.setenv("BUILDKIT_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(filedigests, "RACY_SECONDS", -1.0)
    seen: list[str] = []
    real = filedigests.sha256_file

    def counting(path: Path) -> str:
        seen.append(path.name)
        return real(path)

    monkeypatch.setattr(filedigests, "sha256_file", counting)
    return seen


def context(tmp_path: Path) -> Path:
    c = tmp_path / "ctx"
    (c / "lib").mkdir(parents=True)
    (c / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    (c / "lib" / "tool.bin").write_bytes(b"\x7fELF" + b"x" * 5000)
    return c


def entries(c: Path) -> dict[str, str]:
    return cachekey.context_entries(c, c / "Dockerfile")


def test_unchanged_files_are_not_read_again(tmp_path: Path, reads: list[str]) -> None:
    c = context(tmp_path)
    first = entries(c)
    assert sorted(reads) == ["Dockerfile", "tool.bin"]
    reads.clear()
    assert entries(c) == first
    assert reads == []
    # and the digests are those of the files, as without the cache
    assert cachekey.context_entries(c, c / "Dockerfile", remember=False) == first


def test_a_rewritten_file_is_read_even_with_size_and_mtime_restored(
    tmp_path: Path, reads: list[str]
) -> None:
    c = context(tmp_path)
    tool = c / "lib" / "tool.bin"
    before = entries(c)
    st = tool.stat()
    tool.write_bytes(b"\x7fELF" + b"y" * 5000)  # same size
    os.utime(tool, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime put back; ctime moves on
    reads.clear()
    after = entries(c)
    assert reads == ["tool.bin"]
    assert after["lib/tool.bin"] != before["lib/tool.bin"]


def test_a_file_replaced_by_rename_is_read(tmp_path: Path, reads: list[str]) -> None:
    c = context(tmp_path)
    entries(c)
    new = tmp_path / "new.bin"
    new.write_bytes(b"\x7fELF" + b"z" * 5000)
    os.replace(new, c / "lib" / "tool.bin")
    reads.clear()
    assert entries(c)["lib/tool.bin"].endswith(filedigests.sha256_file(c / "lib" / "tool.bin"))
    assert "tool.bin" in reads


def test_recently_changed_files_are_not_remembered(
    tmp_path: Path, reads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(filedigests, "RACY_SECONDS", 2.0)
    c = context(tmp_path)  # just written: a write in the same clock tick could go unseen
    entries(c)
    reads.clear()
    entries(c)
    assert sorted(reads) == ["Dockerfile", "tool.bin"]


def test_a_damaged_or_foreign_cache_file_is_ignored(tmp_path: Path, reads: list[str]) -> None:
    c = context(tmp_path)
    first = entries(c)
    (kept,) = filedigests.directory().iterdir()
    data = json.loads(kept.read_text())
    assert data["context"] == str(c)
    assert set(data["files"]) == {"Dockerfile", "lib/tool.bin"}
    # a wrong digest under another context's name is not used
    data["context"] = "/elsewhere"
    data["files"]["lib/tool.bin"][6] = "0" * 64
    kept.write_text(json.dumps(data))
    reads.clear()
    assert entries(c) == first
    assert sorted(reads) == ["Dockerfile", "tool.bin"]
    kept.write_text("{not json")
    reads.clear()
    assert entries(c) == first
    assert len(reads) == 2


def test_removed_files_are_dropped_from_the_cache(tmp_path: Path, reads: list[str]) -> None:
    c = context(tmp_path)
    entries(c)
    (c / "lib" / "tool.bin").unlink()
    entries(c)
    (kept,) = filedigests.directory().iterdir()
    assert set(json.loads(kept.read_text())["files"]) == {"Dockerfile"}


def test_images_sharing_a_context_with_other_ignores_keep_their_own_entries(
    tmp_path: Path, reads: list[str]
) -> None:
    c = context(tmp_path)
    (c / "api.Dockerfile").write_text("FROM scratch\n")
    (c / "api.Dockerfile.dockerignore").write_text("lib\n")  # api does not send lib/
    both = [(c, c / "Dockerfile"), (c, c / "api.Dockerfile")]
    first = [cachekey.context_entries(ctx, df) for ctx, df in both]
    assert "lib/tool.bin" in first[0] and "lib/tool.bin" not in first[1]
    reads.clear()
    assert [cachekey.context_entries(ctx, df) for ctx, df in both] == first
    assert reads == []  # neither dropped the other's entries


@pytest.fixture
def walks(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The contexts listed by walking them (with the docker SDK's matcher)."""
    seen: list[Path] = []
    real = cachekey.docker_listing

    def counting(context: Path, *args: object) -> tuple[set[str], set[str]]:
        seen.append(context)
        return real(context, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(cachekey, "docker_listing", counting)
    return seen


def test_an_unchanged_context_is_not_listed_again(
    tmp_path: Path, reads: list[str], walks: list[Path]
) -> None:
    c = context(tmp_path)
    first = entries(c)
    assert walks == [c]
    assert entries(c) == first and walks == [c]
    # a file added, then one removed, deep down: listed again each time
    (c / "lib" / "new.txt").write_text("new")
    assert "lib/new.txt" in entries(c) and len(walks) == 2
    (c / "lib" / "tool.bin").unlink()
    assert set(entries(c)) == {"Dockerfile", "lib", "lib/new.txt"} and len(walks) == 3
    assert entries(c) == cachekey.context_entries(c, c / "Dockerfile", remember=False)
    assert len(walks) == 4  # remember=False lists; the remembered one did not


def test_an_excluded_directory_an_exception_enters_is_watched_too(
    tmp_path: Path, reads: list[str], walks: list[Path]
) -> None:
    c = context(tmp_path)
    (c / ".dockerignore").write_text("docs\n!docs/keep*\n")
    (c / "docs").mkdir()
    (c / "docs" / "notes.md").write_text("excluded")
    assert not any(p.startswith("docs") for p in entries(c))
    entries(c)
    assert len(walks) == 1
    (c / "docs" / "keep.txt").write_text("sent by the exception")
    assert "docs/keep.txt" in entries(c) and len(walks) == 2


def test_a_listing_that_read_a_directory_changed_just_before_is_not_kept(
    tmp_path: Path, reads: list[str], walks: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    c = context(tmp_path)
    monkeypatch.setattr(filedigests, "RACY_SECONDS", 3600.0)
    entries(c)
    entries(c)
    assert len(walks) == 2


def test_an_unchanged_run_does_not_import_the_docker_sdk(tmp_path: Path) -> None:
    c = context(tmp_path)
    env = {**os.environ, "BUILDKIT_CACHE_HOME": str(tmp_path / "cache")}
    code = (
        "import os, sys, time\n"
        "from pathlib import Path\n"
        "from buildkit_tasks import cachekey, filedigests\n"
        "filedigests.RACY_SECONDS = -1.0\n"
        f"c = Path({str(c)!r})\n"
        "e = cachekey.context_entries(c, c / 'Dockerfile')\n"
        "print(sorted(e), 'docker' in sys.modules)\n"
    )
    runs = [
        subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        for _ in range(2)
    ]
    assert [r.stdout.split()[-1] for r in runs] == ["True", "False"], runs
    assert runs[0].stdout == runs[1].stdout.replace("False", "True")


def test_an_edit_saved_by_rename_is_not_a_new_listing(
    tmp_path: Path, reads: list[str], walks: list[Path]
) -> None:
    """Editors and ``sed -i`` write a new file and rename it over the old one: the directory's
    status changes, its shape does not, so the listing stands and only that file is read."""
    c = context(tmp_path)
    first = entries(c)
    tmp = c / ".Dockerfile.swp"
    tmp.write_text("FROM scratch\nCOPY . /\nLABEL edited=1\n")
    os.replace(tmp, c / "Dockerfile")
    reads.clear()
    second = entries(c)
    assert walks == [c] and reads == ["Dockerfile"]
    assert second["Dockerfile"] != first["Dockerfile"]
    assert second == cachekey.context_entries(c, c / "Dockerfile", remember=False)
    del walks[1:]  # that one listed, as it always does
    # the new status was kept: the next run checks no shape
    shapes: list[str] = []
    real = filedigests._dir_shape
    filedigests._dir_shape = lambda p: shapes.append(p) or real(p)  # type: ignore[assignment]
    try:
        assert entries(c) == second
    finally:
        filedigests._dir_shape = real  # type: ignore[assignment]
    assert shapes == [] and walks == [c]


@pytest.mark.parametrize("change", ["file becomes directory", "symlink", "renamed"])
def test_a_directory_whose_shape_changed_is_listed_again(
    tmp_path: Path, reads: list[str], walks: list[Path], change: str
) -> None:
    c = context(tmp_path)
    (c / "data").write_text("a file")
    entries(c)
    if change == "file becomes directory":
        (c / "data").unlink()
        (c / "data").mkdir()
        (c / "data" / "inside.txt").write_text("now sent too")
    elif change == "symlink":
        (c / "data").unlink()
        (c / "data").symlink_to("lib")
    else:
        (c / "data").rename(c / "data2")
    got = entries(c)
    assert len(walks) == 2
    assert got == cachekey.context_entries(c, c / "Dockerfile", remember=False)


def test_remembered_entries_need_no_walk_and_no_read(
    tmp_path: Path, reads: list[str], walks: list[Path]
) -> None:
    c = context(tmp_path)
    assert cachekey.remembered_context_entries(c, c / "Dockerfile") is None  # nothing kept
    assert walks == [] and reads == []
    first = entries(c)
    reads.clear()
    assert cachekey.remembered_context_entries(c, c / "Dockerfile") == first
    (c / "lib" / "tool.bin").write_bytes(b"changed")
    assert cachekey.remembered_context_entries(c, c / "Dockerfile") is None
    (c / "lib" / "more.txt").write_text("added")
    assert cachekey.remembered_context_entries(c, c / "Dockerfile") is None
    assert reads == [] and walks == [c]
    assert "lib/more.txt" in entries(c)


def test_edits_just_before_a_run_are_listed_by_shape(
    tmp_path: Path,
    reads: list[str],
    walks: list[Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A script that edits and builds at once: every status is racy, yet an edit by rename
    needs no walk, and a walk's listing is kept with the shapes read before it."""
    c = context(tmp_path)
    entries(c)
    monkeypatch.setattr(filedigests, "RACY_SECONDS", 3600.0)  # from now on, all is racy
    for i in range(2):
        tmp = c / "Dockerfile.new"
        tmp.write_text(f"FROM scratch\nLABEL edit={i}\n")
        os.replace(tmp, c / "Dockerfile")
        digest = filedigests.sha256_file(c / "Dockerfile")
        assert entries(c)["Dockerfile"].endswith(digest) and len(walks) == 1
    (c / "added.txt").write_text("a new entry: another shape")
    got = entries(c)
    assert "added.txt" in got and len(walks) == 2
    assert entries(c) == got and len(walks) == 2  # kept, though racy
    assert got == cachekey.context_entries(c, c / "Dockerfile", remember=False)


def test_a_remembered_path_that_is_gone_is_listed_again(
    tmp_path: Path, reads: list[str], walks: list[Path]
) -> None:
    c = context(tmp_path)
    first = entries(c)
    [kept] = filedigests.directory().glob("*.json")
    data = json.loads(kept.read_text())
    data["listing"]["paths"].append("ghost.txt")  # as if it vanished while listed
    kept.write_text(json.dumps(data))
    assert entries(c) == first and len(walks) == 2
    assert cachekey.remembered_context_entries(c, c / "Dockerfile") == first

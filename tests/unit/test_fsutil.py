"""fsutil: scratch directories that no Ctrl-C leaves behind."""

from pathlib import Path

import pytest

from buildkit_tasks import fsutil


def test_a_scratch_dir_is_removed_however_the_block_ends(tmp_path: Path) -> None:
    with fsutil.scratch_dir(tmp_path, ".helm-") as d:
        assert d.is_dir() and d.parent == tmp_path and d.name.startswith(".helm-")
        (d / "pkg").mkdir()
        (d / "pkg" / "chart.tgz").write_bytes(b"x")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(KeyboardInterrupt), fsutil.scratch_dir(tmp_path, ".helm-") as d:
        (d / "half.tgz").write_bytes(b"x")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_a_ctrl_c_while_removing_finishes_the_removal_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = fsutil.shutil.rmtree
    calls: list[Path] = []

    def interrupted_once(path: Path, ignore_errors: bool = False) -> None:
        calls.append(path)
        if len(calls) == 1:  # the Ctrl-C lands halfway through the first removal
            (path / "a").unlink()
            raise KeyboardInterrupt
        real(path, ignore_errors=ignore_errors)

    monkeypatch.setattr(fsutil.shutil, "rmtree", interrupted_once)
    with pytest.raises(KeyboardInterrupt), fsutil.scratch_dir(tmp_path, ".helm-") as d:
        (d / "a").write_bytes(b"1")
        (d / "b").write_bytes(b"2")
    assert len(calls) == 2 and list(tmp_path.iterdir()) == []


def test_a_cache_file_is_written_whole_or_not_at_all(tmp_path: Path) -> None:
    dest = tmp_path / "cache" / "entry.json"
    fsutil.keep_cache_text(dest, '{"a": 1}')
    assert dest.read_text() == '{"a": 1}'
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    fsutil.keep_cache_text(blocker / "entry.json", "x")  # unwritable: no error, nothing left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "file"]
    assert [p.name for p in dest.parent.iterdir()] == ["entry.json"]


def test_a_waiting_run_names_the_holder_that_has_not_written_yet(tmp_path: Path) -> None:
    """The holder writes ``pid N: task`` just after taking the lock: a run that finds the lock
    taken a moment before (the file still empty, or still naming an earlier, finished holder)
    must still name the holder (CI: "waiting ... (unknown)" once)."""
    import fcntl
    import os
    import threading
    import time

    lock = tmp_path / "dist" / ".buildkit.lock"
    lock.parent.mkdir()
    said: list[str] = []
    for earlier in ("", "pid 999999999: an earlier run\n"):
        lock.write_text(earlier)
        holder = os.open(lock, os.O_RDWR)
        fcntl.flock(holder, fcntl.LOCK_EX)  # taken, its line not written yet

        def write_then_end(fd: int = holder, told: int = len(said) + 1) -> None:
            time.sleep(0.1)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}: build.all\n".encode(), 0)
            while len(said) < told:
                time.sleep(0.01)
            os.close(fd)

        thread = threading.Thread(target=write_then_end)
        thread.start()
        fsutil.hold_lock(lock, said.append)
        thread.join()
        os.close(fsutil._HELD.pop(lock.resolve()))
    assert said == [f"pid {os.getpid()}: build.all"] * 2

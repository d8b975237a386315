"""The first bake, started before the plan: taken (its log becomes bake.log) or killed at
once (the last run's bake.log untouched, nothing left behind). A stand-in ``docker`` on PATH
behaves as ``docker buildx bake --file -`` does while it waits: it ignores SIGTERM."""

import signal
import stat
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from buildkit_tasks.firstbake import HIDDEN_LOG, FirstBake, first_bake
from buildkit_tasks.runner import Runner

FAKE_DOCKER = f"""#!{sys.executable}
import signal, sys
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("waiting for the definition", flush=True)
print("read", len(sys.stdin.read()), "bytes", flush=True)
"""


@pytest.fixture
def fake_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(docker.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")


def settings(tmp_path: Path) -> Any:
    return SimpleNamespace(logs_dir=tmp_path / "dist" / "logs")


def test_a_taken_bake_writes_bake_log_and_reads_its_definition(
    tmp_path: Path, fake_docker: None
) -> None:
    s = settings(tmp_path)
    s.logs_dir.mkdir(parents=True)
    (s.logs_dir / "bake.log").write_text("the last run's bake\n")
    with first_bake(s, Runner(), True) as first:
        assert first is not None and first.started is not None
        assert (s.logs_dir / "bake.log").read_text() == "the last run's bake\n"
        started = first.take()
        assert started is not None and started.log == first.log == s.logs_dir / "bake.log"
        assert first.take() is None  # once
        assert started.finish(b"{}").ok
    assert first.log.read_text() == "waiting for the definition\nread 2 bytes\n"
    assert not (s.logs_dir / HIDDEN_LOG).exists()
    assert not first.metadata.parent.exists()  # its temporary directory is gone


def test_a_bake_no_batch_took_is_killed_at_once_and_leaves_nothing(
    tmp_path: Path, fake_docker: None
) -> None:
    s = settings(tmp_path)
    r = Runner(stop_grace=600)  # a SIGTERM first would wait all of it
    first = FirstBake(s, r)
    proc = first.started.proc if first.started else None
    assert proc is not None and (s.logs_dir / HIDDEN_LOG).exists()
    first.close()
    assert proc.returncode == -signal.SIGKILL and not r._procs
    assert not (tmp_path / "dist").exists()  # the directories it made for its log
    first.cancel()  # idempotent


def test_a_stopped_bake_leaves_the_last_runs_bake_log(tmp_path: Path, fake_docker: None) -> None:
    s = settings(tmp_path)
    s.logs_dir.mkdir(parents=True)
    (s.logs_dir / "bake.log").write_text("the last run's bake\n")
    with first_bake(s, Runner(), True):
        pass
    assert sorted(p.name for p in s.logs_dir.iterdir()) == ["bake.log"]
    assert (s.logs_dir / "bake.log").read_text() == "the last run's bake\n"


@pytest.mark.parametrize(("dry", "enabled"), [(True, True), (False, False)])
def test_nothing_starts_under_dry_or_without_batches(
    tmp_path: Path, fake_docker: None, dry: bool, enabled: bool
) -> None:
    s = settings(tmp_path)
    with first_bake(s, Runner(dry=dry), enabled) as first:
        assert first is None
    assert not (tmp_path / "dist").exists()

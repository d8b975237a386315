import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from buildkit_tasks.errors import CommandError
from buildkit_tasks.runner import Runner


def test_failure_raises_with_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    code = "import sys\nfor i in range(30): print('line', i)\nsys.exit(3)"
    with pytest.raises(CommandError) as err:
        Runner().run([sys.executable, "-c", code], log=log, what="thing")
    assert str(err.value) == f"thing failed (exit 3); log: {log}"
    assert err.value.returncode == 3
    assert err.value.output_tail.splitlines()[-1] == "line 29"
    assert "line 9\n" not in err.value.output_tail + "\n"


def test_stdin_carries_secrets_not_argv() -> None:
    out = Runner().run(
        [sys.executable, "-c", "import sys; print(sys.stdin.read()[::-1])"],
        stdin=b"terces",
        capture=True,
    )
    assert out.stdout.strip() == "secret"


def test_dry_prints_and_runs_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "m"
    res = Runner(dry=True).run(["touch", str(marker), "a b"])
    assert res.ok and not marker.exists()
    assert capsys.readouterr().out.strip() == f"touch {marker} 'a b'"


def test_missing_program_is_one_line() -> None:
    with pytest.raises(CommandError, match="no-such-tool-xyz: command not found"):
        Runner().run(["no-such-tool-xyz"])


def test_stop_escalates_to_sigkill_for_a_command_ignoring_sigterm() -> None:
    import signal
    import subprocess

    from buildkit_tasks.runner import stop

    proc = subprocess.Popen(
        ["sh", "-c", 'trap "" TERM; echo ready; while :; do sleep 1; done'],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    stop(proc, grace=0.5)  # SIGTERM is ignored: it must still end, by SIGKILL
    assert proc.returncode == -signal.SIGKILL


def test_terminate_all_kills_what_sigterm_did_not_stop(tmp_path: Path) -> None:
    import threading

    from buildkit_tasks.errors import CommandError
    from buildkit_tasks.runner import Runner

    r = Runner(stop_grace=0.5)
    failed: list[BaseException] = []
    ready = tmp_path / "trap-set"  # SIGTERM before the trap would end the shell at once

    def run() -> None:
        try:
            r.run(["sh", "-c", f'trap "" TERM; touch {ready}; while :; do sleep 1; done'])
        except CommandError as exc:
            failed.append(exc)

    t = threading.Thread(target=run)
    t.start()
    while not ready.exists():
        t.join(0.05)
    assert not r.stopping
    r.terminate_all()
    assert r.stopping  # what fails from now on was stopped: callers try nothing again
    t.join(30)
    assert not t.is_alive() and failed and "exit -9" in str(failed[0])


def test_a_command_started_just_after_terminate_all_is_stopped_at_once() -> None:
    """A job thread may start its command between Ctrl-C's terminate_all and its own end:
    that command was not among those stopped, so it is stopped as it starts (a build whose
    RUN step sleeps would otherwise outlive the run)."""
    r = Runner(stop_grace=0.5)
    r.terminate_all()
    started = time.monotonic()
    for call in (
        lambda: r.run(["sh", "-c", "sleep 30"]),
        lambda: r.pipe(["sh", "-c", "sleep 30"], lambda b: None),
    ):
        with pytest.raises(CommandError, match="stopped: the run was interrupted") as err:
            call()
        assert err.value.returncode == 130
    assert time.monotonic() - started < 5


def test_a_ctrl_c_python_lost_stops_a_command_the_main_thread_waits_for(
    lose_a_ctrl_c: Callable[[float], object],
) -> None:
    r = Runner(stop_grace=0.5)
    lose_a_ctrl_c(0.3)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        r.run(["sleep", "30"])
    assert time.monotonic() - started < 5 and not r._procs


def test_a_ctrl_c_just_as_a_command_starts_stops_it(
    sigint_watched: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Ctrl-C landing after the command started but before the runner counted it among the
    commands to stop: the command must not run on unseen (interrupt soak: ``helm package``
    outlived the run and printed its error after ours)."""
    spawned: list[subprocess.Popen[bytes]] = []
    real = subprocess.Popen

    class CtrlCAsItStarts(real):  # type: ignore[misc,valid-type]
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            spawned.append(self)
            os.kill(os.getpid(), signal.SIGINT)  # handled before the next line runs

    monkeypatch.setattr(subprocess, "Popen", CtrlCAsItStarts)
    r = Runner(stop_grace=5)
    started = time.monotonic()
    for call in (
        lambda: r.run(["sleep", "30"]),
        lambda: r.run(["sleep", "30"], capture=True),
        lambda: r.start(["sleep", "30"], stdin=True),
        lambda: r.pipe(["sleep", "30"], lambda b: None),
    ):
        with pytest.raises(KeyboardInterrupt):
            call()
        assert spawned[-1].returncode is not None  # stopped and reaped
        assert not r._procs
    assert len(spawned) == 4 and time.monotonic() - started < 3
    monkeypatch.undo()
    assert r.run(["true"]).ok  # the Ctrl-C was taken: the runner goes on


# -- start, then finish or cancel: a command that starts while the caller prepares its input --
REVERSE = "import sys; print(sys.stdin.read()[::-1])"


def test_a_started_command_reads_what_finish_gives_it(tmp_path: Path) -> None:
    r, log = Runner(), tmp_path / "out.log"
    started = r.start([sys.executable, "-c", REVERSE], log=log, stdin=True, what="reverse")
    assert r._procs  # tracked meanwhile: a Ctrl-C stops it
    res = started.finish(b"tupni")
    assert res.ok and log.read_text().strip() == "input" and not r._procs


def test_finish_in_a_thread_and_a_failing_started_command(tmp_path: Path) -> None:
    import threading

    r, log = Runner(), tmp_path / "out.log"
    started = r.start([sys.executable, "-c", REVERSE + "; sys.exit(3)"], log=log, stdin=True)
    out: list[object] = []

    def finish() -> None:
        try:
            started.finish(b"x")
        except CommandError as exc:
            out.append(exc)

    t = threading.Thread(target=finish)
    t.start()
    t.join(30)
    assert isinstance(out[0], CommandError) and out[0].returncode == 3
    assert str(out[0]).endswith(f"failed (exit 3); log: {log}")


def test_cancel_stops_a_started_command_before_it_gets_its_input(tmp_path: Path) -> None:
    marker = tmp_path / "read"
    code = f"import sys, pathlib; sys.stdin.read(); pathlib.Path({str(marker)!r}).touch()"
    r = Runner(stop_grace=2)
    started = r.start([sys.executable, "-c", code], log=tmp_path / "x.log", stdin=True)
    started.cancel()
    assert started.proc is not None and started.proc.returncode is not None
    assert started.proc.returncode < 0  # ended by a signal, not by reading its input
    assert not marker.exists() and not r._procs


def test_cancel_kills_a_command_waiting_for_input_that_ignores_sigterm(tmp_path: Path) -> None:
    # as docker buildx bake --file - does while it reads its definition: a SIGTERM first
    # would cost the whole grace period (here 600 s) before the SIGKILL
    ready = tmp_path / "ready"
    code = (
        "import pathlib, signal, sys; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"pathlib.Path({str(ready)!r}).touch(); sys.stdin.read()"
    )
    r = Runner(stop_grace=600)
    started = r.start([sys.executable, "-c", code], stdin=True)
    while not ready.exists():  # its SIGTERM handler is in place
        time.sleep(0.01)
    started.cancel()
    assert started.proc is not None and started.proc.returncode == -signal.SIGKILL
    assert not r._procs


def test_a_command_that_exits_without_reading_its_input_is_its_exit(tmp_path: Path) -> None:
    r = Runner()
    started = r.start([sys.executable, "-c", "import sys; sys.exit(4)"], stdin=True)
    assert started.proc is not None
    started.proc.wait()  # it is gone before its input (more than a pipe holds) is written
    res = started.finish(b"x" * (1 << 20), check=False)
    assert res.returncode == 4 and not r._procs


def test_dry_start_runs_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    started = Runner(dry=True).start(["touch", "/nonexistent/x"], stdin=True)
    assert started.proc is None and started.finish(b"data").ok
    started.cancel()
    assert capsys.readouterr().out.strip() == "touch /nonexistent/x"


def test_exec_argv_runs_another_program_but_shows_the_command_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[tuple[list[str], str | None]] = []

    def direct(argv: list[str], env: object) -> list[str]:
        seen.append((argv, dict(env).get("MARK")))  # type: ignore[call-overload]
        return ["sh", "-c", "echo ran $0", *argv[1:]]

    log = tmp_path / "out.log"
    r = Runner(echo=True, env={"MARK": "m1"}, exec_argv=direct)
    r.run(["docker", "buildx", "version"], log=log)
    assert log.read_text() == "ran buildx\n"
    assert seen == [(["docker", "buildx", "version"], "m1")]
    assert capsys.readouterr().out.strip() == "docker buildx version"
    assert r.sibling().exec_argv is direct

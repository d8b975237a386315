from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from buildkit_tasks import errors
from buildkit_tasks.engines import containerd, localapi


@pytest.fixture(autouse=True)
def no_local_engine_socket(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Unit tests never reach this machine's engine: the stdlib reader of its socket
    (:mod:`buildkit_tasks.engines.localapi`) points nowhere, so reads fall back to the SDK
    client each test fakes, and no engine run is recognised (:func:`containerd.engine_instance`)."""
    monkeypatch.setattr(localapi, "SOCKET", str(tmp_path / "no-engine.sock"))
    # nor its dockerd's pid file (an engine run's facts kept in the cache)
    monkeypatch.setattr(containerd, "PID_FILE", str(tmp_path / "no-dockerd.pid"))


@pytest.fixture
def lose_a_ctrl_c() -> Iterator[Callable[[float], object]]:
    """``lose(seconds)``: a Ctrl-C that many seconds from now whose KeyboardInterrupt Python
    dropped ("Exception ignored in" a callback): the handler ran (the signal is remembered),
    nothing was raised. Taken back at the end of the test."""
    timers: list[threading.Timer] = []

    def lose(seconds: float) -> object:
        timers.append(threading.Timer(seconds, errors._SIGINT.set))
        timers[-1].start()
        return timers[-1]

    yield lose
    for timer in timers:
        timer.cancel()
    errors.take_sigint()


@pytest.fixture
def sigint_watched() -> Iterator[None]:
    """This process's SIGINT handler is the one every task call sets
    (:func:`errors.watch_sigint`) for the test; the previous one is put back after it."""
    import signal

    before = signal.getsignal(signal.SIGINT)
    errors.watch_sigint()
    yield
    signal.signal(signal.SIGINT, before)
    errors.take_sigint()

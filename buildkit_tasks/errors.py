"""Errors raised by buildkit-tasks' Python API.

Every error a user can cause carries a one-line message naming the file, key or argument at
fault and what was expected. Tasks turn them into a non-zero exit without a traceback.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


class BuildkitError(Exception):
    """Base class: a one-line, user-facing failure. ``exit_code`` is the process exit status."""

    exit_code = 1


class ConfigError(BuildkitError):
    """The ``[tool.buildkit]`` table, Invoke config, a flag or a Dockerfile is not as expected."""


class CommandError(BuildkitError):
    """An external command (docker, helm, git, ruff, ...) failed."""

    def __init__(self, message: str, returncode: int = 1, output_tail: str = "") -> None:
        super().__init__(message)
        self.returncode = returncode
        self.output_tail = output_tail


class BuildFailed(BuildkitError):
    """One or more images failed (or were skipped because something they need failed)."""


class HostError(BuildkitError):
    """A remote build host could not be used: refused, timed out, unknown host key, failed
    authentication, or a remote step failed. The message names the host."""

    def __init__(self, host: str, message: str, *, unreachable: bool = False) -> None:
        super().__init__(f"host {host}: {message}")
        self.host = host
        #: True when the host could not be reached at all (another host may be tried).
        self.unreachable = unreachable


def caused_by_interrupt(exc: BaseException) -> bool:
    """Whether a KeyboardInterrupt is ``exc`` or at the end of its chain of causes. Python
    wraps a Ctrl-C that lands in some places: inside a C extension (a chain of SystemErrors,
    one per object it went on making; BuildKit's Go parser makes ~200,000) or while a class
    body runs during an import (``RuntimeError: Error calling __set_name__``). Walked without
    recursion."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, KeyboardInterrupt):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


_SIGINT = threading.Event()  # a Ctrl-C came that no handler has taken yet


def watch_sigint() -> None:
    """Make Ctrl-C (SIGINT) remembered as well as raised as KeyboardInterrupt, so a Ctrl-C
    that Python loses can still stop the run (:func:`lost_sigint`): a KeyboardInterrupt that
    lands inside a callback the interpreter runs (a finished import's module-lock weakref
    callback, a ``__del__``) is printed as "Exception ignored" and dropped, and the main
    thread goes on waiting for a build that may run for minutes (interrupt soak). Main thread
    only (where Python lets signal handlers be set); nothing elsewhere."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_sigint)


_held = 0  # depth of held_sigint blocks (main thread only)
_deferred = False  # a Ctrl-C came inside one: raised as it ends


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    global _deferred
    _SIGINT.set()
    if _held:
        _deferred = True
        return
    raise KeyboardInterrupt


@contextlib.contextmanager
def held_sigint() -> Iterator[None]:
    """A block no Ctrl-C interrupts halfway: one that comes meanwhile is raised, as
    KeyboardInterrupt, when the block ends (however it ends). For steps that must finish
    together, such as starting a command and recording it as one to stop: a Ctrl-C landing
    between the two left the command running unseen (interrupt soak: ``helm package`` went on
    after the run had removed its staged chart, and printed its error after ours). Needs
    :func:`watch_sigint`'s handler (set by every task call); nests; in threads other than the
    main one (where Python raises no KeyboardInterrupt) it does nothing."""
    global _held, _deferred
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _held += 1
    try:
        yield
    finally:
        _held -= 1
        if _deferred and not _held:
            _deferred = False
            raise KeyboardInterrupt


def take_sigint() -> None:
    """Say a KeyboardInterrupt was caught (by code that stops the run because of it)."""
    _SIGINT.clear()


def lost_sigint() -> bool:
    """Whether a Ctrl-C came that no code took (:func:`take_sigint`): for the main thread's
    long waits, which then raise KeyboardInterrupt themselves. Only in the main thread."""
    return _SIGINT.is_set() and threading.current_thread() is threading.main_thread()

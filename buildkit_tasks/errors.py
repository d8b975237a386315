"""Errors raised by buildkit-tasks' Python API.

Every error a user can cause carries a one-line message naming the file, key or argument at
fault and what was expected. Tasks turn them into a non-zero exit without a traceback.
"""

from __future__ import annotations


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

"""Running external commands from argv lists: never a shell string.

A :class:`Runner` runs one command at a time per call (calls may come from several threads),
sends its output to the console, to a log file or back to the caller, and knows Invoke's
``--dry`` and ``--echo`` semantics so tasks behave as Invoke users expect.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .console import emit
from .errors import CommandError

TAIL_LINES = 20


@dataclass(frozen=True)
class Result:
    """What a command did: its exit status and, when captured, its stdout (text)."""

    returncode: int
    stdout: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of a text file ('' if it does not exist)."""
    try:
        data = path.read_bytes()[-64 * 1024 :]
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


class Runner:
    """Runs argv lists with :mod:`subprocess`.

    ``dry``: print each command instead of running it (Invoke's ``--dry``; results are empty).
    ``echo``: print each command before running it (Invoke's ``--echo``).
    Running processes are tracked so :meth:`terminate_all` can stop them on Ctrl-C.
    """

    def __init__(
        self, *, dry: bool = False, echo: bool = False, env: Mapping[str, str] | None = None
    ) -> None:
        self.dry, self.echo = dry, echo
        self.env: dict[str, str] = dict(env or {})  # added to every command's environment
        self._procs: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        log: Path | None = None,
        capture: bool = False,
        stdin: bytes | None = None,
        check: bool = True,
        what: str | None = None,
        stderr_to_devnull: bool = False,
    ) -> Result:
        """Run ``argv``.

        Output goes to ``log`` (appended, stdout and stderr together) when given, is returned
        in ``Result.stdout`` when ``capture`` (stderr then goes to the console), or else streams
        to the console. ``env`` entries are added to the current environment; ``stdin`` bytes
        are written to the command's standard input (the way secrets reach a command).
        Raises CommandError ("<what> failed (exit N)") when ``check`` and the exit is non-zero,
        and FileNotFoundError's one-line form when the program is missing.
        """
        argv = [str(a) for a in argv]
        shown = shlex.join(argv)
        if self.dry or self.echo:
            emit(shown)
        if self.dry:
            return Result(0, "")
        extra = {**self.env, **(env or {})}
        full_env = {**os.environ, **extra} if extra else None
        log_fh = log.open("ab") if log else None
        try:
            try:
                proc = subprocess.Popen(
                    argv,
                    cwd=cwd,
                    env=full_env,
                    stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                    stdout=log_fh or (subprocess.PIPE if capture else None),
                    stderr=subprocess.STDOUT
                    if log_fh
                    else (subprocess.DEVNULL if stderr_to_devnull else None),
                    start_new_session=True,
                )
            except FileNotFoundError:
                raise CommandError(
                    f"{argv[0]}: command not found (is it installed and on PATH?)", 127
                ) from None
            with self._lock:
                self._procs.add(proc)
            try:
                out, _ = proc.communicate(stdin)
            except BaseException:  # Ctrl-C or a failing caller: leave no orphan behind
                _killpg(proc, signal.SIGTERM)
                proc.wait()
                raise
            finally:
                with self._lock:
                    self._procs.discard(proc)
        finally:
            if log_fh:
                log_fh.close()
        result = Result(proc.returncode, (out or b"").decode("utf-8", "replace"))
        if check and not result.ok:
            label = what or argv[0]
            where = f"; log: {log}" if log else ""
            raise CommandError(
                f"{label} failed (exit {proc.returncode}){where}",
                proc.returncode,
                tail(log) if log else "",
            )
        return result

    def terminate_all(self) -> None:
        """Send SIGTERM to every running command's process group (used on Ctrl-C)."""
        with self._lock:
            procs = list(self._procs)
        for proc in procs:
            _killpg(proc, signal.SIGTERM)


def _killpg(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def find_tool(name: str) -> str | None:
    """``name`` on PATH, else beside the running interpreter (a virtual environment's bin/)."""
    return shutil.which(name) or shutil.which(name, path=os.path.dirname(sys.executable))


def python_module(module: str) -> list[str]:
    """argv prefix running ``module`` with the current interpreter (``python -m module``)."""
    return [sys.executable, "-m", module]

"""Running external commands from argv lists: never a shell string.

A :class:`Runner` runs one command at a time per call (calls may come from several threads),
sends its output to the console, to a log file or back to the caller, and knows Invoke's
``--dry`` and ``--echo`` semantics so tasks behave as Invoke users expect.
"""

from __future__ import annotations

import os
import select
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .console import emit
from .errors import CommandError, held_sigint, lost_sigint, take_sigint

TAIL_LINES = 20


STOP_GRACE = 5.0  # default seconds from SIGTERM to SIGKILL (config ``stop_grace``)
# seconds between looks for a Ctrl-C Python lost while the main thread waits for a command
POLL_SECONDS = 0.25


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
    ``exec_argv``: what actually runs for a command (given its argv and full environment), e.g.
    a CLI plugin's own binary for ``docker <plugin> ...``; the command is still shown, logged
    and reported as written. Default: the argv as it is.
    Running processes are tracked so :meth:`terminate_all` can stop them on Ctrl-C.
    """

    def __init__(
        self,
        *,
        dry: bool = False,
        echo: bool = False,
        env: Mapping[str, str] | None = None,
        stop_grace: float = STOP_GRACE,
        exec_argv: Callable[[list[str], Mapping[str, str]], list[str]] | None = None,
    ) -> None:
        self.dry, self.echo = dry, echo
        self.stop_grace = stop_grace  # seconds between SIGTERM and SIGKILL when stopping
        self.env: dict[str, str] = dict(env or {})  # added to every command's environment
        self.exec_argv = exec_argv
        self._procs: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()
        # set by terminate_all: a command that failed now was stopped, not worth another try
        self.stopping = False

    def sibling(self) -> Runner:
        """A new Runner like this one (``dry``, ``echo``, ``stop_grace``, a copy of ``env``)
        tracking its own processes: for work driving another engine beside this one."""
        return Runner(
            dry=self.dry, echo=self.echo, env=self.env, stop_grace=self.stop_grace,
            exec_argv=self.exec_argv,
        )  # fmt: skip

    def _executed(self, argv: list[str], env: Mapping[str, str] | None) -> list[str]:
        """The argv that runs for ``argv`` (``exec_argv``) in environment ``env`` (None:
        this process's)."""
        return self.exec_argv(argv, env or os.environ) if self.exec_argv else argv

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
        query: bool = False,
    ) -> Result:
        """Run ``argv``.

        Output goes to ``log`` (appended, stdout and stderr together) when given, is returned
        in ``Result.stdout`` when ``capture`` (stderr then goes to the console), or else streams
        to the console. ``env`` entries are added to the current environment; ``stdin`` bytes
        are written to the command's standard input (the way secrets reach a command).
        ``query``: a read-only lookup (what the registry holds), run even under ``--dry`` so a
        dry run plans exactly as the real one; not printed as one of the task's commands.
        Raises CommandError ("<what> failed (exit N)") when ``check`` and the exit is non-zero,
        and FileNotFoundError's one-line form when the program is missing.
        """
        started = self.start(
            argv, cwd=cwd, env=env, log=log, capture=capture, stdin=stdin is not None,
            what=what, stderr_to_devnull=stderr_to_devnull, query=query,
        )  # fmt: skip
        return started.finish(stdin, check=check)

    def start(
        self,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        log: Path | None = None,
        capture: bool = False,
        stdin: bool = False,
        what: str | None = None,
        stderr_to_devnull: bool = False,
        query: bool = False,
    ) -> Started:
        """Start ``argv`` and return at once: :meth:`Started.finish` gives it its standard
        input (``stdin``: a pipe is opened, else it reads nothing) and waits for it, so a
        command that starts slowly (``docker buildx bake``: ~0.1-0.2 s before it reads its
        definition) starts while the caller still prepares what it will read;
        :meth:`Started.cancel` stops it when the caller gives up. Arguments as for :meth:`run`,
        which is ``start`` then ``finish``; under ``--dry`` (and not ``query``) nothing starts.
        Raises CommandError when the program is missing or the run was interrupted."""
        argv = [str(a) for a in argv]
        label = what or argv[0]
        shown = shlex.join(argv)
        if (self.dry and not query) or self.echo:
            emit(shown)
        if self.dry and not query:
            return Started(self, None, label, log, None)
        extra = {**self.env, **(env or {})}
        full_env = {**os.environ, **extra} if extra else None
        log_fh = log.open("ab") if log else None
        try:
            proc = self._spawn(
                argv,
                label,
                self._executed(argv, full_env),
                cwd=cwd,
                env=full_env,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=log_fh or (subprocess.PIPE if capture else None),
                stderr=subprocess.STDOUT
                if log_fh
                else (subprocess.DEVNULL if stderr_to_devnull else None),
            )
        except BaseException:
            if log_fh:
                log_fh.close()
            raise
        return Started(self, proc, label, log, log_fh)

    def pipe(
        self,
        argv: Sequence[str],
        sink: Callable[[bytes], object],
        *,
        chunk: int = 4 << 20,
        what: str | None = None,
    ) -> int:
        """Run ``argv`` and hand its stdout to ``sink`` in chunks of up to ``chunk`` bytes as it
        arrives (stderr is kept for the error). Returns the byte count. Raises CommandError
        with the last stderr lines on a non-zero exit; on any exception (Ctrl-C, a failing
        sink) the command is stopped first. In dry mode prints the command and returns 0."""
        argv = [str(a) for a in argv]
        if self.dry or self.echo:
            emit(shlex.join(argv))
        if self.dry:
            return 0
        env = {**os.environ, **self.env} if self.env else None
        proc = self._spawn(
            argv,
            what or argv[0],
            self._executed(argv, env),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stderr is not None
        total = 0
        errs: list[bytes] = []  # read beside stdout so a chatty stderr cannot block the pipe
        stderr = proc.stderr
        err_thread = threading.Thread(target=lambda: errs.append(stderr.read()), daemon=True)
        err_thread.start()
        try:
            reader = proc.stdout
            while data := reader.read1(chunk):  # type: ignore[attr-defined]
                if lost_sigint():
                    raise KeyboardInterrupt
                sink(data)
                total += len(data)
            proc.wait()
            err_thread.join()
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                take_sigint()
            stop(proc, self.stop_grace)
            raise
        finally:
            proc.stdout.close()
            proc.stderr.close()
            with self._lock:
                self._procs.discard(proc)
        if proc.returncode != 0:
            text = b"".join(errs).decode("utf-8", "replace").strip()
            last = text.splitlines()[-1] if text else ""
            raise CommandError(
                f"{what or argv[0]} failed (exit {proc.returncode}): {last}",
                proc.returncode,
                "\n".join(text.splitlines()[-TAIL_LINES:]),
            )
        return total

    def _spawn(
        self, argv: list[str], what: str, executed: list[str], **popen: Any
    ) -> subprocess.Popen[bytes]:
        """Start ``executed`` (the command shown as ``argv``; ``popen``: Popen's keyword
        arguments) in a session of its own and count it among the running commands, as one
        step no Ctrl-C splits (:func:`..errors.held_sigint`): a command started but not yet
        counted would be stopped by nobody. A Ctrl-C that came meanwhile kills the command
        (it has been given nothing yet) and is raised as KeyboardInterrupt. Raises
        CommandError when the program is missing (exit 127) or the run is being stopped
        (exit 130; :meth:`_track`)."""
        proc: subprocess.Popen[bytes] | None = None
        try:
            with held_sigint():
                proc = subprocess.Popen(executed, start_new_session=True, **popen)
                self._track(proc, what)
        except FileNotFoundError:
            raise CommandError(
                f"{argv[0]}: command not found (is it installed and on PATH?)", 127
            ) from None
        except BaseException as exc:
            if proc is not None:
                if isinstance(exc, KeyboardInterrupt):
                    take_sigint()
                    with self._lock:
                        self._procs.discard(proc)
                    if proc.returncode is None:  # (not already stopped by _track)
                        _killpg(proc, signal.SIGKILL)
                        proc.wait()
                for pipe in (proc.stdin, proc.stdout, proc.stderr):
                    if pipe is not None:
                        pipe.close()
            raise
        return proc

    def _track(self, proc: subprocess.Popen[bytes], what: str) -> None:
        """Count ``proc`` (just started) among the running commands :meth:`terminate_all`
        stops; when that already ran (a job thread started it just after Ctrl-C), stop it now
        and raise CommandError (exit 130): nothing may outlive the stop."""
        with self._lock:
            if not self.stopping:
                self._procs.add(proc)
                return
        stop(proc, self.stop_grace)
        raise CommandError(f"{what} stopped: the run was interrupted", 130)

    def terminate_all(self) -> None:
        """Stop every running command (used on Ctrl-C): SIGTERM to its process group now,
        SIGKILL to whatever is still running ``stop_grace`` seconds later (from a timer, so
        the caller is not held up)."""
        with self._lock:
            self.stopping = True
            procs = list(self._procs)
        for proc in procs:
            _killpg(proc, signal.SIGTERM)

        def kill_rest() -> None:
            for proc in procs:
                if proc.poll() is None:
                    _killpg(proc, signal.SIGKILL)

        timer = threading.Timer(self.stop_grace, kill_rest)
        timer.daemon = True
        timer.start()


class Started:
    """A command :meth:`Runner.start` began (``proc`` None under ``--dry``): finish it once,
    or cancel it."""

    def __init__(
        self,
        runner: Runner,
        proc: subprocess.Popen[bytes] | None,
        what: str,
        log: Path | None,
        log_fh: IO[bytes] | None,
    ) -> None:
        self.runner, self.proc, self.what, self.log = runner, proc, what, log
        self._log_fh = log_fh

    def finish(self, stdin: bytes | None = None, *, check: bool = True) -> Result:
        """Write ``stdin`` (when the command was started with a pipe; then close it) and wait
        for the command. Returns its Result (stdout when captured); raises CommandError
        ("<what> failed (exit N)") when ``check`` and the exit is non-zero. On Ctrl-C or any
        other exception the command is stopped first (SIGTERM, then SIGKILL after the runner's
        ``stop_grace`` seconds)."""
        proc = self.proc
        if proc is None:
            return Result(0, "")
        try:
            out = _communicate(proc, stdin)
        except BaseException as exc:  # Ctrl-C or a failing caller: leave no orphan behind
            if isinstance(exc, KeyboardInterrupt):
                take_sigint()
            stop(proc, self.runner.stop_grace)
            raise
        finally:
            self.release()
        result = Result(proc.returncode, (out or b"").decode("utf-8", "replace"))
        if check and not result.ok:
            where = f"; log: {self.log}" if self.log else ""
            raise CommandError(
                f"{self.what} failed (exit {proc.returncode}){where}",
                proc.returncode,
                tail(self.log) if self.log else "",
            )
        return result

    def cancel(self) -> None:
        """Stop the command (and its process group) without waiting for its result. One still
        waiting for the input :meth:`finish` would give (its stdin pipe open) has nothing to
        finish and is killed at once (SIGKILL): ``docker buildx bake --file -`` ignores SIGTERM
        while it reads its definition, which would cost the whole ``stop_grace``; any other
        gets SIGTERM first (:func:`stop`)."""
        proc = self.proc
        if proc is not None:
            try:
                if proc.stdin is not None and not proc.stdin.closed:
                    _killpg(proc, signal.SIGKILL)
                    proc.stdin.close()
                    proc.wait()
                else:
                    stop(proc, self.runner.stop_grace)
            finally:
                self.release()

    def release(self) -> None:
        """Forget the command (no longer one :meth:`Runner.terminate_all` stops) and close its
        log file; idempotent."""
        if self.proc is not None:
            with self.runner._lock:
                self.runner._procs.discard(self.proc)
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None


def _communicate(proc: subprocess.Popen[bytes], stdin: bytes | None) -> bytes | None:
    """``proc.communicate(stdin)``'s stdout. In the main thread, waits of
    :data:`POLL_SECONDS` raise KeyboardInterrupt when a Ctrl-C came that Python lost
    (:func:`..errors.lost_sigint`), so a lost Ctrl-C cannot leave a long command running.
    A command whose output goes to a file or the console is waited for on a pidfd: its exit is
    seen at once (``Popen.wait`` with a timeout polls, sleeping up to 50 ms)."""
    if proc.stdout is None and proc.stderr is None:
        _feed(proc, stdin)
        _wait(proc)
        return None
    if threading.current_thread() is not threading.main_thread():
        return proc.communicate(stdin)[0]
    while True:
        try:
            return proc.communicate(stdin, timeout=POLL_SECONDS)[0]
        except subprocess.TimeoutExpired:
            stdin = None  # already being written: communicate goes on with it
            if lost_sigint():
                raise KeyboardInterrupt from None


def _feed(proc: subprocess.Popen[bytes], data: bytes | None) -> None:
    """Write ``data`` to ``proc``'s stdin pipe (if it has one) and close it, in a thread: a
    command that never reads (it failed at once) must not block the caller's wait."""
    pipe = proc.stdin
    if pipe is None:
        return

    def write() -> None:
        try:
            if data:
                pipe.write(data)
        except (BrokenPipeError, ValueError):  # it exited without reading, or was stopped
            pass
        finally:
            try:
                pipe.close()
            except (BrokenPipeError, ValueError):
                pass

    threading.Thread(target=write, name="stdin", daemon=True).start()


def _wait(proc: subprocess.Popen[bytes]) -> None:
    """Wait for ``proc`` to exit and reap it; in the main thread in waits of
    :data:`POLL_SECONDS` on a pidfd (Linux 5.3+; else ``Popen.wait``'s polling), raising
    KeyboardInterrupt when a Ctrl-C came that Python lost."""
    if threading.current_thread() is not threading.main_thread():
        proc.wait()
        return
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        fd = None
    try:
        while True:
            if fd is not None:
                if select.select([fd], [], [], POLL_SECONDS)[0]:
                    break
            else:
                try:
                    proc.wait(timeout=POLL_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    pass
            if lost_sigint():
                raise KeyboardInterrupt from None
    finally:
        if fd is not None:
            os.close(fd)
    proc.wait()


def stop(proc: subprocess.Popen[bytes], grace: float) -> None:
    """Stop ``proc`` and its process group: SIGTERM, up to ``grace`` seconds for it to end,
    then SIGKILL (at once on a second Ctrl-C during the wait), then reap it."""
    _killpg(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except BaseException:  # the grace period is over, or a second Ctrl-C
        _killpg(proc, signal.SIGKILL)
        proc.wait()
        if not isinstance(sys.exc_info()[1], subprocess.TimeoutExpired):
            raise


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

"""What every task module shares: the task decorator, settings and runner from the Context."""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import invoke
from invoke import Context, Exit
from invoke.exceptions import ParseError

from ..console import emit
from ..errors import BuildkitError, caused_by_interrupt, take_sigint, watch_sigint
from ..options import invoke_defaults

if TYPE_CHECKING:  # imported when a task runs, so `inv --list` stays fast
    from collections.abc import Iterator

    from .. import config
    from ..buildplan import BuildPlan
    from ..runner import Runner
    from ..versioning import VersionInfo

# Keys Invoke should know (so INVOKE_BUILDKIT_* env vars are loaded); None means "not set".
CONFIG_DEFAULTS: dict[str, Any] = invoke_defaults()

# Settings loaded during the current task call, by (project root, Invoke's buildkit config):
# the project lock and the task body read the same pyproject.toml once (a 164-image
# [tool.buildkit] takes ~0.1 s to parse); a new task call starts empty.
_LOADED: contextvars.ContextVar[dict[tuple[str, str], config.Settings] | None] = (
    contextvars.ContextVar("buildkit_loaded_settings", default=None)
)


class Task(invoke.Task):
    """An Invoke task that turns BuildkitError into a one-line error with its exit code, and
    Ctrl-C into exit 130, never a traceback. No argument gets ``-h`` as its short flag, so
    ``inv TASK -h`` stays Invoke's help."""

    def __init__(self, *args: Any, writes: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.writes = writes  # writes into the project: runs hold the project lock

    def arg_opts(self, name: str, default: str, taken_names: set[str]) -> dict[str, Any]:
        opts = super().arg_opts(name, default, taken_names | {"h"})
        if opts.get("kind") is int:  # `--parallel x`: Invoke's one-line ParseError, exit 1
            opts["kind"] = _whole_number(f"--{name.replace('_', '-')}")
        return opts

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        _freeze_imports()
        _signal_stack()
        watch_sigint()
        loaded = _LOADED.set({})
        try:
            if self.writes and args and isinstance(args[0], Context) and not dry(args[0]):
                lock_project(settings(args[0]))
            return super().__call__(*args, **kwargs)
        except BuildkitError as exc:
            raise Exit(f"buildkit: {exc}", code=exc.exit_code) from None
        except (Exit, SystemExit):
            raise
        except BaseException as exc:  # Ctrl-C, also as Python wraps it (see caused_by_interrupt)
            if not caused_by_interrupt(exc):
                raise
            take_sigint()
            raise _interrupted() from None
        finally:
            _LOADED.reset(loaded)


_frozen = False  # whether _freeze_imports ran in this process


def _freeze_imports() -> None:
    """At the first task call of the process, move every object alive so far (the modules
    Invoke, this package and the user's ``tasks.py`` imported: they live until exit anyway)
    out of the cyclic garbage collector's sight (``gc.freeze``), so neither its full
    collections during the run nor the one at interpreter exit walk them again: ~30 ms less
    at the end of every ``inv`` run here (a 164-image run: 0.095 -> 0.065 s from the bake's
    end to the process's). Only once: later calls' garbage stays collectable."""
    global _frozen
    if not _frozen:
        _frozen = True
        import gc

        gc.freeze()


def _signal_stack() -> None:
    """Give the main thread an alternate signal stack (``faulthandler.enable`` makes one; it
    also prints Python's stack should the process crash). BuildKit's Dockerfile parser is Go
    code inside this process (the ``dockerfile`` wheel), and Go's runtime needs that stack when
    a signal lands while its code runs: without it, about one Ctrl-C in a hundred during
    planning killed the process with SIGSEGV (interrupt soak). Done before the parser loads."""
    import faulthandler
    import threading

    if threading.current_thread() is threading.main_thread() and not faulthandler.is_enabled():
        faulthandler.enable()


def _interrupted() -> Exit:
    """Ctrl-C: say so in one line now, then exit 130, whatever else happens on the way out:

    - a further Ctrl-C (or one landing while the process winds down) ends it at once;
    - CPython remembers a Ctrl-C that landed inside code run by ``exec`` of a string (as
      ``dataclasses`` and ``namedtuple`` do while a module is imported) and, although the
      exception was handled, ends the process by SIGINT instead of with its exit status; the
      last ``atexit`` step therefore ends it with 130 itself (after threads were joined and
      output flushed)."""
    import atexit
    import os
    import signal
    import sys
    import threading

    def exit_130(*_: object) -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(130)

    print("buildkit: interrupted", file=sys.stderr, flush=True)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, exit_130)
        atexit.register(exit_130)
    return Exit(code=130)


class _IntKind(type):
    """The type of :func:`_whole_number` kinds: equal to ``int`` for Invoke's help, which
    then still shows ``--flag=INT``."""

    def __eq__(cls, other: object) -> bool:
        return other is int or super().__eq__(other)

    def __hash__(cls) -> int:
        return hash(int)


def _whole_number(flag: str) -> type:
    """An ``int`` kind for Invoke's parser whose bad values raise Invoke's ParseError naming
    ``flag`` (Invoke prints it as one line and exits 1; a plain ``int`` kind's ValueError
    escapes Invoke as a traceback)."""

    def new(cls: type, value: Any = 0) -> int:
        try:
            return int.__new__(cls, value)
        except (TypeError, ValueError):
            raise ParseError(f"{flag}: expected a whole number, got {value!r}") from None

    return _IntKind("WholeNumber", (int,), {"__new__": new})


def task(*args: Any, **kwargs: Any) -> Any:
    """``invoke.task`` making a :class:`Task`; usable bare (``@task``) or with arguments."""
    return invoke.task(*args, klass=Task, **kwargs)


def project_root(c: Context) -> Path:
    """The project root: config ``buildkit.root``, else the directory of the loaded
    ``tasks.py``, else the nearest ``pyproject.toml`` at or above the current directory."""
    from .. import config

    bk = c.config.get("buildkit") or {}
    if bk.get("root"):
        return Path(bk["root"]).resolve()
    prefix = getattr(c.config, "_project_prefix", None)
    if prefix and (Path(prefix) / config.PYPROJECT).is_file():
        return Path(prefix).resolve()
    return config.find_root(Path.cwd())


def settings(c: Context, **flags: Any) -> config.Settings:
    """Settings from ``[tool.buildkit]`` + Invoke's ``buildkit`` config, then ``flags``
    (task flags; a None flag is "not given")."""
    import os

    from .. import config
    from ..options import check_env

    check_env(os.environ)
    bk = dict(c.config.get("buildkit") or {})
    bk.pop("root", None)
    root = project_root(c)
    memo, key = _LOADED.get(), (str(root), repr(sorted(bk.items())))
    s = memo.get(key) if memo is not None else None
    if s is None:
        s = config.load(root, bk)
        if memo is not None:
            memo[key] = s
    given = {k: v for k, v in flags.items() if v is not None}
    return dataclasses.replace(s, **given) if given else s


LOCK_FILE = ".buildkit.lock"


def lock_project(s: config.Settings) -> None:
    """Hold ``<output_dir>/.buildkit.lock`` for the rest of this process: a second
    ``inv build.all`` (or any task that writes artifacts) in the same project waits, saying
    for whom, until the first ends, so artifacts, checksums and the report are never written
    by two runs at once. Pre-tasks of one run share the lock."""
    from ..fsutil import hold_lock

    def waiting(holder: str) -> None:
        emit(f"waiting for another run in this project to finish ({holder})", err=True)

    hold_lock(s.output_dir / LOCK_FILE, waiting)


def dry(c: Context) -> bool:
    """Whether Invoke runs with ``--dry`` (print commands, write nothing)."""
    return bool((c.config.get("run") or {}).get("dry"))


def runner(c: Context, s: config.Settings) -> Runner:
    """A Runner honouring Invoke's ``--dry`` and ``--echo``, stopping commands on Ctrl-C with
    ``s.stop_grace`` seconds (config ``stop_grace``) between SIGTERM and SIGKILL, running
    ``docker buildx ...`` as the buildx plugin binary itself (:func:`docker.plugin_argv`;
    shown as written). Config ``builder`` (or ``--builder``) is applied by
    :func:`on_builder`."""
    from ..engines import docker
    from ..runner import Runner

    return Runner(
        dry=dry(c),
        echo=bool((c.config.get("run") or {}).get("echo")),
        stop_grace=s.stop_grace,
        exec_argv=docker.plugin_argv,
    )


@contextlib.contextmanager
def on_builder(s: config.Settings, r: Runner) -> Iterator[None]:
    """For the block, send ``r``'s commands and the SDK's calls to config ``builder`` (or
    ``--builder``; :func:`docker.builder_env`); nothing changes without one. Raises
    BuildkitError ("builder NAME: ...") when buildx does not know it."""
    from ..engines import docker

    with docker.using_builder(r, s.builder) as env:
        if s.builder and docker.builder_platforms(r) is None:
            raise BuildkitError(
                f"builder {s.builder}: no such buildx builder or docker context (docker buildx "
                "ls lists them; docker buildx create --name makes one)"
            )
        if env and (r.dry or r.echo):
            shown = " ".join(f"{k}={v}" for k, v in env.items())
            emit(f"# builder {s.builder}: {shown}")
        yield


def version(s: config.Settings) -> VersionInfo:
    """The project version, asked of git once per process (so every pre-task agrees)."""
    from .. import buildplan

    return buildplan.project_version(s)


def plan(s: config.Settings, names: list[str] | None = None) -> BuildPlan:
    """The run's :class:`buildplan.BuildPlan` (narrowed to ``names``): versions asked of git
    once per process, so every pre-task and ``--dry`` name the same references."""
    from .. import buildplan

    return buildplan.make(s, names or [])


def split_list(value: str | None) -> list[str]:
    """``"a,b, c"`` -> ``["a", "b", "c"]``; None -> ``[]``."""
    return [v.strip() for v in (value or "").split(",") if v.strip()]

"""The first batch's ``docker buildx bake``, started before the plan exists.

The docker CLI and its buildx plugin take ~0.1-0.3 s to start, and ask the engine nothing
before they read their definition on stdin (``--file -``). ``image.build`` and ``image.push``
start the first bake this way before planning (parsing the Dockerfiles, hashing the inputs,
looking the keys up), so it is ready to read its definition when the plan has one.
:meth:`.images.ImageBuild.bake_ahead` takes it when planning finds two or more images likely
to build, and kills it otherwise (it has done nothing: an unchanged run loses ~0.05 s of CPU
on another core). Until it is taken it writes to a hidden log beside ``bake.log``, so a run
that builds nothing leaves the last run's ``bake.log`` as it was.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .config import Settings
from .console import emit
from .engines import docker
from .runner import Runner, Started

HIDDEN_LOG = ".bake-starting.log"  # in logs_dir until the bake is taken


class FirstBake:
    """``docker buildx bake --file -`` started now with ``runner`` (its environment: builder,
    docker config), output to ``<logs_dir>/.bake-starting.log``; ``log`` and ``metadata`` are
    where the first batch's bake writes once taken. Not under ``--dry`` (``started`` None)."""

    def __init__(self, settings: Settings, runner: Runner) -> None:
        self.runner = runner
        self.log = settings.logs_dir / "bake.log"
        self._tmp = tempfile.TemporaryDirectory(prefix="buildkit-bake-")
        self.metadata = Path(self._tmp.name) / "bake-metadata-1.json"
        self._made = [p for p in (settings.logs_dir, *settings.logs_dir.parents) if not p.exists()]
        self._hidden = settings.logs_dir / HIDDEN_LOG
        self.started: Started | None = None
        if not runner.dry:
            settings.logs_dir.mkdir(parents=True, exist_ok=True)
            self.started = docker.start_bake(runner, self._hidden, self.metadata)

    def take(self) -> Started | None:
        """The bake, now writing to ``log`` (its hidden log renamed: the open file goes on),
        for :func:`.engines.docker.bake` to feed; None when it was taken or stopped before."""
        started, self.started = self.started, None
        if started is not None:
            self._hidden.replace(self.log)
            started.log = self.log
        return started

    def cancel(self) -> None:
        """Kill the bake unless it was taken (it has read nothing: killed at once), and remove
        its hidden log and the directories it made for it (left when anything else is in
        them)."""
        started, self.started = self.started, None
        if started is None:
            return
        started.cancel()
        if self.runner.echo:
            emit("# the bake started before the plan is stopped: no batch needs it")
        self._hidden.unlink(missing_ok=True)
        for path in self._made:  # innermost first
            try:
                path.rmdir()
            except OSError:
                break

    def close(self) -> None:
        """:meth:`cancel`, and remove the metadata file's directory."""
        try:
            self.cancel()
        finally:
            self._tmp.cleanup()


@contextmanager
def first_bake(settings: Settings, runner: Runner, enabled: bool) -> Iterator[FirstBake | None]:
    """A :class:`FirstBake` for the block when ``enabled`` (batches on, not ``--dry``), closed
    at its end (killed unless a batch took it); else None."""
    if not enabled or runner.dry:
        yield None
        return
    bake = FirstBake(settings, runner)
    try:
        yield bake
    finally:
        bake.close()

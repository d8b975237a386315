"""What the user sees while images build.

- ``live``: a ``rich`` table redrawn 4 times a second: per image its state, elapsed time and
  current BuildKit step (read from the build logs as they grow).
- ``plain``: timestamped lines (``12:03:04 image api: building``); chosen when stdout is not a
  terminal or env ``CI`` is set.
- ``verbose``: plain lines plus every BuildKit step line as it appears in the logs.
- ``quiet``: nothing until the summary; failures still print.

:func:`choose` picks the mode from the ``--quiet`` / ``--verbose`` flags and the terminal.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .console import emit

if TYPE_CHECKING:
    from .images import ImageResult

MODES = ("live", "plain", "verbose", "quiet")
# "#12 [api 2/3] RUN make" (bake: the target first) or "#5 [2/3] RUN make" (one image).
_STEP = re.compile(r"^#\d+ \[(?P<where>[^\]]*)\] (?P<text>.+)$")
_BAKE = "bake.log"


def choose(quiet: bool = False, verbose: bool = False, stream: Any = None) -> str:
    """``quiet`` / ``verbose`` when asked; else ``live`` on a terminal outside CI, else
    ``plain``."""
    if quiet:
        return "quiet"
    if verbose:
        return "verbose"
    stream = stream or sys.stdout
    if os.environ.get("CI") or not getattr(stream, "isatty", lambda: False)():
        return "plain"
    return "live"


def stamp() -> str:
    return time.strftime("%H:%M:%S")


class LogTail:
    """Follows the build logs in ``logs_dir`` and knows each image's latest step."""

    def __init__(self, logs_dir: Path, names: Sequence[str]) -> None:
        self.logs_dir, self.names = logs_dir, set(names)
        self._pos: dict[Path, int] = {}
        self.step: dict[str, str] = {}

    def poll(self) -> list[tuple[str, str]]:
        """New (image, step line) pairs since the last poll."""
        out: list[tuple[str, str]] = []
        if not self.logs_dir.is_dir():
            return out
        for path in sorted(self.logs_dir.glob("*.log")):
            image = None if path.name == _BAKE else path.stem
            if image is not None and image not in self.names:
                continue
            for line in self._new_lines(path):
                m = _STEP.match(line)
                if not m:
                    continue
                where, text = m["where"], m["text"]
                name = image
                if image is None:  # bake: "[api 2/3]" or "[api internal]"
                    first = where.split(" ", 1)[0]
                    name = first if first in self.names else None
                if name is None or where.endswith("internal") or where == "internal":
                    continue
                stage = where.split(" ", 1)[1] if image is None and " " in where else ""
                stage = where if image is not None else stage
                step = f"[{stage}] {text}" if stage else text
                self.step[name] = step[:70]
                out.append((name, step))
        return out

    def _new_lines(self, path: Path) -> list[str]:
        pos = self._pos.get(path, 0)
        try:
            with path.open("rb") as fh:
                if os.fstat(fh.fileno()).st_size < pos:  # emptied for a new bake or build
                    pos = 0
                fh.seek(pos)
                data = fh.read()
        except OSError:
            return []
        end = data.rfind(b"\n") + 1  # whole lines only
        self._pos[path] = pos + end
        return data[:end].decode("utf-8", "replace").splitlines()


class Progress:
    """Callbacks for :func:`buildkit_tasks.images.build_images` (``on_start``, ``on_done``)
    rendering one of :data:`MODES`. Use as a context manager."""

    def __init__(self, mode: str, names: Sequence[str], logs_dir: Path) -> None:
        if mode not in MODES:
            raise ValueError(f"progress mode {mode!r}")
        self.mode, self.names = mode, list(names)
        self.tail = LogTail(logs_dir, names)
        self.state = {n: "waiting" for n in self.names}
        self.started: dict[str, float] = {}
        self.seconds: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live: Any = None

    def __enter__(self) -> Progress:
        if self.mode == "live":
            from rich.console import Console
            from rich.live import Live

            self._live = Live(
                get_renderable=self.render,
                console=Console(),
                refresh_per_second=4,
                transient=False,
            )
            self._live.start()
        if self.mode in ("live", "verbose"):
            self._thread = threading.Thread(target=self._follow, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._live is not None:
            self._live.refresh()
            self._live.stop()

    def _follow(self) -> None:
        while not self._stop.wait(0.25):
            for name, step in self.tail.poll():
                if self.mode == "verbose":
                    emit(f"{stamp()} [{name}] {step}")

    # callbacks
    def on_start(self, name: str) -> None:
        self.state[name] = "building"
        self.started[name] = time.monotonic()
        if self.mode in ("plain", "verbose"):
            emit(f"{stamp()} image {name}: building")

    def on_done(self, r: ImageResult) -> None:
        self.state[r.name] = r.status
        self.seconds[r.name] = r.seconds
        if r.status in ("succeeded", "cached"):
            if self.mode in ("plain", "verbose"):
                note = f" ({r.note})" if r.note else ""
                emit(
                    f"{stamp()} image {r.name}: {r.status} in {r.seconds:.1f}s -> "
                    f"{r.references[0]}{note}"
                )
        elif self.mode != "live":
            emit(f"{stamp()} image {r.name}: {r.status}: {r.error}", err=True)

    def render(self) -> Any:
        """The live table (rich renderable)."""
        from rich.table import Table
        from rich.text import Text

        colours = {
            "succeeded": "green",
            "cached": "cyan",
            "failed": "red",
            "skipped": "yellow",
            "building": "bold",
        }
        table = Table(box=None, pad_edge=False, show_edge=False)
        for col in ("image", "state", "time", "step"):
            table.add_column(col, no_wrap=True, justify="right" if col == "time" else "left")
        now = time.monotonic()
        for name in self.names:
            state = self.state[name]
            if name in self.seconds:
                secs = self.seconds[name]
            elif name in self.started:
                secs = now - self.started[name]
            else:
                secs = 0.0
            step = self.tail.step.get(name, "") if state == "building" else ""
            colour = colours.get(state, "dim")
            # the step is log text: never read as rich markup ("[build 1/3]" is not a style)
            table.add_row(name, f"[{colour}]{state}[/]", f"{secs:5.1f}s", Text(step))
        return table

"""Console output shared by threads: whole lines, never interleaved."""

from __future__ import annotations

import sys
import threading

_lock = threading.Lock()


def emit(line: str, err: bool = False) -> None:
    """Write ``line`` and a newline to stdout (or stderr) in one piece, and flush."""
    stream = sys.stderr if err else sys.stdout
    with _lock:
        stream.write(line + "\n")
        stream.flush()

"""Cutting an image build into ``docker buildx bake`` batches the engine can carry, and
telling a batch that failed because an image failed from one the engine could not carry.

One bake of a whole platform (160+ targets) does not finish on the docker driver of Engine
26 / buildx 0.13: cold it fails with ``no such job``, cached with ``DeadlineExceeded`` (issue
15). So the images to build are cut, in build order, into batches of at most ``batch_size``
(config ``batch_size``); a dependency inside the same batch is a ``target:`` context, one in
an earlier batch the finished image. A batch the engine fails is retried as two halves, down
to single images, and said so; a batch in which an image failed stops batching, and the rest
build one by one, where a failure skips only its dependents.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

DEFAULT_BATCH_SIZE = 40

# What buildx or the engine says when it, not an image, failed a bake.
ENGINE_ERRORS = (
    "Invalid name",  # a bake definition the engine refused
    "no such job",
    "DeadlineExceeded",
    "context deadline exceeded",
    "failed to receive status",
    "rpc error: code = Unavailable",
    "rpc error: code = Internal",
    "error reading from server",
    "connection reset by peer",
    "failed to list workers",
    # BuildKit lost a snapshot it was committing (containerd collected it meanwhile; seen
    # right after a `docker rmi` on Engine 26, and upstream as a flake through Engine 29)
    "failed to stat active key during commit",
)


def cut(names: Sequence[str], size: int) -> list[list[str]]:
    """``names`` (in build order) as consecutive batches of at most ``size`` (>= 1)."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1, got {size}")
    return [list(names[i : i + size]) for i in range(0, len(names), size)]


def halves(names: Sequence[str]) -> list[list[str]]:
    """``names`` as two batches in build order (the first half may feed the second)."""
    middle = (len(names) + 1) // 2
    return [list(names[:middle]), list(names[middle:])]


def engine_error(log_tail: str) -> str | None:
    """The line of a failed bake's log that says the engine (not an image) failed it, None
    when the failure is an image's (a RUN step exited non-zero, a file is missing...)."""
    lines = log_tail.splitlines()
    if any("did not complete successfully" in ln for ln in lines):
        return None
    for line in reversed(lines):
        if any(marker in line for marker in ENGINE_ERRORS):
            return line.strip()
    return None


@dataclass(frozen=True)
class Retry:
    """A batch the engine failed (``why``: its log line), retried as ``parts``."""

    names: tuple[str, ...]
    why: str
    parts: tuple[tuple[str, ...], ...]


def run(
    names: Sequence[str],
    size: int,
    bake: Callable[[list[str]], tuple[bool, str | None]],
    built: Callable[[str], bool],
    on_retry: Callable[[Retry], None] = lambda r: None,
) -> bool:
    """Bake ``names`` (build order) in batches of at most ``size``. ``bake(batch)`` returns
    ``(ok, engine_error)`` (:func:`engine_error`); ``built(name)`` says whether an image is
    done (a failed batch may have finished some). A batch the engine failed is retried as two
    halves of what it left (``on_retry`` hears of it), down to single images, which are left
    to the caller. Returns False when an image failed a batch: batching stops there, and
    what is not built is the caller's to build one by one; True otherwise."""
    queue = cut(names, size)
    while queue:
        batch = [n for n in queue.pop(0) if not built(n)]
        if len(batch) < 2:
            continue  # a single image builds on its own (same command, its own log)
        ok, engine = bake(batch)
        if ok:
            continue
        if engine is None:
            return False
        left = [n for n in batch if not built(n)]
        parts = [p for p in halves(left) if p]
        on_retry(Retry(tuple(batch), engine, tuple(tuple(p) for p in parts)))
        queue[:0] = parts
    return True

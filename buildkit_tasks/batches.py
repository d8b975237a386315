"""Cutting an image build into ``docker buildx bake`` batches the engine can carry, and
telling a batch that failed because an image failed from one the engine could not carry.

One bake of a whole platform (160+ targets) does not finish on the docker driver of Engine
26 / buildx 0.13: cold it fails with ``no such job``, cached with ``DeadlineExceeded`` (issue
15). So the images to build are cut into batches of at most ``batch_size`` (config
``batch_size``), each needing only itself and earlier batches; a dependency inside the same
batch is a ``target:`` context, one in an earlier batch the finished image under a run-unique
alias. Batches keep chains together (:func:`cut`): a dependent then starts as soon as its base
is built, inside the engine, and fewer images need an alias (a tag call each: ~29 ms of engine
CPU on Engine 26's containerd store). A batch the engine fails is retried as two halves, down
to single images, and said so; a batch in which an image failed stops batching, and the rest
build one by one, where a failure skips only its dependents.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Collection, Mapping, Sequence
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


def cut(
    names: Sequence[str], size: int, deps: Mapping[str, Collection[str]] | None = None
) -> list[list[str]]:
    """``names`` (in build order) as batches of at most ``size`` (>= 1), as few as that
    allows and of even sizes, each listing an image after the ones it builds on and needing
    only itself and the batches before it. ``deps`` (image -> the images it builds on; names
    outside ``names`` ignored) keeps chains together: each next image is the ready one (its
    dependencies all placed) with the most dependencies in the current batch, the earliest
    in ``names`` on a tie, so few dependencies cross batches. Without ``deps``, consecutive
    slices of ``names``. Raises ValueError when ``size`` < 1 or ``deps`` make a cycle."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1, got {size}")
    if not names:
        return []
    even = math.ceil(len(names) / math.ceil(len(names) / size))
    if deps is None:
        return [list(names[i : i + even]) for i in range(0, len(names), even)]
    position = {n: i for i, n in enumerate(names)}
    needs = {n: {d for d in deps.get(n, ()) if d in position and d != n} for n in names}
    users: dict[str, list[str]] = {n: [] for n in names}
    for name, wanted in needs.items():
        for dep in wanted:
            users[dep].append(name)
    waiting = {n: len(needs[n]) for n in names}
    near: dict[str, int] = {}  # image -> how many of its dependencies the current batch holds
    ready = {n for n in names if not waiting[n]}
    heap = [(0, position[n], n) for n in ready]  # (-near, position); stale entries skipped
    heapq.heapify(heap)
    out: list[list[str]] = []
    batch: list[str] = []
    while heap:
        minus_near, _, name = heapq.heappop(heap)
        if name not in ready or -minus_near != near.get(name, 0):
            continue
        ready.discard(name)
        batch.append(name)
        for user in users[name]:
            waiting[user] -= 1
            near[user] = near.get(user, 0) + 1
            if not waiting[user]:
                ready.add(user)
            if user in ready:
                heapq.heappush(heap, (-near[user], position[user], user))
        if len(batch) == even:
            out.append(batch)
            batch, near = [], {}
            for n in ready:
                heapq.heappush(heap, (0, position[n], n))
    if batch:
        out.append(batch)
    if len(names) != sum(map(len, out)):
        cycle = sorted(n for n in names if waiting[n])
        raise ValueError(f"images depend on each other in a cycle: {', '.join(cycle)}")
    return out


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
    deps: Mapping[str, Collection[str]] | None = None,
) -> bool:
    """Bake ``names`` (build order) in batches of at most ``size``, cut by :func:`cut` (with
    ``deps``, chains kept together). ``bake(batch)`` returns
    ``(ok, engine_error)`` (:func:`engine_error`); ``built(name)`` says whether an image is
    done (a failed batch may have finished some). A batch the engine failed is retried as two
    halves of what it left (``on_retry`` hears of it), down to single images, which are left
    to the caller. Returns False when an image failed a batch: batching stops there, and
    what is not built is the caller's to build one by one; True otherwise."""
    queue = cut(names, size, deps)
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

"""The scheduler alone on a synthetic 150-node graph with known durations.

    python benchmarks/scheduler.py [--workers N] [--seed S] [--scale SECONDS]

Jobs sleep for their duration (``scale`` seconds per unit), so the measured makespan is real
wall time through the same scheduler the builds use. Prints the makespan against the lower
bound max(critical path, total work / workers) for each worker count (target: ratio <= 1.05),
and, as a peer measured in the same run, a level-by-level scheduler (each level waits for the
slowest job of the one before, as hand-written build scripts do).
"""

from __future__ import annotations

import argparse
import random
import time
from concurrent.futures import ThreadPoolExecutor

from buildkit_tasks.scheduler import longest_paths, run_graph


def synthetic_graph(seed: int, nodes: int = 150) -> tuple[dict[str, list[str]], dict[str, float]]:
    """A platform-shaped graph (Kaapana: 12 local bases, base chains four deep, most images
    leaves on a base): 12 bases, then 20, 10 and 5 images stacked three levels above them, and
    leaves on any of those. Durations in abstract units, drawn with ``seed``."""
    rng = random.Random(seed)
    preds: dict[str, list[str]] = {}
    duration: dict[str, float] = {}
    levels: list[list[str]] = []
    for depth, (size, low, high) in enumerate([(12, 3, 8), (20, 2, 6), (10, 2, 6), (5, 2, 5)]):
        level = []
        for i in range(size):
            n = f"l{depth}-{i}"
            preds[n] = [rng.choice(levels[-1])] if levels else []
            duration[n] = rng.uniform(low, high)
            level.append(n)
        levels.append(level)
    everything = [n for level in levels for n in level]
    i = 0
    while len(preds) < nodes:
        n = f"leaf{i}"
        preds[n] = [rng.choice(everything)]
        duration[n] = rng.uniform(0.5, 4)
        i += 1
    return preds, duration


def lower_bound(preds: dict[str, list[str]], duration: dict[str, float], workers: int) -> float:
    critical = max(longest_paths(preds, duration).values())
    return max(critical, sum(duration.values()) / workers)


def ours(
    preds: dict[str, list[str]], duration: dict[str, float], workers: int, scale: float
) -> float:
    start = time.perf_counter()
    run_graph(preds, lambda n: time.sleep(duration[n] * scale), workers=workers, weight=duration)
    return (time.perf_counter() - start) / scale


def level_by_level(
    preds: dict[str, list[str]], duration: dict[str, float], workers: int, scale: float
) -> float:
    depth: dict[str, int] = {}

    def d(n: str) -> int:
        if n not in depth:
            depth[n] = 1 + max((d(p) for p in preds[n]), default=-1)
        return depth[n]

    levels: dict[int, list[str]] = {}
    for n in preds:
        levels.setdefault(d(n), []).append(n)
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        for k in sorted(levels):
            list(pool.map(lambda n: time.sleep(duration[n] * scale), levels[k]))
    return (time.perf_counter() - start) / scale


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="*", default=[2, 4, 8, 16])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--scale", type=float, default=0.05, help="seconds per duration unit")
    args = ap.parse_args()
    preds, duration = synthetic_graph(args.seed)
    print(
        f"scheduler on a synthetic graph: {len(preds)} nodes, total work "
        f"{sum(duration.values()):.0f} units, critical path "
        f"{max(longest_paths(preds, duration).values()):.1f} units"
    )
    print(
        f"{'workers':>7}  {'bound':>7}  {'ours':>7}  {'ratio':>6}  {'level-by-level':>14}  "
        f"{'ratio':>6}"
    )
    worst = 0.0
    for w in args.workers:
        bound = lower_bound(preds, duration, w)
        o = ours(preds, duration, w, args.scale)
        lv = level_by_level(preds, duration, w, args.scale)
        worst = max(worst, o / bound)
        print(f"{w:>7}  {bound:7.1f}  {o:7.1f}  {o / bound:6.3f}  {lv:14.1f}  {lv / bound:6.3f}")
    print(
        f"worst ratio ours / lower bound: {worst:.3f}  (target <= 1.05: "
        f"{'met' if worst <= 1.05 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()

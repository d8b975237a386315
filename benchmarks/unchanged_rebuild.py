"""Unchanged rebuild of 1 base + 30 dependents: buildkit-tasks against `docker buildx bake --load`.

    python benchmarks/unchanged_rebuild.py [--reps N]

Both build the same graph once (cold), then each rebuilds it N times with nothing changed,
interleaved. Prints each median and the ratio bake / ours (target: ours under 1 s and at least
9 times faster).
"""

from __future__ import annotations

import argparse
import tempfile
import uuid
from pathlib import Path

import graphproject as gp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--run-seconds", type=float, default=1.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-unchanged-") as tmp:
        root = gp.make(Path(tmp) / "p", run_seconds=args.run_seconds, salt=uuid.uuid4().hex)
        print("warming up: one cold build each ...", flush=True)
        gp.timed(gp.ours(root), root)
        gp.timed(gp.bake(root), root)
        t_ours, t_bake = [], []
        for _ in range(args.reps):
            t_ours.append(gp.timed(gp.ours(root), root))
            t_bake.append(gp.timed(gp.bake(root), root))
        o, b = gp.median(t_ours), gp.median(t_bake)
        print(f"unchanged rebuild, 31 images, {args.reps} runs each (median):")
        print(gp.line("buildkit-tasks inv image.build", t_ours))
        print(gp.line("docker buildx bake --load", t_bake))
        print(
            f"  ratio bake / ours: {b / o:.1f}x  (target >= 9x, ours < 1 s: "
            f"{'met' if b / o >= 9 and o < 1 else 'NOT met'})"
        )
        gp.remove_images()


if __name__ == "__main__":
    main()

"""Cold build of 1 base + 30 dependents (a 1 s RUN each): buildkit-tasks against
`docker buildx bake --load`, with no image and no build cache before each run.

    python benchmarks/cold_build.py [--reps N] [--parallel P]

Runs are interleaved (ours, bake, ours, bake, ...); before each one the graph's images are
removed and the build cache is pruned. Prints each median and the ratio ours / bake (target: at
most 1.05). ``--parallel`` is passed to ``inv image.build`` (default 0: config, else CPU count).
"""

from __future__ import annotations

import argparse
import tempfile
import uuid
from pathlib import Path

import graphproject as gp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--parallel", type=int, default=0)
    ap.add_argument("--run-seconds", type=float, default=1.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        t_ours, t_bake = [], []
        for _ in range(args.reps):
            salt = uuid.uuid4().hex  # fresh inputs: nothing to reuse from an earlier run
            root = gp.make(Path(tmp) / "p", run_seconds=args.run_seconds, salt=salt)
            gp.remove_images()
            gp.prune_build_cache()
            t_ours.append(gp.timed(gp.ours(root, "--parallel", str(args.parallel)), root))
            gp.remove_images()
            gp.prune_build_cache()
            t_bake.append(gp.timed(gp.bake(root), root))
        o, b = gp.median(t_ours), gp.median(t_bake)
        label = f"--parallel {args.parallel}" if args.parallel else "default parallel"
        print(
            f"cold build, 31 images with a {args.run_seconds:g} s RUN each, "
            f"{args.reps} runs each (median):"
        )
        print(gp.line(f"buildkit-tasks inv image.build ({label})", t_ours))
        print(gp.line("docker buildx bake --load", t_bake))
        print(
            f"  ratio ours / bake: {o / b:.2f}  (target <= 1.05: "
            f"{'met' if o / b <= 1.05 else 'NOT met'})"
        )
        gp.remove_images()


if __name__ == "__main__":
    main()

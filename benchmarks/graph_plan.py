"""Planning a platform-sized tree: ``inv image.graph`` on the 164-image, 178-Dockerfile tree of
tests/fixtures/platform.py (discovery by label, local-only bases, heredocs...) against
``docker buildx bake --print`` of the same 164 targets and their contexts, in the same run.

bake's ``--print`` only reads its own definition (someone had to write it: the 164 targets and
every ``contexts`` entry); ours finds, parses and links the Dockerfiles. Also printed: our
planning in-process (no interpreter start).

Usage: .venv/bin/python benchmarks/graph_plan.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graphproject import timed  # noqa: E402  (benchmarks/ is on sys.path as the script's folder)

from tests.fixtures import platform  # noqa: E402


def bake_file(tree: platform.Platform) -> dict:
    def key(name: str) -> str:  # bake target names are [a-zA-Z0-9_-]+
        return name.replace(".", "_")

    targets = {}
    for name, image in tree.images.items():
        t: dict = {"context": image.folder, "tags": [f"{platform.REGISTRY}/{name}:0.5.0"]}
        if image.deps:
            t["contexts"] = {f"local-only/{d}": f"target:{key(d)}" for d in sorted(image.deps)}
        targets[key(name)] = t
    return {"group": {"default": {"targets": list(targets)}}, "target": targets}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args()
    from buildkit_tasks import config
    from buildkit_tasks.graph import project_graph

    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp:
        tree = platform.make(Path(tmp))
        (tree.root / "docker-bake.json").write_text(json.dumps(bake_file(tree)))
        ours_argv = [sys.executable, "-m", "invoke", "image.graph", "--format", "json"]
        bake_argv = ["docker", "buildx", "bake", "--print", "--file", "docker-bake.json"]
        ours, bake, inproc = [], [], []
        for _ in range(args.runs):  # interleaved, so machine noise hits both alike
            ours.append(timed(ours_argv, tree.root))
            bake.append(timed(bake_argv, tree.root))
            start = time.perf_counter()
            graph = project_graph(config.load(tree.root))
            inproc.append(time.perf_counter() - start)
        assert len(graph.nodes) == 164
    o, b, i = (statistics.median(x) for x in (ours, bake, inproc))
    print(f"platform tree: 164 images, {sum(len(x.deps) for x in tree.images.values())} edges")
    for label, value, runs in (
        ("inv image.graph (process)", o, ours),
        ("docker buildx bake --print", b, bake),
        ("planning in-process (warm)", i, inproc),
    ):
        print(f"  {label:<32} {value:6.3f} s   runs: {' '.join(f'{x:.3f}' for x in runs)}")
    print(f"ratio ours/bake --print: {o / b:.2f}")


if __name__ == "__main__":
    main()

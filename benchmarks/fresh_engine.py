"""CI from a fresh engine: the whole graph is already in the registry, the engine has nothing
(no image of the graph, no build cache). buildkit-tasks' ``inv image.build`` (pulls every image
whose input key the registry holds) against ``docker buildx bake`` with a registry cache
(``cache-from type=registry``, written by an earlier bake with ``cache-to ...,mode=max``), in the
same run, on a platform-shaped graph (benchmarks' tests/fixtures/buildable_platform.py).

    python benchmarks/fresh_engine.py [--scale N] [--reps N]

``--scale 4`` (default) gives 40 images (10 roots); ``--scale 16`` the full 164. The bake runs in
chunks of 40 targets (one bake of 164 does not finish on Engine 26: platform_scale.py).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import graphproject as gp  # noqa: E402
from platform_scale import bake, run  # noqa: E402

from tests.fixtures import buildable_platform as pg  # noqa: E402

CHUNK = 40


def bake_with_cache(graph: pg.Graph, write: bool) -> tuple[float, str]:
    """The peer, in chunks: every target reads (and with ``write`` also writes) its registry
    cache ``<REGISTRY>-bake/<name>:buildcache``."""

    def with_cache(data: dict, names: list[str]) -> None:
        for name in names:
            t = data["target"][pg.key(name)]
            ref = f"{pg.REGISTRY}-bake/{name}:buildcache"
            t["cache-from"] = [f"type=registry,ref={ref}"]
            if write:
                t["cache-to"] = [f"type=registry,ref={ref},mode=max"]

    chunks = [graph.order[i : i + CHUNK] for i in range(0, len(graph.order), CHUNK)]
    return bake(graph, chunks, "cache", with_cache)


def fresh() -> None:
    gp.remove_images((f"{pg.REGISTRY}/", f"{pg.REGISTRY}-bake/"))
    gp.prune_build_cache()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=4, help="images per family of 10 (16: 164)")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    n = args.scale
    with tempfile.TemporaryDirectory(prefix="bench-fresh-") as tmp:
        graph = pg.make(
            Path(tmp) / "platform",
            salt=uuid.uuid4().hex,
            roots=int(2.5 * n),
            services=int(3.125 * n),
            plugins=int(2.5 * n),
            jobs=int(2.125 * n),
        )
        print(f"graph: {len(graph.order)} images; filling the registry (ours and the peer's)")
        took, err = run([sys.executable, "-m", "invoke", "image.push"], graph.root)
        if err:
            sys.exit(f"benchmark: inv image.push failed: {err}")
        took, err = bake_with_cache(graph, write=True)
        if err:
            sys.exit(f"benchmark: bake with cache-to failed: {err}")
        t_ours, t_bake = [], []
        for _ in range(args.reps):
            fresh()
            took, err = run([sys.executable, "-m", "invoke", "image.build"], graph.root)
            if err:
                sys.exit(f"benchmark: inv image.build failed: {err}")
            t_ours.append(took)
            fresh()
            took, err = bake_with_cache(graph, write=False)
            if err:
                sys.exit(f"benchmark: bake with cache-from failed: {err}")
            t_bake.append(took)
        print(f"fresh engine, {len(graph.order)} images in the registry, {args.reps} runs each:")
        print(gp.line("buildkit-tasks inv image.build (pulls)", t_ours))
        print(gp.line("bake, cache-from type=registry", t_bake))
        o, b = statistics.median(t_ours), statistics.median(t_bake)
        print(f"  ratio ours / bake: {o / b:.2f}")
        fresh()


if __name__ == "__main__":
    main()

"""A build-able platform-shaped image graph for benchmarks and tests: 40 roots, chains four
deep (root <- service <- plugin <- job), 164 images, dotted and long names such as
``base-python-cpu-3.10``, and multi-stage ``COPY --from=<other image>`` edges, all made from a
static busybox (nothing is pulled). Described for buildkit-tasks (``pyproject.toml``) and for
``docker buildx bake`` (:func:`bake_file`: the definition someone would write by hand)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

STATE = Path(os.environ.get("BUILDKIT_SETUP_STATE", "/var/lib/buildkit-tasks-setup"))
BUSYBOX = STATE / "busybox" / "amd64" / "busybox"
REGISTRY = "localhost:5000/platform"
VERSION = "0.9.0"

FAMILIES = ["python-cpu", "python-gpu", "node", "java", "go"]


@dataclass(frozen=True)
class Graph:
    root: Path
    order: list[str]  # build order
    deps: dict[str, list[str]]  # image -> the project images it builds on or copies from
    levels: list[list[str]]


def _names(roots: int, services: int, plugins: int, jobs: int) -> list[list[str]]:
    level0 = [
        f"base-{FAMILIES[i % len(FAMILIES)]}-3.{8 + i // len(FAMILIES)}" for i in range(roots)
    ]
    level1 = [f"service.{i:02d}-processing-{level0[i % roots]}" for i in range(services)]
    level2 = [f"plugin-{i:02d}.v2" for i in range(plugins)]
    level3 = [f"job_{i:02d}-extract-metadata-and-convert-to-nifti" for i in range(jobs)]
    return [level0, level1, level2, level3]


def make(
    root: Path,
    salt: str = "",
    roots: int = 40,
    services: int = 50,
    plugins: int = 40,
    jobs: int = 34,
) -> Graph:
    """Write the graph's project under ``root`` (replacing it). ``salt`` goes into every
    root's RUN step, so a new salt means nothing is cached."""
    if not BUSYBOX.is_file():
        sys.exit(f"benchmark: {BUSYBOX} is missing; run scripts/setup.sh first")
    if root.exists():
        shutil.rmtree(root)
    levels = _names(roots, services, plugins, jobs)
    deps: dict[str, list[str]] = {}
    files: dict[str, str] = {}
    for name in levels[0]:
        deps[name] = []
        files[name] = (
            "FROM scratch\nCOPY busybox /bin/busybox\n"
            f'RUN ["/bin/busybox", "sh", "-c", "echo {name} {salt} > /id"]\n'
        )
    for depth in (1, 2, 3):
        below = levels[depth - 1]
        for i, name in enumerate(levels[depth]):
            parent = below[i % len(below)]
            deps[name] = [parent]
            text = f"FROM {parent}\n"
            if i % 3 == 0:  # a multi-stage edge: a file copied from another project image
                other = below[(i + 1) % len(below)]
                if other != parent:
                    deps[name].append(other)
                    text += f"COPY --from={other} /id /from-{depth}\n"
            text += f'RUN ["/bin/busybox", "sh", "-c", "echo {name} >> /id"]\n'
            files[name] = text
    table = [
        "[project]",
        f'version = "{VERSION}"',
        "[tool.buildkit]",
        f'registry = "{REGISTRY}"',
    ]
    for name, text in files.items():
        folder = root / "images" / name
        folder.mkdir(parents=True)
        (folder / "Dockerfile").write_text(text)
        if name in levels[0]:
            shutil.copy2(BUSYBOX, folder / "busybox")
        table += [f'[tool.buildkit.images."{name}"]', f'context = "images/{name}"']
    (root / "pyproject.toml").write_text("\n".join(table) + "\n")
    (root / "tasks.py").write_text("from buildkit_tasks import ns  # noqa: F401\n")
    order = [n for level in levels for n in level]
    return Graph(root, order, deps, levels)


def key(name: str) -> str:
    """A bake target key for ``name`` (bake takes ``[a-zA-Z0-9_-]+``)."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def tags(name: str) -> list[str]:
    """What the peer tags each image: the version and latest, as buildkit-tasks does."""
    return [f"{REGISTRY}-bake/{name}:{VERSION}", f"{REGISTRY}-bake/{name}:latest"]


def bake_file(graph: Graph, names: list[str], built: set[str]) -> dict:
    """A bake definition of ``names``: a dependency among them is a ``target:`` context, one
    in ``built`` (loaded by an earlier bake) the local image's tag."""
    inside = set(names)
    targets = {}
    for name in names:
        t: dict = {"context": f"images/{name}", "tags": tags(name), "output": ["type=docker"]}
        contexts = {}
        for dep in graph.deps[name]:
            if dep in inside:
                contexts[dep] = f"target:{key(dep)}"
            elif dep in built:
                contexts[dep] = f"docker-image://{tags(dep)[0]}"
            else:
                raise ValueError(f"{name} needs {dep}, neither in this bake nor built")
        if contexts:
            t["contexts"] = contexts
        targets[key(name)] = t
    return {"group": {"default": {"targets": list(targets)}}, "target": targets}


def write_bake(graph: Graph, names: list[str], built: set[str], file: str) -> Path:
    path = graph.root / file
    path.write_text(json.dumps(bake_file(graph, names, built), indent=1))
    return path


def dependents(graph: Graph, name: str) -> list[str]:
    """``name`` and every image building on it, in build order."""
    hit = {name}
    for n in graph.order:
        if any(d in hit for d in graph.deps[n]):
            hit.add(n)
    return [n for n in graph.order if n in hit]

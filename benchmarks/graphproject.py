"""A benchmark project: 1 base + N dependents made from static busybox, with a Dockerfile
``RUN`` of a given length each, described both for buildkit-tasks (``pyproject.toml``) and for
``docker buildx bake`` (``docker-bake.json``, dependents using ``target:base`` contexts)."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

STATE = Path(os.environ.get("BUILDKIT_SETUP_STATE", "/var/lib/buildkit-tasks-setup"))
BUSYBOX = STATE / "busybox" / "amd64" / "busybox"


def make(
    root: Path,
    dependents: int = 30,
    run_seconds: float = 1.0,
    salt: str = "",
    version: str = "0.0.0",
) -> Path:
    """Write the project under ``root``; returns ``root``. ``salt`` makes its keys unique;
    ``version`` is the tag both tools give (the project is not a git checkout)."""
    if not BUSYBOX.is_file():
        sys.exit(f"benchmark: {BUSYBOX} is missing; run scripts/setup.sh first")
    if root.exists():
        shutil.rmtree(root)
    (root / "base").mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "base" / "busybox")
    (root / "base" / "Dockerfile").write_text(
        "FROM scratch\nCOPY busybox /bin/busybox\n"
        f'RUN ["/bin/busybox", "sh", "-c", "/bin/busybox sleep {run_seconds}; echo {salt}"]\n'
    )
    names = [f"app{i:02d}" for i in range(1, dependents + 1)]
    for name in names:
        (root / name).mkdir()
        (root / name / "Dockerfile").write_text(
            f'FROM base\nRUN ["/bin/busybox", "sh", "-c", '
            f'"/bin/busybox sleep {run_seconds}; echo {name} {salt} > /id"]\n'
        )
    table = [
        "[project]",
        f'version = "{version}"',
        "[tool.buildkit]",
        'registry = "localhost:5000/bench-ours"',
    ]
    for name in ["base", *names]:
        table += [f"[tool.buildkit.images.{name}]", f'context = "{name}"']
    (root / "pyproject.toml").write_text("\n".join(table) + "\n")
    (root / "tasks.py").write_text("from buildkit_tasks import ns  # noqa: F401\n")

    # The peer does the same work: two tags per image, as buildkit-tasks gives each image
    # (its version and latest).
    def tags(n: str) -> list[str]:
        return [f"localhost:5000/bench-bake/{n}:{version}", f"localhost:5000/bench-bake/{n}:latest"]

    bake = {
        "group": {"default": {"targets": ["base", *names]}},
        "target": {
            "base": {"context": "base", "tags": tags("base")},
            **{
                n: {"context": n, "contexts": {"base": "target:base"}, "tags": tags(n)}
                for n in names
            },
        },
    }
    (root / "docker-bake.json").write_text(json.dumps(bake, indent=2))
    return root


def ours(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "invoke", "image.build", *args]


def bake(root: Path) -> list[str]:
    return ["docker", "buildx", "bake", "--file", str(root / "docker-bake.json"), "--load"]


def timed(argv: list[str], cwd: Path) -> float:
    """Wall seconds of one run of ``argv``; exits the benchmark if the run fails."""
    start = time.perf_counter()
    res = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if res.returncode != 0:
        sys.exit(f"benchmark: {' '.join(argv)} failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    return elapsed


def remove_images(
    prefixes: tuple[str, ...] = ("localhost:5000/bench-ours/", "localhost:5000/bench-bake/"),
) -> None:
    refs = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    # the aliases buildkit-tasks keeps between runs hold images too: a cold start has none
    from buildkit_tasks.engines.docker import ALIAS_REGISTRY

    refs = [r for r in refs if r.startswith((*prefixes, f"{ALIAS_REGISTRY}/"))]
    if not refs:
        return
    # Engine 26's containerd store takes ~2 s of engine CPU per `docker rmi` on a store of a
    # few hundred images (minutes per cleaning); where the engine's own containerd is here, its
    # image records are removed there (what the engine's image store is), and containerd's
    # garbage collector drops what no image holds any more.
    from buildkit_tasks.engines import containerd

    address = containerd.engine_socket() if containerd.local_engine(os.environ) else None
    names = [n for n in (containerd.store_name(r) for r in refs) if n]
    if address and shutil.which("ctr") and len(names) == len(refs):
        for i in range(0, len(names), 200):
            argv = containerd.images_argv(address, "rm", *names[i : i + 200])
            subprocess.run(argv, capture_output=True, check=False)
        return
    subprocess.run(["docker", "rmi", "--force", *refs], capture_output=True, check=False)


def prune_build_cache() -> None:
    subprocess.run(
        ["docker", "buildx", "prune", "--all", "--force"], capture_output=True, check=True
    )


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def line(label: str, runs: list[float]) -> str:
    """``  <label>  <median> s   runs: ...`` for one tool's timings."""
    return f"  {label:<44} {median(runs):6.2f} s   runs: " + " ".join(f"{x:.2f}" for x in runs)

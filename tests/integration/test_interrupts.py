"""Interrupt soak (issue 14): Ctrl-C at random moments of real runs, planning, bake,
per-image builds, pushes, archive export and helm packaging, 30 times or more. Every
interrupted run must exit 130 within ``stop_grace`` + 3 s with one line and no traceback,
leave nothing half-written in ``dist/`` and no process of ours (nor a RUN step of its build)
behind."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from .conftest import Project, boot_seconds, run_steps_left, tags_in

GRACE = 5.0  # the default stop_grace
INTERRUPTS = 30


@dataclass(frozen=True)
class Phase:
    name: str
    argv: tuple[str, ...]
    delay: tuple[float, float]  # seconds after the task began, drawn uniformly
    rebuild: bool  # change the worker's RUN step first, so the build cannot be cached
    fresh_registry: bool = False  # push to a new repository prefix: built locally, not pushed


PHASES = [
    Phase("planning", ("image.build",), (0.0, 0.3), True),
    Phase("bake", ("image.build",), (1.0, 3.0), True),
    Phase("per-image build", ("image.build", "--no-batch"), (1.0, 3.0), True),
    Phase("push", ("image.push",), (0.5, 3.0), False, fresh_registry=True),
    Phase("archive", ("archive.export", "--compression", "zstd"), (0.8, 2.5), False),
    Phase("helm", ("helm.package",), (0.0, 0.3), False),
]


def ours(project: Project, marker: str) -> list[str]:
    """Processes still running that belong to this run: anything naming the project
    directory, or the RUN step carrying ``marker``."""
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [
        ln
        for ln in ps.splitlines()[1:]
        if (str(project.path) in ln or marker in ln) and "ps -eo" not in ln
    ]


def half_written(dist: Path) -> list[str]:
    """Temporary files left in ``dist`` (atomic writes use ``.<name>.<random>.tmp``) and a
    report that does not parse."""
    bad = [str(p) for p in dist.rglob("*") if p.name.endswith(".tmp") or ".helm-" in p.name]
    report = dist / "build-report.json"
    if report.exists():
        try:
            assert isinstance(json.loads(report.read_text()), dict)
        except (ValueError, AssertionError):
            bad.append(f"{report} does not parse")
    return bad


def test_ctrl_c_at_random_moments_always_ends_cleanly(project: Project, registry: str) -> None:
    rng = random.Random(int(os.environ.get("SOAK_SEED", "14")))
    worker = project.path / "images" / "worker" / "Dockerfile"
    original = worker.read_text()
    # a layer big enough that docker save and zstd take a while (archive phase)
    (project.path / "images" / "base" / "big.bin").write_bytes(rng.randbytes(48 << 20))
    base = project.path / "images" / "base"
    (base / "Dockerfile").write_text((base / "Dockerfile").read_text() + "COPY big.bin /big.bin\n")
    (base / ".dockerignore").write_text((base / ".dockerignore").read_text() + "\n!big.bin\n")
    worker.write_text(original + "RUN echo soak-warm && sleep 15\n")
    project.commit("soak fixture")
    project.inv("image.build")  # the archive and helm phases start from built images

    dist = project.path / "dist"
    done: dict[str, int] = {p.name: 0 for p in PHASES}
    finished_first = 0
    iteration = 0
    while sum(done.values()) < INTERRUPTS or min(done.values()) < 2:
        assert iteration < 3 * INTERRUPTS, f"too few runs were still going at the signal: {done}"
        phase = PHASES[iteration % len(PHASES)]
        iteration += 1
        marker = f"soak-{iteration}-{rng.randrange(1 << 30)}"
        if phase.rebuild:
            # long enough that a step left running outlives the check below
            worker.write_text(original + f"RUN echo {marker} && sleep 120\n")
        ns = f"soak-{uuid.uuid4().hex[:10]}"
        env = {"INVOKE_BUILDKIT_REGISTRY": f"{registry}/{ns}"} if phase.fresh_registry else {}
        proc = subprocess.Popen(
            [sys.executable, "-m", "invoke", *phase.argv],
            cwd=project.path,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # judged from the moment the task runs (it holds the project lock): a Ctrl-C during
        # the interpreter's and Invoke's own start-up is theirs (Invoke exits 1 then)
        lock = dist / ".buildkit.lock"
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            if lock.exists() and f"pid {proc.pid}:" in lock.read_text():
                break
            time.sleep(0.01)
        time.sleep(rng.uniform(*phase.delay))
        if proc.poll() is not None:  # it ended before the signal: no interrupt to judge
            out, err = proc.communicate()
            assert proc.returncode == 0, (phase.name, out, err)
            finished_first += 1
            continue
        sent = time.monotonic()
        signalled = boot_seconds()
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=GRACE + 3)
        except subprocess.TimeoutExpired:
            left = ours(project, marker)
            proc.kill()
            proc.communicate()
            raise AssertionError(
                f"{phase.name}: still running {GRACE + 3} s after Ctrl-C: {left}"
            ) from None
        took = time.monotonic() - sent
        assert "Traceback" not in err, (phase.name, err)
        assert half_written(dist) == [], (phase.name, half_written(dist))
        # no RUN step of this run or an earlier one (a push builds the last marker's step)
        assert run_steps_left("echo soak-", signalled) == [], phase.name
        assert ours(project, marker) == [], phase.name
        # the task had ended as the signal came: exit 0, or the interpreter stopped by the
        # signal while it was exiting (nothing on stderr, the work was done)
        if proc.returncode == 0 or (proc.returncode == -signal.SIGINT and not err.strip()):
            finished_first += 1
            continue
        assert proc.returncode == 130, (phase.name, proc.returncode, out, err)
        assert took <= GRACE + 3, (phase.name, took)
        assert err.strip().splitlines()[-1] == "buildkit: interrupted", (phase.name, err)
        if phase.fresh_registry:  # an interrupted atomic push leaves no tag of its run
            for name in ("base", "api", "worker"):
                assert tags_in(registry, f"{ns}/{name}") in (None, []), (name, out, err)
        done[phase.name] += 1
    print(f"interrupts per phase: {done}; runs that ended before the signal: {finished_first}")

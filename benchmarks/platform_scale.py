"""Platform scale: a 164-image graph (40 roots, chains four deep, dotted and long names,
``COPY --from`` edges; benchmarks/platformgraph.py) built by buildkit-tasks and by
``docker buildx bake`` in the same run.

    python benchmarks/platform_scale.py [--chunk N] [--reps N] [--cold-reps N] [--change-reps N]
                                         [--skip-cold]

Prints, each with its target from issue 15:
1. plan: ``inv image.graph`` with process start, and the plan in-process (target <= 0.3 s);
2. cold build (no image, build cache pruned before each): every bake setup, one bake of all
   164 targets, one bake per level, bakes of ``--chunk`` targets in build order (a setup that
   fails is printed with its error), then ours; then ours and the fastest setup that
   completed again, taking turns, each going first every other time (``--cold-reps`` runs
   each; the first cold build of a run is the slowest, so ours never takes that place), and
   the ratio of the medians (target <= 1.0);
3. unchanged rebuild: ours (target <= 1.5 s) against that bake setup run again (target: ours
   >= 15x faster), and the calls ours made, which must not grow with the image count: engine
   API requests, containerd image lists and docker commands of a real run (counted in-process,
   benchmarks/count_calls.py), and engine API requests when the engine is reached through a
   counting proxy socket (another engine for us: the engine lists every image);
4. one root changed: ours (only its dependents rebuild) against bake of that subgraph
   (target <= 1.1), ``--change-reps`` runs each, taking turns; each gets a change of its own,
   so neither reuses the other's build cache.

Every timed build starts once the engine is idle (BuildKit's garbage collection after the last
build done: :func:`settle`), whoever ran before it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import graphproject as gp  # noqa: E402  (benchmarks/ is on sys.path as the script's folder)

from tests.fixtures import buildable_platform as pg  # noqa: E402

ENGINE_SOCKET = "/var/run/docker.sock"
_REQUEST = re.compile(rb"(?:GET|POST|HEAD|PUT|DELETE) /\S* HTTP/1\.[01]\r\n")


class CountingProxy:
    """A unix socket in front of the engine's that counts HTTP requests (engine API calls)
    made through it; upgraded connections (buildx's gRPC) are passed on, not parsed."""

    def __init__(self, path: Path) -> None:
        self.path, self.count, self._lock = path, 0, threading.Lock()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            engine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            engine.connect(ENGINE_SOCKET)
            threading.Thread(target=self._pump, args=(client, engine, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(engine, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, requests: bool) -> None:
        try:
            while data := src.recv(65536):
                if requests:
                    with self._lock:
                        self.count += len(_REQUEST.findall(data))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._server.close()


def _engine_ticks() -> int:
    """CPU time (clock ticks) dockerd and containerd have used so far."""
    total = 0
    for name in ("dockerd", "containerd"):
        pids = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout
        for pid in pids.split():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total


def settle(quiet: float = 0.5, limit: float = 15.0) -> None:
    """Wait (at most ``limit`` seconds) until the engine has used no CPU for ``quiet`` seconds.
    BuildKit collects its garbage ~1 s after a build ends (here ~1-1.5 s of engine CPU): left
    alone, that lands in whichever run comes next, ours or bake's."""
    end, last = time.monotonic() + limit, _engine_ticks()
    while time.monotonic() < end:
        time.sleep(quiet)
        now = _engine_ticks()
        if now == last:
            return
        last = now


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, str]:
    """(wall seconds, '' or the failure's last line) of one run of ``argv``. Python may
    cache bytecode (``PYTHONDONTWRITEBYTECODE`` is dropped), as it does for an installed
    wheel: otherwise every run compiles our modules again (~0.15 s), which no user pays."""
    env = dict(env or os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    start = time.perf_counter()
    res = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env)
    took = time.perf_counter() - start
    if res.returncode != 0:
        lines = (res.stderr or res.stdout).strip().splitlines() or ["(no output)"]
        return took, lines[-1][:160]
    return took, ""


def ours(graph: pg.Graph, *args: str, env: dict[str, str] | None = None) -> float:
    took, err = run([sys.executable, "-m", "invoke", "image.build", *args], graph.root, env)
    if err:
        sys.exit(f"benchmark: inv image.build failed: {err}")
    return took


def bake_setups(graph: pg.Graph, chunk: int) -> dict[str, list[list[str]]]:
    """Each bake setup as its consecutive bakes (lists of images, in build order)."""
    return {
        "one bake of all targets": [graph.order],
        "one bake per level": graph.levels,
        f"bakes of {chunk} targets": [
            graph.order[i : i + chunk] for i in range(0, len(graph.order), chunk)
        ],
    }


def bake(
    graph: pg.Graph,
    bakes: list[list[str]],
    label: str,
    edit: Callable[[dict, list[str]], None] | None = None,
) -> tuple[float, str]:
    """Run the setup's bakes one after another; (seconds, '' or the error). ``edit`` may
    change each bake definition (its dict, its images) before it runs."""
    built: set[str] = set()
    total = 0.0
    stem = re.sub(r"\W", "", label)
    for i, names in enumerate(bakes):
        data = pg.bake_file(graph, names, built)
        if edit is not None:
            edit(data, names)
        path = graph.root / f"bake-{stem}-{i}.json"
        path.write_text(json.dumps(data, indent=1))
        took, err = run(["docker", "buildx", "bake", "--file", str(path)], graph.root)
        total += took
        if err:
            return total, err
        built.update(names)
    return total, ""


def clean(prune: bool = True) -> None:
    gp.remove_images((f"{pg.REGISTRY}/", f"{pg.REGISTRY}-bake/"))
    if prune:
        gp.prune_build_cache()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunk", type=int, default=40, help="targets per bake in the chunked setup")
    ap.add_argument("--reps", type=int, default=3, help="runs of each timed no-op (median)")
    ap.add_argument(
        "--cold-reps",
        type=int,
        default=3,
        help="cold builds of ours and of the fastest bake setup, taking turns (median)",
    )
    ap.add_argument(
        "--change-reps",
        type=int,
        default=7,
        help="one-root-changed builds of ours and of bake, taking turns (median; step 4)",
    )
    ap.add_argument(
        "--skip-cold",
        action="store_true",
        help="leave out the cold builds (step 2); steps 3 and 4 compare with the chunked bakes",
    )
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory(prefix="bench-platform-") as tmp:
        graph = pg.make(Path(tmp) / "platform", salt=uuid.uuid4().hex)
        edges = sum(len(d) for d in graph.deps.values())
        print(
            f"platform graph: {len(graph.order)} images, {len(graph.levels[0])} roots, "
            f"{edges} edges, {len(graph.levels)} levels"
        )

        # 1. plan
        graph_argv = [sys.executable, "-m", "invoke", "image.graph"]
        # untimed first: a fresh clone compiles its modules' bytecode once (~0.25 s; pip does
        # that at install time)
        run(graph_argv, graph.root)
        plans = [run(graph_argv, graph.root)[0] for _ in range(3)]
        from buildkit_tasks import buildplan, config

        t0 = time.perf_counter()
        settings = config.load(graph.root)
        buildplan.make(settings)
        in_process = time.perf_counter() - t0
        print("1. plan")
        print(gp.line("inv image.graph (with process start)", plans))
        print(f"  {'plan in-process (config + graph + versions)':<44} {in_process:6.2f} s")
        print(f"  target <= 0.3 s: {'met' if statistics.median(plans) <= 0.3 else 'NOT met'}")

        # 2. cold
        fastest = f"bakes of {args.chunk} targets"
        if not args.skip_cold:
            print("2. cold build")
            # the first cold build of a run is the slowest (here 87 s against 65-84 s for the
            # same code after it): the bake setups go first, ours after them, and later turns
            # alternate which of ours and the fastest setup comes first
            results: dict[str, float] = {}
            for label, bakes in bake_setups(graph, args.chunk).items():
                clean()
                settle()
                took, err = bake(graph, bakes, label)
                if err:
                    print(f"  {'bake: ' + label:<44} failed after {took:.2f} s: {err}")
                else:
                    results[label] = took
                    print(f"  {'bake: ' + label:<44} {took:6.2f} s")
            clean()
            settle()
            t_ours = ours(graph)
            print(f"  {'buildkit-tasks inv image.build':<44} {t_ours:6.2f} s")
            if not results:
                print("  no bake setup completed; no ratio")
                return
            fastest = min(results, key=lambda k: results[k])
            # one cold build of each varies by 10-15 % from run to run on a shared 2-core
            # machine: ours and the fastest setup again, taking turns, medians compared
            ours_runs, bake_runs = [t_ours], [results[fastest]]
            for i in range(args.cold_reps - 1):
                for who in ("ours", "bake") if i % 2 else ("bake", "ours"):
                    clean()
                    settle()
                    if who == "ours":
                        ours_runs.append(ours(graph))
                        continue
                    took, err = bake(graph, bake_setups(graph, args.chunk)[fastest], fastest)
                    if err:
                        sys.exit(f"benchmark: bake ({fastest}) failed on a later run: {err}")
                    bake_runs.append(took)
            print(gp.line("buildkit-tasks inv image.build", ours_runs))
            print(gp.line(f"bake: {fastest}", bake_runs))
            ratio = statistics.median(ours_runs) / statistics.median(bake_runs)
            print(
                f"  ratio ours / fastest bake ({fastest}), medians: {ratio:.2f}  "
                f"(target <= 1.0: {'met' if ratio <= 1.0 else 'NOT met'})"
            )

        # 3. unchanged: everything is built by both (the fastest bake setup ran last? rerun it)
        print("3. unchanged rebuild")
        bakes = bake_setups(graph, args.chunk)[fastest]
        bake(graph, bakes, fastest)  # make sure the peer's images are all there
        ours(graph)  # and ours (the bake runs may have evicted nothing, but be sure)
        t_noop, b_noop = [], []
        for _ in range(args.reps):
            settle()
            t_noop.append(ours(graph))
        for _ in range(args.reps):
            settle()
            b_noop.append(bake(graph, bakes, fastest)[0])
        counter = [sys.executable, str(Path(__file__).with_name("count_calls.py")), "image.build"]
        counted = subprocess.run(counter, cwd=graph.root, capture_output=True, text=True)
        last = (counted.stderr.strip().splitlines() or [""])[-1]
        if counted.returncode != 0 or not last.startswith("calls "):
            sys.exit(f"benchmark: counting the calls failed: {last[:160]}")
        local = json.loads(last.removeprefix("calls "))
        proxy_path = Path(tmp) / "engine.sock"
        proxy = CountingProxy(proxy_path)
        env = {**os.environ, "DOCKER_HOST": f"unix://{proxy_path}"}
        ours(graph, env=env)
        proxy.close()
        calls = proxy.count
        o, b = statistics.median(t_noop), statistics.median(b_noop)
        print(gp.line("buildkit-tasks inv image.build", t_noop))
        print(gp.line(f"bake: {fastest}", b_noop))
        print(
            f"  ours {o:.2f} s (target <= 1.5 s: {'met' if o <= 1.5 else 'NOT met'}); "
            f"bake / ours: {b / o:.1f}x (target >= 15x: {'met' if b / o >= 15 else 'NOT met'})"
        )
        print(
            f"  calls of ours for {len(graph.order)} unchanged images: {local['api']} engine API "
            f"requests ({local['image_lists']} image lists), {local['ctr']} containerd image "
            f"list (ctr), {local['docker']} docker "
            f"commands; through a proxy socket (another engine: no containerd path) {calls} "
            "engine API requests"
        )

        # 4. one root changed
        print("4. one root changed")
        root = graph.levels[0][0]
        sub = pg.dependents(graph, root)
        dockerfile = graph.root / "images" / root / "Dockerfile"
        original = dockerfile.read_text()
        # each tool gets its own change: the second must not find the first's build cache
        rest = set(graph.order) - set(sub)
        path = pg.write_bake(graph, sub, rest, "bake-subgraph.json")
        t_one, t_sub = [], []
        # taking turns, a change of its own each time, each on an engine done with the last
        for i in range(args.change_reps):
            dockerfile.write_text(original.replace("> /id", f"changed-for-ours-{i} > /id"))
            settle()
            t_one.append(ours(graph))
            dockerfile.write_text(original.replace("> /id", f"changed-for-bake-{i} > /id"))
            settle()
            took, err = run(["docker", "buildx", "bake", "--file", str(path)], graph.root)
            if err:
                sys.exit(f"benchmark: bake of the subgraph failed: {err}")
            t_sub.append(took)
        print(f"  {root} and its {len(sub) - 1} dependents")
        print(gp.line("buildkit-tasks inv image.build", t_one))
        print(gp.line("bake of that subgraph", t_sub))
        r = statistics.median(t_one) / statistics.median(t_sub)
        print(
            f"  ratio ours / bake, medians: {r:.2f}  "
            f"(target <= 1.1: {'met' if r <= 1.1 else 'NOT met'})"
        )
        clean(prune=False)


if __name__ == "__main__":
    main()

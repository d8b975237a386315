"""Per-platform fan-out of an image push over build hosts.

``image.push --platform linux/amd64,linux/arm64 --hosts a,b``: each platform is given to a
host whose ``platforms`` include it (:func:`assign`); every host builds the whole graph for its
platforms natively, with its own engine over SSH (:func:`hosts.engine_over_ssh`), and pushes
each image by digest only (:func:`images.build_images` with ``tag=False``); then one manifest
list per image is made from the hosts' digests under its version and ``latest`` tags with
``docker buildx imagetools create`` (the pattern Docker documents for distributed
multi-platform builds). Hosts build at once, one thread each; the engine each thread talks to
is its own (:func:`engines.docker.engine_at` is per context).

A host that fails (unreachable, a build failing there) fails its platforms of the images it
could not push, and those images, each naming the host and platform; with ``atomic`` (the
default) no tag is made then, as in an atomic push on one engine.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from . import hosts as build_hosts
from . import images, publishing
from .buildplan import BuildPlan
from .config import HostSpec, Settings
from .console import emit
from .engines import docker
from .errors import BuildkitError, CommandError, ConfigError
from .images import ImageResult
from .runner import Runner
from .scheduler import Status


@dataclass(frozen=True)
class Share:
    """What one host builds: its share of the asked ``platforms``."""

    host: HostSpec
    platforms: tuple[str, ...]


def assign(platforms: Sequence[str], hosts: Sequence[HostSpec]) -> list[Share]:
    """Give each of ``platforms`` to one of ``hosts`` whose ``platforms`` include it: of
    those, the one given the fewest so far (ties: the first named). Returns the hosts that got
    work, in the order named. Raises ConfigError when no platform was asked or a platform has
    no host."""
    if not platforms:
        raise ConfigError(
            "--hosts: name the platforms to spread with --platform (or config 'platforms')"
        )
    load: dict[str, list[str]] = {h.name: [] for h in hosts}
    for p in platforms:
        able = [h for h in hosts if p in h.platforms]
        if not able:
            known = "; ".join(f"{h.name}: {', '.join(h.platforms) or 'none set'}" for h in hosts)
            raise ConfigError(
                f"--platform {p}: no host of --hosts builds it (their platforms: {known})"
            )
        best = min(able, key=lambda h: len(load[h.name]))
        load[best.name].append(p)
    return [Share(h, tuple(load[h.name])) for h in hosts if load[h.name]]


@dataclass
class HostRun:
    """One host's part: its results by image name, or ``error`` when the host could not be
    used at all (unreachable, no engine)."""

    share: Share
    results: dict[str, ImageResult] = field(default_factory=dict)
    error: str | None = None

    @property
    def where(self) -> str:
        return f"{', '.join(self.share.platforms)} on host {self.share.host.name}"


def push(
    settings: Settings,
    plan: BuildPlan,
    runner: Runner,
    shares: Sequence[Share],
    *,
    force: bool = False,
    batch: bool = True,
    fail_fast: bool = False,
    atomic: bool = True,
) -> list[ImageResult]:
    """Push every image of ``plan`` as one manifest list made of what each share's host
    built (see the module docstring). ``runner``: its ``env`` (registry login) and settings
    are copied for every host. Each host's logs go to ``<output_dir>/hosts/<name>/logs/``.
    Returns one ImageResult per image in build order (``hosts``: platform -> host); failures
    are in the results, not raised. Raises KeyboardInterrupt after stopping every host's
    commands (``runner.stop_grace``)."""
    runners = [runner.sibling() for _ in shares]
    pool = ThreadPoolExecutor(max_workers=max(1, len(shares)))
    futures = [
        pool.submit(_host_push, settings, plan, share, r, force, batch, fail_fast)
        for share, r in zip(shares, runners, strict=True)
    ]
    try:
        wait(futures)
    except KeyboardInterrupt:
        for r in runners:
            r.terminate_all()
        wait(futures, timeout=runner.stop_grace + 3)
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return merge(settings, runner, plan, [f.result() for f in futures], atomic)


def _host_push(
    settings: Settings,
    plan: BuildPlan,
    share: Share,
    runner: Runner,
    force: bool,
    batch: bool,
    fail_fast: bool,
) -> HostRun:
    run = HostRun(share)
    here = dataclasses.replace(settings, output_dir=settings.output_dir / "hosts" / share.host.name)
    prefix = f"[{share.host.name} {','.join(share.platforms)}]"

    def done(result: ImageResult) -> None:
        emit(f"{prefix} {result.name}: {result.status} ({result.seconds:.1f}s)")

    try:
        with build_hosts.engine_over_ssh(share.host, settings) as env:
            runner.env.update(env)
            emit(f"{prefix} building on {share.host.address}")
            results = images.build_images(
                here,
                plan,
                runner,
                push=True,
                platforms=share.platforms,
                force=force,
                batch=batch,
                fail_fast=fail_fast,
                atomic=True,
                tag=False,
                on_done=done,
            )
    except BuildkitError as exc:
        run.error = str(exc)
        emit(f"{prefix} failed: {exc}", err=True)
        return run
    run.results = {r.name: r for r in results}
    return run


def _excluded(result: ImageResult) -> bool:
    """Whether the host skipped the image only because its ``platforms`` exclude them."""
    return result.status == Status.SKIPPED.value and "not in its platforms" in (result.error or "")


def merge(
    settings: Settings,
    runner: Runner,
    plan: BuildPlan,
    runs: Sequence[HostRun],
    atomic: bool = True,
) -> list[ImageResult]:
    """One result per image from the hosts' results: ``succeeded`` (``cached`` when no host
    had to build it) once every host that was to build it pushed its digest and its tags name
    the manifest list made from them (``docker buildx imagetools create``; with ``atomic``,
    only when no image failed);
    ``failed`` naming each host and platform that did not push it; ``skipped`` when every host
    skipped it."""
    merged: list[ImageResult] = []
    sources: dict[str, list[str]] = {}
    for name in plan.graph.order():
        problems: list[str] = []
        digests: list[str] = []
        where: dict[str, str] = {}
        seconds = 0.0
        skipped = 0
        built = False
        for run in runs:
            r = run.results.get(name)
            if run.error is not None or r is None:
                problems.append(f"{run.where}: {run.error or 'not built'}")
                continue
            seconds = max(seconds, r.seconds)
            if _excluded(r):
                skipped += 1
            elif r.status in (Status.SUCCEEDED.value, Status.CACHED.value) and r.pushed:
                digests.extend(r.pushed.split(", "))
                built = built or r.status == Status.SUCCEEDED.value
                where.update(dict.fromkeys(r.platforms, run.share.host.name))
            else:
                see = f"; log: {r.log}" if r.log else ""
                problems.append(f"{run.where}: {r.status}: {r.error or 'see its log'}{see}")
        status = Status.SUCCEEDED if built else Status.CACHED
        result = ImageResult(name, status.value, seconds=seconds, hosts=where or None)
        if problems:
            result.status, result.error = Status.FAILED.value, "; ".join(problems)
        elif skipped == len(runs):
            result.status, result.error = Status.SKIPPED.value, "skipped on every host"
        if digests:
            result.pushed = ", ".join(digests)
            result.tagged = False
        sources[name] = digests
        merged.append(result)
    if atomic and images.any_failed(merged):
        pushed = [r.pushed for r in merged if r.pushed]
        emit(
            "fan-out push: an image failed, so no tag of this run was made"
            + (f"; pushed by digest only: {', '.join(pushed)}" if pushed else ""),
            err=True,
        )
        return merged
    for result in merged:
        if result.status not in (Status.SUCCEEDED.value, Status.CACHED.value):
            continue
        tags = list(plan.images[result.name].references)
        log = None if runner.dry else settings.logs_dir / f"{result.name}.log"
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        try:
            docker.remote_tag(runner, sources[result.name], *tags, log=log)
            published = publishing.read(runner, tags[0])
        except CommandError as exc:
            result.status, result.error = Status.FAILED.value, f"manifest list failed: {exc}"
            continue
        result.seconds += time.monotonic() - started
        result.references, result.tagged = tags, True
        result.digest, result.platform_digests = published.digest, published.platform_digests
        result.attestations = published.attestations  # the hosts' provenance, merged
        result.platforms = sorted(published.platform_digests or ())
    return merged

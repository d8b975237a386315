"""Build the project's images: plan -> scheduler -> docker engine -> results.

Every image is tagged ``<registry>/<name>:<docker_tag>`` and ``:latest`` and carries OCI
labels. An image that builds on another project image gets it as a named build context naming this
run's result in the local image store under a run-unique alias (see
:data:`engines.docker.ALIAS_REGISTRY`), so it never comes from a registry.
"""

from __future__ import annotations

import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import cachekey, discovery, scheduler
from .config import ImageSpec, Settings
from .engines import docker
from .errors import BuildkitError
from .graph import ImageGraph, build_graph
from .runner import Runner
from .scheduler import Outcome, Status
from .versioning import VersionInfo

OCI = "org.opencontainers.image"


@dataclass
class ImageResult:
    """One image's outcome, as the report records it."""

    name: str
    status: str
    references: list[str] = field(default_factory=list)
    image_id: str = ""
    platforms: list[str] = field(default_factory=list)
    seconds: float = 0.0
    key: str | None = None
    log: str | None = None
    error: str | None = None
    log_tail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if v is not None}
        d["seconds"] = round(self.seconds, 3)
        return d


def plan(settings: Settings, names: Iterable[str] = ()) -> ImageGraph:
    """The graph of the project's images (configured and discovered), narrowed to ``names``
    and what they need (all when empty). Raises ConfigError."""
    graph = build_graph(settings, discovery.all_images(settings))
    names = list(names)
    return graph.select(names) if names else graph


def oci_labels(settings: Settings, info: VersionInfo, name: str) -> dict[str, str]:
    """The ``org.opencontainers.image.*`` labels for image ``name``."""
    labels = {
        f"{OCI}.title": name,
        f"{OCI}.version": info.version,
        f"{OCI}.created": info.build_date,
    }
    if info.commit:
        labels[f"{OCI}.revision"] = info.commit
    source = settings.source or git_remote(settings.root)
    if source:
        labels[f"{OCI}.source"] = source
    return labels


def git_remote(root: Path) -> str | None:
    """``git remote get-url origin`` in ``root``, or None."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "remote", "get-url", "origin"],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def platforms_for(spec: ImageSpec, requested: Iterable[str], default: Iterable[str]) -> list[str]:
    """The platforms to build ``spec`` for: ``requested`` (else ``default``, the config
    ``platforms``), narrowed by the image's own ``platforms``. Empty means the engine's own.

    Raises BuildkitError when the image allows none of the requested platforms.
    """
    wanted = list(requested) or list(default)
    allowed = spec.platforms
    if not allowed:
        return wanted
    if not wanted:
        return list(allowed)
    chosen = [p for p in wanted if p in allowed]
    if not chosen:
        raise BuildkitError(
            f"image {spec.name}: none of the platforms {', '.join(wanted)} is in its "
            f"platforms ({', '.join(allowed)})"
        )
    return chosen


def input_keys(
    graph: ImageGraph, platforms: dict[str, list[str]], workers: int = 8
) -> dict[str, str]:
    """Every image's input key (:mod:`.cachekey`): contexts hashed concurrently, then combined
    in dependency order. ``platforms`` maps each image to the platforms it is built for."""
    names = graph.order()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        digests = dict(
            zip(
                names,
                pool.map(
                    lambda n: cachekey.context_digest(
                        graph.nodes[n].spec.context, graph.nodes[n].spec.dockerfile
                    ),
                    names,
                ),
                strict=True,
            )
        )
    keys: dict[str, str] = {}
    for name in names:
        node = graph.nodes[name]
        keys[name] = cachekey.image_key(
            node.spec,
            platforms[name],
            {d: keys[d] for d in node.depends_on},
            context=digests[name],
        )
    return keys


@dataclass(frozen=True)
class CacheHit:
    """An image with the wanted input key: its ID (or registry digest), the tags already
    naming it, and whether it is in the local store (else only in the registry)."""

    image_id: str
    tags: tuple[str, ...]
    local: bool


def find_cached(runner: Runner, key: str, tags: list[str], push: bool) -> CacheHit | None:
    """Look for an image with input ``key`` under ``tags`` (version tag first, then latest):
    in the local store, or with ``push`` in the registry."""
    for ref in tags:
        if push:
            remote = docker.remote_image(runner, ref)
            if remote is not None and remote.labels.get(cachekey.KEY_LABEL) == key:
                local = docker.local_image(ref)
                in_store = local is not None and local.labels.get(cachekey.KEY_LABEL) == key
                return CacheHit(remote.digest, (ref,), in_store)
        else:
            image = docker.local_image(ref)
            if image is not None and image.labels.get(cachekey.KEY_LABEL) == key:
                return CacheHit(image.image_id, image.tags, True)
    return None


def build_images(
    settings: Settings,
    graph: ImageGraph,
    info: VersionInfo,
    runner: Runner,
    *,
    push: bool = False,
    platforms: Iterable[str] = (),
    workers: int | None = None,
    fail_fast: bool = False,
    force: bool = False,
    on_start: Callable[[str], None] | None = None,
    on_done: Callable[[ImageResult], None] | None = None,
) -> list[ImageResult]:
    """Build (and with ``push``, push) every image of ``graph`` in dependency order.

    First every image's input key is computed and looked up: an image whose key matches the
    local image under its tags (with ``push``: the image in the registry) is not rebuilt; its
    tags are pointed at that image and it is reported ``cached``. ``force`` rebuilds
    everything. Then the rest build, ``workers`` (default ``settings.parallel``) at once.
    Returns one ImageResult per image in build order; failures are in the results (status
    ``failed``/``skipped``), not raised.
    """
    requested = list(platforms)
    native = [] if runner.dry else [docker.engine_platform()]
    plats: dict[str, list[str]] = {}
    errors: dict[str, str] = {}
    for name, node in graph.nodes.items():
        try:
            plats[name] = platforms_for(node.spec, requested, settings.platforms)
        except BuildkitError as exc:
            plats[name], errors[name] = [], str(exc)
    keys = input_keys(graph, {n: p or native for n, p in plats.items()})
    hits: dict[str, CacheHit | None] = {}
    tags = {
        n: [settings.reference(n, info.docker_tag), settings.reference(n, "latest")]
        for n in graph.nodes
    }
    if not force and not runner.dry:
        candidates = [n for n in graph.nodes if n not in errors]
        with ThreadPoolExecutor(max_workers=16) as pool:
            found = pool.map(lambda n: find_cached(runner, keys[n], tags[n], push), candidates)
            hits = dict(zip(candidates, found, strict=True))
    if not runner.dry:
        settings.logs_dir.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.TemporaryDirectory(prefix="buildkit-iid-")
    run_id = uuid.uuid4().hex[:16]
    needed = {dep for node in graph.nodes.values() for dep in node.depends_on}
    sources: dict[str, str] = {}  # name -> what its dependents build from
    aliases: list[str] = []
    lock = threading.Lock()

    def use_as_dependency(name: str, in_local_store: bool) -> None:
        if name not in needed or runner.dry:
            return
        if in_local_store:
            alias = docker.alias_reference(name, run_id)
            docker.tag(tags[name][0], alias)
            with lock:
                aliases.append(alias)
            sources[name] = alias
        else:  # only the registry has it (push mode), and its key was checked there
            sources[name] = tags[name][0]

    def job(name: str) -> Any:
        if name in errors:
            raise BuildkitError(errors[name])
        node = graph.nodes[name]
        value = {"references": tags[name], "platforms": plats[name] or native, "key": keys[name]}
        hit = hits.get(name)
        if hit is not None:
            _point_tags(runner, hit, tags[name], push)
            use_as_dependency(name, hit.local)
            return Status.CACHED, {**value, "image_id": hit.image_id}
        req = docker.BuildRequest(
            context=node.spec.context,
            dockerfile=node.spec.dockerfile,
            tags=tags[name],
            labels={**oci_labels(settings, info, name), cachekey.KEY_LABEL: keys[name]},
            build_args=node.spec.build_args,
            target=node.spec.target,
            platforms=plats[name],
            contexts={ref: sources.get(dep, "") for ref, dep in node.local_refs.items()},
            push=push,
            iidfile=Path(tmp.name) / f"{name}.iid",
        )
        log = settings.logs_dir / f"{name}.log"
        if not runner.dry:
            log.write_text("")
        image_id = docker.build(runner, req, log)
        use_as_dependency(name, in_local_store=True)
        return {**value, "image_id": image_id}

    def done(outcome: Outcome) -> None:
        if on_done:
            on_done(to_result(settings, outcome))

    try:
        outcomes = scheduler.run_graph(
            graph.predecessors(),
            job,
            workers=workers or settings.parallel,
            fail_fast=fail_fast,
            on_start=on_start,
            on_done=done,
            on_interrupt=runner.terminate_all,
        )
    finally:
        tmp.cleanup()
        for alias in aliases:
            docker.untag(alias)
    return [to_result(settings, outcomes[n]) for n in graph.order()]


def _point_tags(runner: Runner, hit: CacheHit, tags: list[str], push: bool) -> None:
    """Make every one of ``tags`` name the cached image (locally, or in the registry)."""
    for ref in tags:
        if ref in hit.tags:
            continue
        if push:
            docker.remote_tag(runner, hit.tags[0], ref)
        else:
            docker.tag(hit.image_id, ref)


def to_result(settings: Settings, outcome: Outcome) -> ImageResult:
    value = outcome.value or {}
    log = settings.logs_dir / f"{outcome.name}.log"
    return ImageResult(
        name=outcome.name,
        status=outcome.status.value,
        references=value.get("references", []),
        image_id=value.get("image_id", ""),
        platforms=value.get("platforms", []),
        seconds=outcome.seconds,
        key=value.get("key"),
        log=str(log)
        if outcome.status in (Status.FAILED, Status.SUCCEEDED) and log.exists()
        else None,
        error=outcome.error,
        log_tail=outcome.detail or None,
    )


def failed(results: Iterable[ImageResult]) -> list[ImageResult]:
    """The results that are neither succeeded nor cached."""
    ok = (Status.SUCCEEDED.value, Status.CACHED.value)
    return [r for r in results if r.status not in ok]

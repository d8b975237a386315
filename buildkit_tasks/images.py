"""Build the project's images: plan -> scheduler -> docker engine -> results.

Every image is tagged ``<registry>/<name>:<docker_tag>`` and ``:latest`` and carries OCI
labels. An image that builds on another project image gets it as a named build context naming this
run's result in the local image store under a run-unique alias (see
:data:`engines.docker.ALIAS_REGISTRY`), so it never comes from a registry.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import scheduler
from .config import Settings
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
    log: str | None = None
    error: str | None = None
    log_tail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if v is not None}
        d["seconds"] = round(self.seconds, 3)
        return d


def plan(settings: Settings, names: Iterable[str] = ()) -> ImageGraph:
    """The graph of configured images, narrowed to ``names`` and what they need (all if empty)."""
    graph = build_graph(settings)
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


def platforms_for(settings: Settings, name: str, requested: Iterable[str]) -> list[str]:
    """The platforms to build image ``name`` for: ``requested`` (else config ``platforms``),
    narrowed by the image's own ``platforms``. Empty means the engine's own platform.

    Raises BuildkitError when the image allows none of the requested platforms.
    """
    wanted = list(requested) or list(settings.platforms)
    allowed = settings.images[name].platforms
    if not allowed:
        return wanted
    if not wanted:
        return list(allowed)
    chosen = [p for p in wanted if p in allowed]
    if not chosen:
        raise BuildkitError(
            f"image {name}: none of the platforms {', '.join(wanted)} is in its "
            f"platforms ({', '.join(allowed)})"
        )
    return chosen


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
    on_start: Callable[[str], None] | None = None,
    on_done: Callable[[ImageResult], None] | None = None,
) -> list[ImageResult]:
    """Build (and with ``push``, push) every image of ``graph`` in dependency order.

    ``workers`` defaults to ``settings.parallel``. Returns one ImageResult per image in build
    order; failures are in the results (status ``failed``/``skipped``), not raised.
    """
    requested = list(platforms)
    native = [] if runner.dry else [docker.engine_platform()]
    if not runner.dry:
        settings.logs_dir.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.TemporaryDirectory(prefix="buildkit-iid-")
    run_id = uuid.uuid4().hex[:16]
    needed = {dep for node in graph.nodes.values() for dep in node.depends_on}
    aliases: list[str] = []

    def job(name: str) -> dict[str, Any]:
        node = graph.nodes[name]
        plats = platforms_for(settings, name, requested)
        tag_ref = settings.reference(name, info.docker_tag)
        contexts = {
            ref: docker.alias_reference(dep, run_id) for ref, dep in node.local_refs.items()
        }
        req = docker.BuildRequest(
            context=node.spec.context,
            dockerfile=node.spec.dockerfile,
            tags=[tag_ref, settings.reference(name, "latest")],
            labels=oci_labels(settings, info, name),
            build_args=node.spec.build_args,
            target=node.spec.target,
            platforms=plats,
            contexts=contexts,
            push=push,
            iidfile=Path(tmp.name) / f"{name}.iid",
        )
        log = settings.logs_dir / f"{name}.log"
        if not runner.dry:
            log.write_text("")
        image_id = docker.build(runner, req, log)
        if name in needed and not runner.dry:
            docker.tag(tag_ref, docker.alias_reference(name, run_id))
            aliases.append(docker.alias_reference(name, run_id))
        return {"references": list(req.tags), "image_id": image_id, "platforms": plats or native}

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
        log=str(log) if log.exists() and outcome.status is not Status.SKIPPED else None,
        error=outcome.error,
        log_tail=outcome.detail or None,
    )


def failed(results: Iterable[ImageResult]) -> list[ImageResult]:
    """The results that are neither succeeded nor cached."""
    ok = (Status.SUCCEEDED.value, Status.CACHED.value)
    return [r for r in results if r.status not in ok]

"""``image`` namespace: ``image.build`` and ``image.push``."""

from __future__ import annotations

import sys

from invoke import Collection, Context

from .. import images, report
from ..errors import BuildFailed
from ..images import ImageResult
from .common import CONFIG_DEFAULTS, runner, settings, split_list, task, version

HELP = {
    "name": "Build only this image and what it depends on; repeat for several.",
    "platform": "Platform or comma-separated platforms, e.g. linux/amd64,linux/arm64 "
    "(default: config 'platforms', else the engine's own).",
    "parallel": "How many images build at once (default: config 'parallel', else CPU count).",
    "fail_fast": "Stop starting new builds after the first failure.",
}


def _print_start(name: str) -> None:
    print(f"image {name}: building", flush=True)


def _print_done(r: ImageResult) -> None:
    if r.status in ("succeeded", "cached"):
        print(f"image {r.name}: {r.status} in {r.seconds:.1f}s -> {r.references[0]}", flush=True)
    else:
        print(f"image {r.name}: {r.status}: {r.error}", file=sys.stderr, flush=True)


def print_summary(results: list[ImageResult]) -> None:
    """One line per image, and the last log lines of each failure."""
    width = max((len(r.name) for r in results), default=4)
    print("\nimages:")
    for r in results:
        ref = r.references[0] if r.references else (r.error or "")
        print(f"  {r.name:<{width}}  {r.status:<9}  {r.seconds:6.1f}s  {ref}")
    for r in results:
        if r.status == "failed" and r.log_tail:
            print(f"\n--- {r.name}: last lines of {r.log} ---\n{r.log_tail}", file=sys.stderr)


def run_build(
    c: Context,
    name: list[str] | None,
    platform: str | None,
    parallel: int | None,
    fail_fast: bool,
    push: bool,
) -> list[ImageResult]:
    """The body shared by image.build and image.push."""
    s = settings(c, parallel=parallel)
    info = version(s)
    graph = images.plan(s, name or [])
    r = runner(c)
    results = images.build_images(
        s,
        graph,
        info,
        r,
        push=push,
        platforms=split_list(platform),
        fail_fast=fail_fast,
        on_start=_print_start,
        on_done=_print_done,
    )
    print_summary(results)
    if not r.dry:
        report.update(s.report_path, info, images=[x.as_dict() for x in results])
    bad = images.failed(results)
    if bad:
        raise BuildFailed(
            f"{len(bad)} of {len(results)} images did not build: "
            + ", ".join(f"{x.name} ({x.status})" for x in bad)
            + f"; see {s.report_path}"
        )
    return results


@task(iterable=["name"], help=HELP)
def build(
    c: Context,
    name: list[str] | None = None,
    platform: str | None = None,
    parallel: int | None = None,
    fail_fast: bool = False,
) -> None:
    """Build every image of ``[tool.buildkit.images]`` with ``docker buildx build``, in
    dependency order, loaded into the local image store.

    Tags ``<registry>/<name>:<version>`` and ``:latest`` (``registry`` from config or
    ``INVOKE_BUILDKIT_REGISTRY``) with OCI labels. An image whose Dockerfile names another
    project image (``FROM base``, ``FROM <registry>/base:any``, ``COPY --from=base``) builds from
    this run's result of it. Per-image logs go to ``<output_dir>/logs/``; results to
    ``build-report.json``. Exits non-zero when any image fails.
    """
    run_build(c, name, platform, parallel, fail_fast, push=False)


@task(iterable=["name"], help=HELP)
def push(
    c: Context,
    name: list[str] | None = None,
    platform: str | None = None,
    parallel: int | None = None,
    fail_fast: bool = False,
) -> None:
    """Build and push every image (or ``--name`` ones) to ``registry``.

    Same plan and tags as image.build; with several platforms each tag is a manifest list.
    """
    run_build(c, name, platform, parallel, fail_fast, push=True)


ns = Collection("image")
ns.add_task(build, default=True)
ns.add_task(push)
ns.configure(CONFIG_DEFAULTS)

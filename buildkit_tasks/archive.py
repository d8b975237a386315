"""Offline archives: every built image in one ``docker save`` tar that ``docker load -i``
takes as it is (layers shared between images stored once)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .config import Settings
from .engines import docker
from .fsutil import atomic_path
from .runner import Runner

ARCHIVE_NAME = "images.tar"


def export(settings: Settings, references: Iterable[str], runner: Runner) -> Path:
    """Save ``references`` into ``<output_dir>/images.tar``, written atomically.

    Raises CommandError when an image is missing or ``docker save`` fails.
    """
    refs = list(references)
    dest = settings.output_dir / ARCHIVE_NAME
    if runner.dry:
        runner.run(docker.save_argv(refs, dest))
        return dest
    docker.require_images(refs)
    with atomic_path(dest) as tmp:
        runner.run(docker.save_argv(refs, tmp), what="docker save")
    return dest

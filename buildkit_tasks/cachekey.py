"""Input keys: a hash of everything that decides an image's content.

An image's key covers its build context as Docker sees it (``.dockerignore`` honoured, through
the ``docker`` SDK's own pattern matcher), its Dockerfile, build args, target, platforms and the
keys of the project images it builds on. It is stored on the image as the label
:data:`KEY_LABEL`; an image whose inputs have not changed is found by it and not rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path

from .config import ImageSpec
from .errors import ConfigError

KEY_LABEL = "dev.buildkit-tasks.input-key"
SCHEMA = "buildkit-tasks/key/v1"


def dockerignore_patterns(context: Path, dockerfile: Path) -> list[str]:
    """Patterns from ``<Dockerfile>.dockerignore`` when present (BuildKit's rule), else from
    ``<context>/.dockerignore``; comments and blank lines dropped."""
    for candidate in (Path(f"{dockerfile}.dockerignore"), context / ".dockerignore"):
        if candidate.is_file():
            lines = candidate.read_text(encoding="utf-8", errors="replace").splitlines()
            return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    return []


def context_digest(context: Path, dockerfile: Path) -> str:
    """sha256 over every path Docker would send from ``context``: relative path, type,
    executable bit, and content (or symlink target). Raises ConfigError on unreadable files."""
    from docker.utils.build import exclude_paths

    patterns = dockerignore_patterns(context, dockerfile)
    try:
        rel_df = dockerfile.relative_to(context).as_posix()
    except ValueError:
        rel_df = None
    paths = sorted(exclude_paths(str(context), patterns, dockerfile=rel_df))
    h = hashlib.sha256()
    for rel in paths:
        full = context / rel
        try:
            st = full.lstat()
            if stat.S_ISLNK(st.st_mode):
                entry = f"L {rel} {os.readlink(full)}"
            elif stat.S_ISDIR(st.st_mode):
                entry = f"D {rel}"
            else:
                entry = f"F {rel} {st.st_mode & 0o111:o} {_file_sha256(full)}"
        except OSError as exc:
            raise ConfigError(f"{full}: cannot read build context file: {exc.strerror}") from None
        h.update(entry.encode("utf-8", "surrogateescape") + b"\0")
    return h.hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def image_key(
    spec: ImageSpec,
    platforms: Iterable[str],
    dependency_keys: Mapping[str, str],
    context: str | None = None,
) -> str:
    """The input key of ``spec`` built for ``platforms`` on dependencies with the given keys.
    ``context`` is the context digest when already computed."""
    payload = {
        "schema": SCHEMA,
        "name": spec.name,
        "context": context or context_digest(spec.context, spec.dockerfile),
        "dockerfile": _file_sha256(spec.dockerfile),
        "build_args": dict(sorted(spec.build_args.items())),
        "target": spec.target,
        "platforms": sorted(platforms),
        "dependencies": dict(sorted(dependency_keys.items())),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

"""Offline archives: every built image in one ``docker save`` tar that ``docker load -i``
takes as it is (layers shared between images stored once), hashed while it is written.

Compression (config ``archive.compression`` / ``--compression``):

- ``none``: the tar as ``docker save`` emits it (``images.tar``).
- ``zstd``: ``images.tar.zst``, multi-threaded zstandard (``docker load`` reads it as it is).
- ``gzip``: ``images.tar.gz``, single-threaded (``docker load`` reads it as it is).
- ``auto`` (default): ``none`` when the engine uses the containerd image store, whose
  ``docker save`` already carries compressed layers (compressing again costs time and saves
  next to nothing), else ``zstd`` (the classic store saves uncompressed layer tars).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from .config import Settings
from .engines import docker
from .errors import BuildkitError, ConfigError
from .fsutil import atomic_path
from .runner import Runner

COMPRESSIONS = ("auto", "zstd", "gzip", "none")
SUFFIX = {"none": "", "zstd": ".zst", "gzip": ".gz"}
ARCHIVE_NAME = "images.tar"


@dataclass(frozen=True)
class Archive:
    """An exported archive: ``path``, its ``sha256`` and ``size`` (bytes, as written),
    ``compression`` actually used, and ``saved`` (bytes ``docker save`` produced)."""

    path: Path
    sha256: str
    size: int
    compression: str
    saved: int


def check_compression(choice: str) -> None:
    """Raise ConfigError naming ``--compression`` / ``archive.compression`` for a choice
    that is not one of :data:`COMPRESSIONS`."""
    if choice not in COMPRESSIONS:
        raise ConfigError(
            f"--compression (config archive.compression): expected one of "
            f"{', '.join(COMPRESSIONS)}, got {choice!r}"
        )


def resolve_compression(choice: str) -> str:
    """``auto`` -> ``none`` on the containerd image store, else ``zstd``; others as given.
    Raises ConfigError for an unknown choice."""
    check_compression(choice)
    if choice != "auto":
        return choice
    return "none" if docker.containerd_store() else "zstd"


def archive_path(settings: Settings, compression: str) -> Path:
    """``<output_dir>/images.tar`` plus ``.zst`` / ``.gz``."""
    return settings.output_dir / (ARCHIVE_NAME + SUFFIX[compression])


class _HashingFile(io.RawIOBase):
    """A write-only file that hashes and counts what passes through to ``fh``."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh, self.digest, self.size = fh, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.digest.update(view)
        self.fh.write(view)
        self.size += len(view)
        return len(view)


def export(
    settings: Settings, references: Iterable[str], runner: Runner, compression: str = "auto"
) -> Archive:
    """Stream ``docker save`` of ``references`` into ``<output_dir>/images.tar[.zst|.gz]``,
    compressing (see module doc) and computing its sha256 in the same pass; written to a
    temporary file and renamed, so an error or Ctrl-C leaves nothing. Other archives of this
    name with another compression are removed.

    Raises CommandError when an image is missing or ``docker save`` fails.
    """
    refs = list(references)
    check_compression(compression)
    if runner.dry:
        used = compression if compression != "auto" else "none"
        dest = archive_path(settings, used)
        runner.pipe(docker.save_argv(refs), lambda _: None)
        return Archive(dest, "", 0, used, 0)
    used = resolve_compression(compression)
    dest = archive_path(settings, used)
    docker.require_images(refs)
    try:
        hashed, saved = _write(dest, refs, runner, used)
    except OSError as exc:  # a full disk (ENOSPC), a quota, an I/O error: one line, no file
        raise BuildkitError(
            f"{dest}: cannot write the image archive ({exc.strerror or exc}); nothing was "
            "replaced, earlier artifacts are as they were"
        ) from None
    for other in SUFFIX.values():  # an archive left by a run with another compression
        stale = settings.output_dir / (ARCHIVE_NAME + other)
        if stale != dest and stale.exists():
            stale.unlink()
    return Archive(dest, hashed.digest.hexdigest(), hashed.size, used, saved)


def _write(dest: Path, refs: list[str], runner: Runner, used: str) -> tuple[_HashingFile, int]:
    """``docker save`` of ``refs`` into ``dest`` through a temporary file (see
    :func:`export`); returns the hashing writer and the bytes ``docker save`` produced."""
    with atomic_path(dest) as tmp, tmp.open("wb") as raw:
        hashed = _HashingFile(raw)
        if used == "zstd":
            import zstandard

            cctx = zstandard.ZstdCompressor(level=3, threads=-1)
            with cctx.stream_writer(cast(IO[bytes], hashed), closefd=False) as zw:
                saved = runner.pipe(docker.save_argv(refs), zw.write, what="docker save")
        elif used == "gzip":
            with gzip.GzipFile(fileobj=hashed, mode="wb", compresslevel=6, mtime=0) as gz:
                saved = runner.pipe(docker.save_argv(refs), gz.write, what="docker save")
        else:
            saved = runner.pipe(docker.save_argv(refs), hashed.write, what="docker save")
        raw.flush()
    return hashed, saved


def open_archive(path: Path) -> IO[bytes]:
    """A readable stream of the tar inside ``path`` (decompressing ``.zst`` / ``.gz``)."""
    fh = path.open("rb")
    if path.name.endswith(".zst"):
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(fh, closefd=True)  # type: ignore[no-any-return]
    if path.name.endswith(".gz"):
        return gzip.GzipFile(fileobj=fh, mode="rb")  # type: ignore[return-value]
    return fh


def verify_archive(path: Path) -> list[str]:
    """Read the whole archive as a tar stream and return the image references its
    ``index.json`` / ``manifest.json`` name. Raises BuildkitError when it is not a complete
    ``docker save`` archive."""
    import json

    refs: list[str] = []
    seen = set()
    try:
        with open_archive(path) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                seen.add(member.name)
                if member.name == "manifest.json":
                    f = tar.extractfile(member)
                    assert f is not None
                    for entry in json.load(f):
                        refs += entry.get("RepoTags") or []
                elif member.isfile():
                    f = tar.extractfile(member)
                    if f is not None:
                        while f.read(1 << 20):
                            pass
    except Exception as exc:  # TarError, OSError, EOFError, zstandard.ZstdError...
        raise BuildkitError(f"{path}: not a readable image archive ({exc})") from None
    if "manifest.json" not in seen:
        raise BuildkitError(f"{path}: no manifest.json; not a docker save archive")
    return refs

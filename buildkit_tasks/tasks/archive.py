"""``archive`` namespace: ``archive.export`` and ``archive.verify``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from invoke import Collection, Context

from ..errors import BuildkitError
from . import image
from .common import CONFIG_DEFAULTS, dry, plan, runner, settings, task

if TYPE_CHECKING:
    from ..config import Settings

COMPRESSION_HELP = (
    "auto (default: none on the containerd image store, whose docker save already holds "
    "compressed layers; else zstd), zstd, gzip or none. Config: archive.compression."
)


@task(pre=[image.build], help={"compression": COMPRESSION_HELP}, writes=True)
def export(c: Context, compression: str | None = None) -> None:
    """Save every built image into ``<output_dir>/images.tar`` (``.zst``/``.gz`` when
    compressed) and write ``SHA256SUMS``.

    ``docker save`` streams into the file through the compressor while its sha256 is computed
    in the same pass (no second read); written to a temporary file and renamed.
    ``docker load -i`` takes the archive as it is; layers shared by images are stored once.
    ``<output_dir>/SHA256SUMS`` (``sha256sum -c`` format) then covers every artifact in
    ``output_dir`` (archive, charts, version files; not logs or the report). Pre-task:
    image.build.
    """
    from .. import archive, report

    s = settings(c)
    archive.check_compression(compression or s.archive_compression)
    bp = plan(s)
    info = bp.version
    r = runner(c, s)
    refs = bp.references(pushed_only=True)  # not build-only bases
    chosen = compression or s.archive_compression
    result = archive.export(s, refs, r, chosen)
    if r.dry:
        print(f"# -> {result.path.relative_to(s.root)} ({result.compression})")
        return
    mb = result.size / 1e6
    print(
        f"archive: {len(refs)} images -> {result.path.relative_to(s.root)} "
        f"({mb:.1f} MB, compression {result.compression})"
    )
    known = {result.path: result.sha256}
    sums = report.write_checksums(s.output_dir, report.artifacts(s.output_dir), known)
    print(f"checksums: {len(sums)} artifacts -> {(s.output_dir / report.SUMS).relative_to(s.root)}")
    report.update(
        s.report_path,
        info,
        artifacts=sums,
        archive={
            "path": result.path.relative_to(s.output_dir).as_posix(),
            "compression": result.compression,
            "size": result.size,
            "saved_size": result.saved,
            "sha256": result.sha256,
            "images": refs,
        },
    )


@task
def verify(c: Context) -> None:
    """Re-check ``<output_dir>``: every ``SHA256SUMS`` entry against its file, its signature
    ``SHA256SUMS.sig`` (build.all with a signing key) against config ``cosign_public_key``
    when both exist, then read the image archive through to its end (decompressing) and list
    the images it holds. Exits non-zero naming what does not hold; reads only, never
    writes."""
    from .. import archive, report

    s = settings(c)
    sums = s.output_dir / report.SUMS
    if dry(c):
        print(f"# would check {sums.relative_to(s.root)} and read the images archive through")
        return
    if not sums.is_file():
        raise BuildkitError(f"{sums}: not found; run inv archive.export first")
    bad = report.verify_checksums(s.output_dir)
    if bad:
        raise BuildkitError(f"{sums}: checksum mismatch: {'; '.join(bad)}")
    count = len(sums.read_text().splitlines())
    print(f"checksums: {count} artifacts OK")
    _check_signature(c, s)
    found = [p for p in (archive.archive_path(s, k) for k in archive.SUFFIX) if p.exists()]
    if not found:
        raise BuildkitError(f"{s.output_dir}: no images.tar[.zst|.gz] to verify")
    for path in found:
        refs = archive.verify_archive(path)
        print(f"archive: {path.relative_to(s.root)} OK, {len(refs)} images: {', '.join(refs)}")


def _check_signature(c: Context, s: Settings) -> None:
    """Check ``SHA256SUMS.sig`` when there is one: against ``cosign_public_key`` when set
    (BuildkitError when it does not verify), else say it was not checked."""
    from .. import report, signing

    signature = s.output_dir / report.SUMS_SIGNATURE
    if not signature.is_file():
        return
    shown = signature.relative_to(s.root)
    if s.cosign_public_key is None:
        print(f"signature: {shown} not checked (no cosign_public_key configured)")
        return
    if not signing.verify_checksums_signature(s, runner(c, s)):
        raise BuildkitError(
            f"{shown}: not a signature of {report.SUMS} by the key {s.cosign_public_key}"
        )
    print(f"signature: {shown} verified with {s.cosign_public_key}")


ns = Collection("archive")
ns.add_task(export, default=True)
ns.add_task(verify)
ns.configure(CONFIG_DEFAULTS)

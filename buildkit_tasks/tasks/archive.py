"""``archive`` namespace: ``archive.export``."""

from __future__ import annotations

from invoke import Collection, Context

from .. import archive, images, report
from . import image
from .common import CONFIG_DEFAULTS, runner, settings, task, version


@task(pre=[image.build])
def export(c: Context) -> None:
    """Save every built image into ``<output_dir>/images.tar`` and write ``SHA256SUMS``.

    ``docker load -i`` takes the archive as it is; layers shared by images are stored once.
    ``<output_dir>/SHA256SUMS`` (``sha256sum -c`` format) then covers every artifact in
    ``output_dir`` (archive, charts, version files; not logs or the report). Pre-task:
    image.build.
    """
    s = settings(c)
    info = version(s)
    r = runner(c)
    refs = [s.reference(n, info.docker_tag) for n in images.plan(s).order()]
    path = archive.export(s, refs, r)
    if r.dry:
        return
    print(f"archive: {len(refs)} images -> {path.relative_to(s.root)}")
    sums = report.write_checksums(s.output_dir, report.artifacts(s.output_dir))
    print(f"checksums: {len(sums)} artifacts -> {(s.output_dir / report.SUMS).relative_to(s.root)}")
    report.update(s.report_path, info, artifacts=sums)


ns = Collection("archive")
ns.add_task(export, default=True)
ns.configure(CONFIG_DEFAULTS)

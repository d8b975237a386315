"""``build`` namespace: ``build.all``, the main job."""

from __future__ import annotations

import os

from invoke import Collection, Context

from . import archive, helm, image, lint, test, version
from .common import CONFIG_DEFAULTS, dry, settings, task
from .common import version as project_version


@task(
    name="all",
    pre=[
        lint.all_,
        test.all_,
        version.stamp,
        image.build,
        image.scan,
        helm.package,
        archive.export,
    ],
    writes=True,
)
def all_(c: Context) -> None:
    """The whole build: lint.all, test.all, version.stamp, image.build, image.scan,
    helm.package and archive.export (as pre-tasks, in that order), then
    ``<output_dir>/build-report.json`` and ``build-report.md``.

    The report holds the version info, every image (references, image ID, platforms, status,
    seconds), every chart (name, version, path) and every artifact (path, sha256).
    """
    s = settings(c)
    if dry(c):
        report_path = s.report_path.relative_to(s.root)
        print(f"\n# build {project_version(s).version}: would write report {report_path}")
        return
    from .. import report

    data = report.update(s.report_path, project_version(s), status="succeeded")
    if s.cosign_key is not None or os.environ.get("BUILDKIT_COSIGN_KEY"):
        # build.all builds and never pushes: a signature needs a registry digest
        print(
            "sign: a cosign key is configured, but build.all pushes nothing to sign; run "
            "inv image.push image.sign"
        )
    print(
        f"\nbuild {data['version']['version']}: {len(data.get('images', []))} images, "
        f"{len(data.get('charts', []))} charts, {len(data.get('artifacts', []))} artifacts; "
        f"report {s.report_path.relative_to(s.root)}"
    )


ns = Collection("build")
ns.add_task(all_, default=True)
ns.configure(CONFIG_DEFAULTS)

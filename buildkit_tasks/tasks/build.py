"""``build`` namespace: ``build.all``, the main job."""

from __future__ import annotations

from invoke import Collection, Context

from . import archive, helm, image, lint, test, version
from .common import CONFIG_DEFAULTS, dry, runner, settings, task
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

    With a signing key configured (config ``cosign_key``, or env ``BUILDKIT_COSIGN_KEY``;
    password from env ``COSIGN_PASSWORD``), ``<output_dir>/SHA256SUMS`` is signed with
    cosign into ``SHA256SUMS.sig`` (report ``checksums_signature``): the built images are not
    in a registry, so the signature covers them through the archive's checksum;
    ``archive.verify`` checks it against ``cosign_public_key``. Pushed images are signed by
    ``image.sign``.
    """
    from .. import signing

    s = settings(c)
    if dry(c):
        report_path = s.report_path.relative_to(s.root)
        if signing.key_configured(s):
            signing.sign_checksums(s, runner(c, s))
        print(f"\n# build {project_version(s).version}: would write report {report_path}")
        return
    from .. import report

    sections: dict[str, object] = {"status": "succeeded"}
    if signing.key_configured(s):
        # build.all pushes nothing: what it signs is SHA256SUMS, which covers every artifact
        signature = signing.sign_checksums(s, runner(c, s))
        sections["checksums_signature"] = signature.relative_to(s.output_dir).as_posix()
        print(f"sign: {report.SUMS} -> {signature.relative_to(s.root)}")
    data = report.update(s.report_path, project_version(s), **sections)
    print(
        f"\nbuild {data['version']['version']}: {len(data.get('images', []))} images, "
        f"{len(data.get('charts', []))} charts, {len(data.get('artifacts', []))} artifacts; "
        f"report {s.report_path.relative_to(s.root)}"
    )


ns = Collection("build")
ns.add_task(all_, default=True)
ns.configure(CONFIG_DEFAULTS)

"""``helm`` namespace: ``helm.package`` and ``helm.push``."""

from __future__ import annotations

from invoke import Collection, Context

from .common import CONFIG_DEFAULTS, plan, runner, settings, task


@task
def package(c: Context) -> None:
    """Package each chart of ``[tool.buildkit.helm] charts`` into
    ``<output_dir>/charts/<name>-<version>.tgz``.

    ``version`` is the SemVer form of the project version and ``appVersion`` the image tag.
    Packaging works on a staged copy (the chart source is never modified): ``file://``
    dependencies are packaged and vendored into its ``charts/``, remote ones fetched with
    ``helm dependency build`` (a clear error when unreachable), and the value paths of
    ``[tool.buildkit.helm.image_values]`` are set to this build's image references. The
    archive is reproducible: sorted entries, fixed owners and modes, times from
    ``SOURCE_DATE_EPOCH`` or the commit date. Records the charts in ``build-report.json``.
    """
    from .. import charts, report

    s = settings(c)
    bp = plan(s)
    info = bp.version
    r = runner(c)
    results = charts.package_all(s, bp, r)
    for ch in results:
        print(f"chart {ch.name}: {ch.version} -> {ch.path.relative_to(s.root)}")
    if not r.dry:
        report.update(s.report_path, info, charts=[ch.as_dict(s.output_dir) for ch in results])


@task(pre=[package], help={"force": "Overwrite a chart version the registry already holds."})
def push(c: Context, force: bool = False) -> None:
    """Push the packaged charts to an OCI registry: ``[tool.buildkit.helm] repository``
    (``oci://...``), else ``oci://<registry>/charts``; loopback registries over plain HTTP.

    Credentials as for images (``registry_user`` / ``BUILDKIT_REGISTRY_USER``, password from
    ``BUILDKIT_REGISTRY_PASSWORD`` or ``password_file``) go to ``helm registry login
    --password-stdin`` in a throw-away registry config. A chart version already in the
    registry is refused (chart versions are meant to be immutable) unless ``--force``.
    Records ``chart_pushes`` (reference, digest) in ``build-report.json``. Pre-task:
    helm.package.
    """
    from .. import charts, credentials, report

    s = settings(c)
    bp = plan(s)
    info = bp.version
    r = runner(c)
    dest = s.output_dir / "charts"
    if r.dry:  # what helm.package would have written
        results = [
            charts.ChartResult(ch.name, ch.version, ch.app_version, dest / ch.filename)
            for ch in bp.charts
        ]
    else:
        results = [
            charts.ChartResult.from_dict(e, s.output_dir)
            for e in report.load(s.report_path).get("charts", [])
        ]
    target = charts.oci_target(s)
    creds = credentials.resolve(s)
    with credentials.helm_login(r, creds, charts.plain_http(target)) as login:
        pushed = charts.push_all(s, results, r, login, force=force)
    for p in pushed:
        print(f"chart {p.name}: pushed {p.reference} ({p.digest or 'no digest'})")
    if not r.dry:
        report.update(
            s.report_path,
            info,
            chart_pushes=[
                {"name": p.name, "version": p.version, "reference": p.reference, "digest": p.digest}
                for p in pushed
            ],
        )


ns = Collection("helm")
ns.add_task(package, default=True)
ns.add_task(push)
ns.configure(CONFIG_DEFAULTS)

"""``helm`` namespace: ``helm.package``."""

from __future__ import annotations

from invoke import Collection, Context

from .common import CONFIG_DEFAULTS, runner, settings, task, version


@task
def package(c: Context) -> None:
    """Package each chart of ``[tool.buildkit.helm] charts`` into
    ``<output_dir>/charts/<name>-<version>.tgz``.

    ``version`` is the SemVer form of the project version and ``appVersion`` the image tag; the
    chart source is not modified. Records the charts in ``build-report.json``.
    """
    from .. import charts, report

    s = settings(c)
    info = version(s)
    r = runner(c)
    results = charts.package_all(s, info, r)
    for ch in results:
        print(f"chart {ch.name}: {ch.version} -> {ch.path.relative_to(s.root)}")
    if not r.dry:
        report.update(
            s.report_path,
            info,
            charts=[
                {
                    "name": ch.name,
                    "version": ch.version,
                    "app_version": ch.app_version,
                    "path": ch.path.relative_to(s.output_dir).as_posix(),
                }
                for ch in results
            ],
        )


ns = Collection("helm")
ns.add_task(package, default=True)
ns.configure(CONFIG_DEFAULTS)

"""``helm`` namespace: ``helm.package``, ``helm.push``, ``helm.publish`` and ``helm.stamp``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from invoke import Collection, Context

from .common import CONFIG_DEFAULTS, plan, runner, settings, task

if TYPE_CHECKING:
    from .. import charts, config
    from ..buildplan import BuildPlan


@task(writes=True)
def package(c: Context) -> None:
    """Package each chart of ``[tool.buildkit.helm] charts`` into
    ``<output_dir>/charts/<name>-<version>.tgz``.

    ``version`` is the chart's version from the plan (the SemVer form of the project version,
    or its own from its version paths; scheme chartpress: chartpress's) and ``appVersion``
    the image tag (``helm.app_version = "keep"``: Chart.yaml's own, untouched).
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
    r = runner(c, s)
    results = charts.package_all(s, bp, r)
    for ch in results:
        print(f"chart {ch.name}: {ch.version} -> {ch.path.relative_to(s.root)}")
    if not r.dry:
        report.update(s.report_path, info, charts=[ch.as_dict(s.output_dir) for ch in results])


@task(
    pre=[package],
    help={"force": "Overwrite a chart version the registry already holds."},
    writes=True,
)
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
    r = runner(c, s)
    results = _packaged(s, bp, r.dry)
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


@task(
    pre=[package],
    help={
        "force": "Replace a chart version the repository's index.yaml already lists.",
        "extra_message": "Text added to the commit message after a blank line.",
    },
    writes=True,
)
def publish(c: Context, force: bool = False, extra_message: str = "") -> None:
    """Publish the packaged charts to a chart repository kept in a git branch, as chartpress's
    ``--publish-chart``: ``[tool.buildkit.helm.publish]`` ``git`` (URL or path), ``branch``
    (default ``gh-pages``, made when missing), ``url`` (where it is served). Adds each
    ``.tgz``, merges ``index.yaml`` with ``helm repo index --merge`` (existing entries keep
    their times), commits ``[<chart>] Automatic update for commit <version>`` (plus
    ``--extra-message``) and pushes. A version the index already lists is refused unless
    ``--force``. Credentials come from git (credential helpers, SSH keys), never the URL.
    Records ``chart_publishes`` in ``build-report.json``. Pre-task: helm.package.
    """
    from .. import chartrepo, report
    from ..errors import ConfigError

    s = settings(c)
    if s.chart_publish is None:
        raise ConfigError(
            "helm.publish: set [tool.buildkit.helm.publish] git and url (the chart "
            "repository's git URL and the URL it is served at)"
        )
    bp = plan(s)
    r = runner(c, s)
    results = _packaged(s, bp, r.dry)
    done = chartrepo.publish(s.chart_publish, results, r, force, extra_message)
    for p in done:
        print(f"chart {p.name}: published {p.version} -> {p.url}")
    if not r.dry:
        report.update(
            s.report_path,
            bp.version,
            chart_publishes=[{"name": p.name, "version": p.version, "url": p.url} for p in done],
        )


@task(
    help={
        "reset": "Put the placeholders back: helm.reset_version and helm.reset_tag.",
    },
    writes=True,
)
def stamp(c: Context, reset: bool = False) -> None:
    """Write each chart's version, ``appVersion`` (with ``helm.app_version = "image"``) and
    the image values of ``[tool.buildkit.helm.image_values]`` into the source ``Chart.yaml``
    and ``values.yaml`` (chartpress's default mode; scripts and docs builds read them), with
    comments, quotes and indentation kept. ``--reset`` writes the placeholders instead
    (``helm.reset_version``, default ``0.0.1-set.by.chartpress``; ``helm.reset_tag``, default
    ``set-by-chartpress``), as ``chartpress --reset``. ``helm.package`` never needs this: it
    stamps a staged copy. A missing value path is an error naming the file and path.
    """
    from .. import charts

    s = settings(c)
    r = runner(c, s)
    changed = charts.stamp(s, plan(s), dry=r.dry, reset=reset)
    verb = "would change" if r.dry else "changed"
    for item in changed:
        print(f"{item.path.relative_to(s.root)}: {verb} {'; '.join(item.changes)}")
    if not changed:
        print("charts: nothing to change")


def _packaged(s: config.Settings, bp: BuildPlan, dry: bool) -> list[charts.ChartResult]:
    """What helm.package wrote (from the report), or under ``--dry`` what it would have."""
    from .. import charts, report

    if dry:
        return charts.planned(s, bp)
    return [
        charts.ChartResult.from_dict(e, s.output_dir)
        for e in report.load(s.report_path).get("charts", [])
    ]


ns = Collection("helm")
ns.add_task(package, default=True)
ns.add_task(push)
ns.add_task(publish)
ns.add_task(stamp)
ns.configure(CONFIG_DEFAULTS)

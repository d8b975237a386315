"""Package the project's Helm charts with the project version.

Each chart becomes ``<output_dir>/charts/<name>-<chart_version>.tgz`` with ``version`` set to
the SemVer form of the project version and ``appVersion`` to the image tag, so a template's
``{{ .Values.x.image.tag | default .Chart.AppVersion }}`` renders the tag this build pushed.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .config import Settings
from .engines import helm
from .errors import CommandError
from .runner import Runner
from .versioning import VersionInfo


@dataclass(frozen=True)
class ChartResult:
    name: str
    version: str
    app_version: str
    path: Path


def package_all(settings: Settings, info: VersionInfo, runner: Runner) -> list[ChartResult]:
    """Package every chart of ``[tool.buildkit.helm] charts``; returns what was written.

    Each package is made in a temporary directory inside ``<output_dir>/charts`` and renamed
    into place, so a failed run leaves no partial ``.tgz``. Raises CommandError.
    """
    dest_dir = settings.output_dir / "charts"
    if runner.dry:
        for chart in settings.charts:
            runner.run(helm.package_argv(chart, info.chart_version, info.docker_tag, dest_dir))
        return []
    dest_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for chart in settings.charts:
        with tempfile.TemporaryDirectory(prefix=".helm-", dir=dest_dir) as tmp:
            runner.run(
                helm.package_argv(chart, info.chart_version, info.docker_tag, Path(tmp)),
                capture=True,
                what=f"helm package {chart}",
            )
            made = list(Path(tmp).glob("*.tgz"))
            if len(made) != 1:
                raise CommandError(f"helm package {chart}: expected one .tgz, found {len(made)}")
            suffix = f"-{info.chart_version}.tgz"
            name = made[0].name[: -len(suffix)] if made[0].name.endswith(suffix) else chart.name
            final = dest_dir / made[0].name
            os.replace(made[0], final)
        results.append(ChartResult(name, info.chart_version, info.docker_tag, final))
    return results

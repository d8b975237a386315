"""helm: argv for package and lint."""

from __future__ import annotations

from pathlib import Path

HELM = "helm"


def package_argv(chart: Path, version: str, app_version: str, destination: Path) -> list[str]:
    """``helm package`` with the chart ``version`` and ``appVersion`` set on the packaged copy
    (the source ``Chart.yaml`` is not modified)."""
    return [
        HELM,
        "package",
        str(chart),
        "--version",
        version,
        "--app-version",
        app_version,
        "--destination",
        str(destination),
    ]


def lint_argv(chart: Path, strict: bool = False) -> list[str]:
    """``helm lint`` of one chart directory."""
    return [HELM, "lint", *(["--strict"] if strict else []), str(chart)]

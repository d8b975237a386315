"""Quality gates: ruff, helm lint and hadolint for ``lint.all``; pytest for ``test.all``."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .config import Settings
from .engines import helm
from .errors import CommandError
from .runner import Runner, find_tool, python_module


def ruff_argvs(paths: Iterable[str]) -> list[list[str]]:
    """``ruff check`` and ``ruff format --check`` over ``paths``."""
    paths = list(paths)
    return [
        [*python_module("ruff"), "check", *paths],
        [*python_module("ruff"), "format", "--check", *paths],
    ]


def hadolint_argv(dockerfiles: Iterable[Path], program: str = "hadolint") -> list[str]:
    """hadolint failing on errors only (style warnings are reported, not fatal)."""
    return [program, "--failure-threshold", "error", *map(str, dockerfiles)]


def lint(settings: Settings, runner: Runner) -> list[str]:
    """Run every linter that applies, all of them even when one fails.

    ruff on ``lint.paths``, ``helm lint`` on each chart, hadolint on every image's Dockerfile
    when ``hadolint`` is on PATH or beside the interpreter. Returns the names of the linters
    that ran; raises
    CommandError naming every one that failed.
    """
    steps: list[tuple[str, list[str]]] = [
        ("ruff", argv) for argv in ruff_argvs(settings.lint_paths)
    ]
    steps += [(f"helm lint {c.name}", helm.lint_argv(c)) for c in settings.charts]
    dockerfiles = sorted({spec.dockerfile for spec in settings.images.values()})
    hadolint = find_tool("hadolint")
    if dockerfiles and hadolint:
        steps.append(("hadolint", hadolint_argv(dockerfiles, hadolint)))
    failures = []
    for label, argv in steps:
        if not runner.run(argv, cwd=settings.root, check=False).ok:
            failures.append(label)
    if failures:
        raise CommandError(f"lint failed: {', '.join(dict.fromkeys(failures))}")
    return [label for label, _ in steps]


def pytest_argv(args: Iterable[str]) -> list[str]:
    return [*python_module("pytest"), *args]


def test(settings: Settings, runner: Runner, extra: Iterable[str] = ()) -> None:
    """pytest in the project root with ``test.args`` then ``extra``. Raises CommandError."""
    runner.run(pytest_argv([*settings.test_args, *extra]), cwd=settings.root, what="pytest")

"""nox sessions: the same checks as CI, each in a fresh virtual environment.

Integration tests need the engines from ``scripts/setup.sh`` (run it once as root first).
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def unit(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run("pytest", "tests/unit", *session.posargs)


@nox.session
def wheel(session: nox.Session) -> None:
    session.install("build")
    session.run("python", "-m", "build", "--wheel")

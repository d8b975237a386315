"""The ``buildkit-tasks`` console script: Invoke's ``Program`` over the full collection, for
repositories that have no ``tasks.py`` yet (``buildkit-tasks scaffold --kind python``)."""

from __future__ import annotations

from importlib.metadata import version

from invoke import Program

from . import ns

program = Program(
    namespace=ns, name="buildkit-tasks", binary="buildkit-tasks", version=version("buildkit-tasks")
)


def main() -> None:
    """Entry point of the ``buildkit-tasks`` script."""
    program.run()

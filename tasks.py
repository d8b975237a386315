"""This repository's own tasks, built from buildkit-tasks' collections (dogfooding).

inv lint        ruff over the package, tests, benchmarks and this file
inv test        the whole test suite (integration tests need scripts/setup.sh first)
inv example     inv build.all on the bundled example project
"""

from __future__ import annotations

import sys

from invoke import Collection, Context, task

from buildkit_tasks.tasks import lint, test


@task(help={"target": "The examples/ task to run (default build.all)."})
def example(c: Context, target: str = "build.all") -> None:
    """Run ``inv <target>`` in ``examples/`` with this interpreter's Invoke."""
    with c.cd("examples"):
        c.run(f"{sys.executable} -m invoke {target}", pty=False)


ns = Collection(lint.ns, test.ns, example)

"""This repository's own tasks, built from buildkit-tasks' collections (dogfooding).

inv lint        ruff over the package, tests, benchmarks and this file
inv test        the whole test suite (integration tests need scripts/setup.sh first)
inv example     inv build.all on the bundled example project
inv docs        regenerate the README's configuration reference from buildkit_tasks/options.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from invoke import Collection, Context, task

from buildkit_tasks.tasks import lint, test


@task(help={"target": "The examples/ task to run (default build.all)."})
def example(c: Context, target: str = "build.all") -> None:
    """Run ``inv <target>`` in ``examples/`` with this interpreter's Invoke."""
    with c.cd("examples"):
        c.run(f"{sys.executable} -m invoke {target}", pty=False)


README = Path(__file__).parent / "README.md"
START, END = "<!-- config-reference:start -->\n", "<!-- config-reference:end -->"


def readme_with_reference(text: str) -> str:
    """``text`` (the README) with the configuration reference between its markers replaced
    by the one generated from :mod:`buildkit_tasks.options`."""
    from buildkit_tasks.options import reference_markdown

    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    return head + START + reference_markdown() + END + tail


@task
def docs(c: Context) -> None:
    """Rewrite the configuration reference in README.md from buildkit_tasks/options.py."""
    text = README.read_text(encoding="utf-8")
    README.write_text(readme_with_reference(text), encoding="utf-8")


ns = Collection(lint.ns, test.ns, example, docs)

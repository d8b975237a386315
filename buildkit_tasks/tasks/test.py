"""``test`` namespace: ``test.all``."""

from __future__ import annotations

import shlex

from invoke import Collection, Context

from .common import CONFIG_DEFAULTS, runner, settings, task


@task(name="all", help={"args": "Extra pytest arguments, space-separated (after test.args)."})
def all_(c: Context, args: str = "") -> None:
    """Run pytest in the project root.

    Arguments come from ``[tool.buildkit.test] args`` (default none), then ``--args``.
    Exits non-zero when pytest does (including exit 5: no tests collected).
    """
    from .. import quality

    s = settings(c)
    quality.test(s, runner(c, s), shlex.split(args))


ns = Collection("test")
ns.add_task(all_, default=True)
ns.configure(CONFIG_DEFAULTS)

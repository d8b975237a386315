"""``lint`` namespace: ``lint.all``."""

from __future__ import annotations

from invoke import Collection, Context

from .common import CONFIG_DEFAULTS, plan, runner, settings, task


@task(name="all")
def all_(c: Context) -> None:
    """Lint the project: ruff check and ruff format --check, helm lint, hadolint.

    ruff runs on ``[tool.buildkit.lint] paths`` (default ``["."]``) with the project's own ruff
    config; ``helm lint`` on every chart of ``[tool.buildkit.helm] charts``; hadolint (when on
    PATH) on every image's Dockerfile, failing on errors only. Every linter runs even when one
    fails; exits non-zero naming those that failed.
    """
    from .. import quality

    s = settings(c)
    quality.lint(s, runner(c, s), lambda: plan(s))


ns = Collection("lint")
ns.add_task(all_, default=True)
ns.configure(CONFIG_DEFAULTS)

"""``config`` namespace: ``config.show``."""

from __future__ import annotations

import json

from invoke import Collection, Context

from ..errors import ConfigError
from .common import CONFIG_DEFAULTS, project_root, settings, task

FORMATS = ("text", "json")


@task(help={"format": f"Output form: {', '.join(FORMATS)} (default text)."})
def show(c: Context, format: str = "text") -> None:
    """Print every configuration key with its effective value and where it came from: an
    environment variable (``INVOKE_BUILDKIT_<KEY>``, or a fallback such as
    ``BUILDKIT_REGISTRY_USER``), Invoke config (``invoke.yaml``, ``ns.configure``), the
    project's ``pyproject.toml`` ``[tool.buildkit]``, or the default. Per-image and per-host
    keys are summarised by their tables' names. Passwords are never read or shown.

    ``--format json`` prints ``{"options": [{"key", "value", "source"}]}`` and nothing else.
    Raises a one-line error for an invalid or unknown key, as every task does.
    """
    from .. import config, options

    if format not in FORMATS:
        raise ConfigError(f"--format: expected one of {', '.join(FORMATS)}, got {format!r}")
    s = settings(c)
    root = project_root(c)
    given = config.prune(c.config.get("buildkit") or {})
    given.pop("root", None)
    rows = options.effective(
        config.read_table(root), given, config.describe(s), str(root / config.PYPROJECT)
    )
    if format == "json":
        print(json.dumps({"options": [r.__dict__ for r in rows]}, indent=2))
        return
    width = max(len(r.key) for r in rows)
    vwidth = min(40, max(len(r.value) for r in rows))
    for r in rows:
        print(f"{r.key:<{width}}  {r.value:<{vwidth}}  ({r.source})")


ns = Collection("config")
ns.add_task(show, default=True)
ns.configure(CONFIG_DEFAULTS)

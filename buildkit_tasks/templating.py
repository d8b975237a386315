"""Jinja2 rendering, set up once: strict undefined variables, no autoescaping, trailing
newlines kept, a ``tojson`` filter. Used for version files and scaffolding."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

from .errors import ConfigError


@functools.lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
    )
    env.filters["tojson"] = json.dumps
    return env


def builtin(name: str) -> str:
    """The text of a template shipped in the wheel (``buildkit_tasks/templates/<name>``)."""
    return resources.files("buildkit_tasks.templates").joinpath(name).read_text("utf-8")


def render(text: str, variables: Mapping[str, Any], source: str) -> str:
    """Render template ``text`` with ``variables``. Raises ConfigError naming ``source`` (a
    file, or ``built-in <name>``) on a template error, an undefined variable included."""
    import jinja2

    try:
        return str(_environment().from_string(text).render(**variables))
    except jinja2.TemplateError as exc:
        raise ConfigError(f"{source}: template error: {exc}") from None

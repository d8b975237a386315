"""``version`` namespace: ``version.show`` and ``version.stamp``."""

from __future__ import annotations

import json

from invoke import Collection, Context

from ..errors import ConfigError
from .common import CONFIG_DEFAULTS, dry, settings, task, version

FORMATS = ("text", "json", "pep440", "semver", "docker")


@task(help={"format": f"Output form: {', '.join(FORMATS)} (default text)."})
def show(c: Context, format: str = "text") -> None:
    """Print the project version from git tags (``v``-prefixed), e.g. ``2.3.0`` on tag
    ``v2.3.0`` and ``2.3.1.dev3+abc1234`` three commits past it.

    ``text``/``pep440`` print the PEP 440 version, ``docker`` the image tag form, ``semver`` the
    chart version form, ``json`` every field (version, commit, branch, dirty, build date...).
    """
    if format not in FORMATS:
        raise ConfigError(f"--format: expected one of {', '.join(FORMATS)}, got {format!r}")
    info = version(settings(c))
    out = {
        "text": info.version,
        "pep440": info.version,
        "docker": info.docker_tag,
        "semver": info.chart_version,
        "json": json.dumps(info.as_dict(), indent=2),
    }[format]
    print(out)


@task(writes=True)
def stamp(c: Context) -> None:
    """Write the version files of ``[tool.buildkit.version] files`` into ``output_dir``.

    Default: ``<output_dir>/version.json`` with version, commit, branch, UTC build date (ISO
    8601; ``SOURCE_DATE_EPOCH`` when set) and dirty flag, from the built-in template. A
    ``template`` is a Jinja2 file (relative to pyproject.toml) seeing those fields as variables.
    """
    s = settings(c)
    if dry(c):
        print(f"# would write {', '.join(vf.path for vf in s.version_files)} in {s.output_dir}")
        return
    from .. import versioning

    for path in versioning.stamp(s, version(s)):
        print(f"version: wrote {path.relative_to(s.root)}")


ns = Collection("version")
ns.add_task(show, default=True)
ns.add_task(stamp)
ns.configure(CONFIG_DEFAULTS)

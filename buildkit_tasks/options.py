"""Every configuration key, declared once.

Each :class:`Option` gives a key's place (``[tool.buildkit]`` in ``pyproject.toml``, or a
table inside it), its type, default and meaning. From this table come: the Invoke config
defaults (so every scalar and list key can be set by an ``INVOKE_BUILDKIT_*`` environment
variable or ``invoke.yaml``), the rejection of unknown or misplaced keys with the nearest valid
one (:func:`check_keys`), ``inv config.show`` (:func:`effective`), and the configuration
reference in the README (:func:`reference_markdown`). :mod:`.config` validates the values.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

ENV_PREFIX = "INVOKE_BUILDKIT_"


@dataclass(frozen=True)
class Option:
    """One key. ``key`` is its dotted path under ``[tool.buildkit]`` (``archive.compression``);
    inside an array or a table of tables a ``*`` stands for the entry (``hosts.*.address``,
    ``images.*.context``). ``kind`` is how it is written (``string``, ``boolean``,
    ``integer``, ``number``, ``list``, ``table``, ``one of``); ``default`` as a person reads it;
    ``env``: settable by an environment variable (``INVOKE_BUILDKIT_<KEY>``, dots as ``_``;
    lists comma-separated); ``fallback_env``: a plain environment variable read when the key
    is not set; ``secret``: its value is never shown; ``invoke_only``: Invoke config only."""

    key: str
    kind: str
    default: str
    doc: str
    env: bool = True
    fallback_env: str | None = None
    invoke_only: bool = False
    free_keys: bool = False  # a table whose keys are the user's (image names, value paths)

    @property
    def env_var(self) -> str | None:
        """``INVOKE_BUILDKIT_ARCHIVE_COMPRESSION`` for ``archive.compression``, or None."""
        if not self.env or "*" in self.key:
            return None
        return ENV_PREFIX + self.key.upper().replace(".", "_")

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(self.key.split("."))


def _o(key: str, kind: str, default: str, doc: str, **kw: Any) -> Option:
    return Option(key, kind, default, doc, **kw)


OPTIONS: tuple[Option, ...] = (
    _o("registry", "string", '""', "Repository prefix of every image, e.g. `ghcr.io/acme`."),
    _o(
        "image_prefix",
        "string",
        '""',
        "Text before each image name in its repository: `<registry>/<image_prefix><name>`.",
    ),
    _o("output_dir", "string", '"dist"', "Where artifacts, logs and the report are written."),
    _o("platforms", "list", "engine's own", "Platforms to build, e.g. `linux/amd64`."),
    _o("parallel", "integer", "CPU count", "How many images build at once."),
    _o(
        "batch",
        "boolean",
        "true",
        "Build what must be built in `docker buildx bake` batches first.",
    ),
    _o(
        "builder",
        "string",
        "buildx's current",
        "The buildx builder (`docker buildx create --name`) of every build, bake and imagetools "
        "call; a remote, kubernetes or multi-node builder spreads the work.",
    ),
    _o(
        "batch_size",
        "integer",
        "40",
        "Most images in one bake; a batch the engine fails is retried in halves.",
    ),
    _o(
        "atomic",
        "boolean",
        "true",
        "`image.push`: push every image by digest, tag only when all succeeded (needs `oras`).",
    ),
    _o(
        "pull",
        "boolean",
        "true",
        "`image.build`: an image missing locally whose input key the registry holds is pulled, "
        "not built.",
    ),
    _o(
        "reproducible",
        "boolean",
        "false",
        "Build every image with `SOURCE_DATE_EPOCH` = the commit time, timestamps rewritten, "
        "through an OCI layout (same sources, same digests).",
    ),
    _o(
        "provenance",
        "one of",
        '"min"',
        "SLSA provenance attestation on pushed images: `min`, `max` or `off`.",
    ),
    _o(
        "cosign_key",
        "string",
        "none",
        "Private key file `image.sign` signs with (env `BUILDKIT_COSIGN_KEY`: the key itself; "
        "password: env `COSIGN_PASSWORD`).",
        fallback_env="BUILDKIT_COSIGN_KEY",
    ),
    _o("cosign_public_key", "string", "none", "Public key file `image.verify` checks with."),
    _o(
        "tlog_upload",
        "boolean",
        "false",
        "Record signatures in the Rekor transparency log (off for private registries).",
    ),
    _o(
        "sbom",
        "boolean",
        "true",
        "`image.sign` attaches an SPDX SBOM (syft or trivy, when installed) to each platform.",
    ),
    _o("source", "string", "git `origin` URL", "URL for `org.opencontainers.image.source`."),
    _o(
        "cache",
        "one of",
        '"none"',
        "Build cache: `none`, `registry` (`<repo>:buildcache`), `local`.",
    ),
    _o("cache_dir", "string", '".buildkit-cache"', "Directory of the `local` build cache."),
    _o(
        "registry_user",
        "string",
        "none",
        "Registry user name.",
        fallback_env="BUILDKIT_REGISTRY_USER",
    ),
    _o(
        "password_file",
        "string",
        "none",
        "File holding the registry password (else env `BUILDKIT_REGISTRY_PASSWORD`).",
    ),
    _o(
        "own_docker_config",
        "boolean",
        "false",
        "Log in to your Docker config, not a throw-away one.",
    ),
    _o("push_retries", "integer", "3", "Retries of a push failing for a transient reason."),
    _o("progress", "one of", '"auto"', "`auto`, `live`, `plain`, `verbose` or `quiet`."),
    _o("known_hosts", "string", '"~/.ssh/known_hosts"', "File checked for build hosts' keys."),
    _o("accept_new_host_keys", "boolean", "false", "Trust and record unknown host keys."),
    _o("connect_timeout", "number", "10", "Seconds to wait for a build host's SSH connection."),
    _o(
        "stop_grace",
        "number",
        "5",
        "On Ctrl-C, seconds between SIGTERM and SIGKILL of running commands.",
    ),
    _o(
        "wheelhouse",
        "string",
        "none",
        "Local directory of wheels shipped to hosts without a package index.",
        fallback_env="BUILDKIT_WHEELHOUSE",
    ),
    _o("remote_include", "list", "[]", "Globs of git-ignored files remote runs still copy."),
    _o("root", "string", "tasks.py's directory", "The project root.", invoke_only=True),
    _o("images", "table", "{}", "Images to build, one table per image name.", free_keys=True),
    _o("images.*.context", "string", "required", "Build context, relative to pyproject.toml."),
    _o("images.*.dockerfile", "string", '"Dockerfile"', "Dockerfile, relative to the context."),
    _o("images.*.build_args", "table", "{}", "Build args.", free_keys=True),
    _o("images.*.target", "string", "last stage", "Stage to build."),
    _o("images.*.platforms", "list", "any", "Platforms this image may be built for."),
    _o("images.*.max_size_mb", "number", "none", "Size budget in megabytes (10^6 bytes)."),
    _o(
        "images.*.version_paths", "list", "[]", "Paths whose last commit gives the image's version."
    ),
    _o("images.*.push", "boolean", "true", "false: a build-only image, never pushed or exported."),
    _o(
        "images.*.extra_build_args",
        "list",
        "[]",
        "More `docker buildx build` options (the image then builds outside the bake batch).",
    ),
    _o(
        "images.*.secrets",
        "list",
        "[]",
        "Environment variables passed as BuildKit secrets (`RUN --mount=type=secret,id=NAME`).",
    ),
    _o("discover", "table", "off", "Find Dockerfiles instead of (or besides) listing them."),
    _o("discover.roots", "list", '["."]', "Directories searched for Dockerfiles."),
    _o("discover.ignore", "list", "[]", "gitignore patterns of paths left out."),
    _o("discover.name_label", "string", "folder name", "Label naming each image."),
    _o("discover.local_prefixes", "list", "[]", "Reference prefixes that mark a project image."),
    _o(
        "discover.bare_names",
        "boolean",
        "on unless local_prefixes",
        "`FROM <name>` names a project image.",
    ),
    _o(
        "discover.skip_label",
        "string",
        "none",
        "A Dockerfile whose label of this name is true is left out.",
    ),
    _o("discover.local_label", "string", "none", '`"KEY=VALUE"` marking build-only images.'),
    _o("helm", "table", "{}", "Helm charts."),
    _o("helm.charts", "list", "[]", "Chart directories."),
    _o(
        "helm.image_values",
        "table",
        "{}",
        "Value path -> image name set to this build's reference.",
        free_keys=True,
    ),
    _o(
        "helm.version_paths",
        "table",
        "{}",
        "Chart directory -> paths giving its own version.",
        free_keys=True,
    ),
    _o("helm.repository", "string", '"oci://<registry>/charts"', "Where `helm.push` pushes."),
    _o(
        "helm.app_version",
        "one of",
        '"image" ("keep" with scheme chartpress)',
        "`image`: `appVersion` is the image tag; `keep`: Chart.yaml's own.",
    ),
    _o("helm.reset_tag", "string", '"set-by-chartpress"', "Image tag `helm.stamp --reset` writes."),
    _o(
        "helm.reset_version",
        "string",
        '"0.0.1-set.by.chartpress"',
        "Chart version `helm.stamp --reset` writes.",
    ),
    _o("helm.publish", "table", "off", "A chart repository in a git branch (`helm.publish`)."),
    _o("helm.publish.git", "string", "required", "Its git URL or local path."),
    _o("helm.publish.branch", "string", '"gh-pages"', "The branch holding `index.yaml`."),
    _o("helm.publish.url", "string", "required", "URL the branch is served at."),
    _o("version", "table", "{}", "Version stamping."),
    _o(
        "version.scheme",
        "one of",
        '"pep440"',
        "`pep440` (2.3.1.dev3+abc) or `chartpress` (2.3.0-0.dev.git.42.habc, as chartpress).",
    ),
    _o(
        "version.tag_pattern",
        "string",
        '"v*" ("*" with scheme chartpress)',
        "Glob of release tags; `*` is the version.",
    ),
    _o(
        "version.base_version",
        "string",
        "the last tag",
        "chartpress's `baseVersion` of dev versions, e.g. `5.0.0-0.dev` (scheme chartpress).",
    ),
    _o(
        "version.dev_style", "one of", '"bump"', "`bump` (2.3.1.dev3) or `post` (2.3.0.post3.dev0)."
    ),
    _o(
        "version.files",
        "list",
        '[{path = "version.json"}]',
        "Version files written by `version.stamp`.",
        env=False,
    ),
    _o("version.files.*.path", "string", "required", "File written, relative to `output_dir`."),
    _o(
        "version.files.*.template",
        "string",
        "built-in",
        "Jinja2 template, relative to pyproject.toml.",
    ),
    _o("lint", "table", "{}", "Linting."),
    _o("lint.paths", "list", '["."]', "Paths the Python linters check."),
    _o("lint.tools", "list", '["ruff"]', "From `ruff`, `black`, `isort`, `mypy`."),
    _o("test", "table", "{}", "Tests."),
    _o("test.args", "list", "[]", "Extra pytest arguments."),
    _o("test.coverage", "number", "none", "Coverage floor in percent."),
    _o("scan", "table", "{}", "Image scanning."),
    _o("scan.severity", "string", '"CRITICAL"', "Trivy severities that fail `image.scan`."),
    _o("archive", "table", "{}", "Offline archive."),
    _o("archive.compression", "one of", '"auto"', "`auto`, `zstd`, `gzip` or `none`."),
    _o("hosts", "list", "[]", "Build hosts, `[[tool.buildkit.hosts]]` tables.", env=False),
    _o("hosts.*.name", "string", "required", "The host's name (`--host NAME`)."),
    _o("hosts.*.address", "string", "required", "`user@host[:port]`."),
    _o("hosts.*.platforms", "list", "[]", "Platforms it builds natively."),
    _o("hosts.*.workdir", "string", '"buildkit-tasks"', "Work directory on the host."),
    _o("hosts.*.identity_file", "string", "none", "Local private key."),
    _o("hosts.*.gateway", "string", "none", "Another host's name to jump through."),
    _o("hosts.*.max_jobs", "integer", "its CPU count", "Images it builds at once."),
    _o("hosts.*.password_env", "string", "none", "Local env var holding an SSH password."),
    _o("hosts.*.transfer", "one of", '"auto"', "`auto`, `rsync` or `sftp`."),
)

BY_KEY: dict[str, Option] = {o.key: o for o in OPTIONS}


def _tables() -> dict[str, set[str]]:
    """Table key (``""`` for ``[tool.buildkit]``, ``hosts.*``...) -> the keys it may hold."""
    out: dict[str, set[str]] = {}
    for o in OPTIONS:
        parent, _, leaf = o.key.rpartition(".")
        out.setdefault(parent, set()).add(leaf)
    return out


TABLES = _tables()


def invoke_defaults() -> dict[str, Any]:
    """``{"buildkit": {...}}``: every key Invoke should know (None: not set), so each
    ``INVOKE_BUILDKIT_*`` environment variable is loaded."""
    tree: dict[str, Any] = {}
    for o in OPTIONS:
        if o.env_var is None or o.kind == "table":
            continue
        node = tree
        *parents, leaf = o.path
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = None
    return {"buildkit": tree}


def _table_name(table: str) -> str:
    return "tool.buildkit" + (f".{table}" if table else "")


def check_keys(raw: Mapping[str, Any], where: str) -> None:
    """Reject a key no table has, or one written in the wrong table, naming ``where`` (the
    file or config it came from) and the nearest valid key. Raises ConfigError."""
    for table, key in _walk(raw, ""):
        allowed = TABLES.get(table, set())
        option = BY_KEY.get(f"{table}.{key}" if table else key)
        if option is not None and option.invoke_only and where.endswith(".toml"):
            raise ConfigError(
                f"{where}: [tool.buildkit] {key}: unknown key here; it is Invoke config only "
                f"(buildkit.{key} in invoke.yaml, or {option.env_var})"
            )
        if key in allowed:
            continue
        shown = f"[{_table_name(table)}]".replace(".*", "")
        elsewhere = sorted(t for t, keys in TABLES.items() if key in keys and t != table)
        if elsewhere:
            hint = f"it belongs in [{_table_name(elsewhere[0])}]".replace(".*", "")
        else:
            near = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.6)
            hint = f"did you mean {near[0]!r}?" if near else f"known: {', '.join(sorted(allowed))}"
        raise ConfigError(f"{where}: {shown} {key}: unknown key; {hint}")


def check_env(environ: Mapping[str, str]) -> None:
    """Reject an ``INVOKE_BUILDKIT_*`` variable naming no key (Invoke would ignore it
    silently), with the nearest valid name. Raises ConfigError."""
    known = sorted(o.env_var for o in OPTIONS if o.env_var and o.kind != "table")
    for name in sorted(environ):
        if name.startswith(ENV_PREFIX) and name not in known:
            near = difflib.get_close_matches(name, known, n=1, cutoff=0.7)
            hint = f"did you mean {near[0]}?" if near else "see inv config.show for every key"
            raise ConfigError(f"environment variable {name}: no such setting; {hint}")


def _walk(table: Mapping[str, Any], at: str) -> Iterator[tuple[str, str]]:
    for key, value in table.items():
        yield at, key
        child = f"{at}.{key}" if at else key
        option = BY_KEY.get(child)
        if option is None:
            continue
        if option.free_keys:  # the user's keys; a table of tables has each entry checked
            if isinstance(value, Mapping) and f"{child}.*" in TABLES:
                for entry in value.values():
                    if isinstance(entry, Mapping):
                        yield from _walk(entry, f"{child}.*")
            continue
        if isinstance(value, Mapping):
            yield from _walk(value, child)
        elif isinstance(value, list) and f"{child}.*" in TABLES:
            for entry in value:
                if isinstance(entry, Mapping):
                    yield from _walk(entry, f"{child}.*")


def lookup(table: Mapping[str, Any], key: str) -> Any:
    """The value at dotted ``key`` in ``table``, or None."""
    node: Any = table
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


@dataclass(frozen=True)
class Effective:
    """One key's effective value as shown by ``config.show``, and where it came from."""

    key: str
    value: str
    source: str


def effective(
    pyproject: Mapping[str, Any],
    invoke: Mapping[str, Any],
    shown: Mapping[str, str],
    pyproject_path: str,
) -> list[Effective]:
    """Every top-level or table key (not per-image or per-host ones) with its value and
    source: ``env INVOKE_BUILDKIT_X`` / ``env BUILDKIT_X``, ``invoke config``, the
    ``pyproject.toml``, or ``default``. ``shown`` holds the effective values as text (from
    :func:`config.describe`); a key missing from it shows its default."""
    out = []
    for o in OPTIONS:
        if "*" in o.key or (o.kind == "table" and not o.free_keys and o.key != "discover"):
            continue
        value = shown.get(o.key, o.default)
        if o.env_var and os.environ.get(o.env_var) is not None:
            source = f"env {o.env_var}"
        elif lookup(invoke, o.key) is not None:
            source = "invoke config"
        elif lookup(pyproject, o.key) is not None:
            source = pyproject_path
        elif o.fallback_env and os.environ.get(o.fallback_env):
            source = f"env {o.fallback_env}"
        else:
            source = "default"
        out.append(Effective(o.key, value, source))
    return out


def reference_markdown() -> str:
    """The README's configuration reference: one row per key."""
    lines = [
        "| key | type | default | env var | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for o in OPTIONS:
        env = f"`{o.env_var}`" if o.env_var and o.kind != "table" else ""
        if o.fallback_env:
            env += f"{', ' if env else ''}`{o.fallback_env}`"
        where = " (Invoke config only)" if o.invoke_only else ""
        default = o.default.replace("|", "\\|")
        lines.append(f"| `{o.key}` | {o.kind} | {default} | {env} | {o.doc}{where} |")
    return "\n".join(lines) + "\n"

"""Settings: the ``[tool.buildkit]`` table of ``pyproject.toml``, overridden by Invoke config.

Precedence, lowest first: built-in defaults, ``[tool.buildkit]`` in the ``pyproject.toml`` at the
project root, Invoke config under ``buildkit`` (``invoke.yaml``, ``INVOKE_BUILDKIT_*`` env vars,
``ns.configure``), then task flags (applied by the tasks with :func:`dataclasses.replace`).
"""

from __future__ import annotations

import builtins
import math
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import batches, references
from .errors import ConfigError
from .references import valid_component

BUILDER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

PYPROJECT = "pyproject.toml"
LINT_TOOLS = ("ruff", "black", "isort", "mypy")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PLATFORM_RE = re.compile(r"^[a-z0-9]+/[a-z0-9_]+(?:/[a-z0-9]+)?$")


@dataclass(frozen=True)
class ImageSpec:
    """One image to build.

    ``name`` is the repository name (the last part of the image reference); ``context`` an
    absolute build context directory; ``dockerfile`` an absolute path; ``platforms`` the
    platforms this image may be built for (empty: any); ``max_size_mb`` its size budget
    (megabytes, 10^6 bytes; a build over it fails); ``version_paths`` (relative to the project
    root): when set, the image gets its own version from the last commit touching them.
    """

    name: str
    context: Path
    dockerfile: Path
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    platforms: tuple[str, ...] = ()
    max_size_mb: float | None = None
    version_paths: tuple[str, ...] = ()
    push: bool = True
    extra_build_args: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()  # env var names passed as BuildKit secrets (--secret id=X,env=X)


@dataclass(frozen=True)
class ChartPublish:
    """``[tool.buildkit.helm.publish]``: a classic chart repository kept in a git branch (what
    ``helm.publish`` updates, as chartpress's ``--publish-chart``). ``git``: the repository
    (URL or local path; credentials come from git's own credential helpers, never the URL);
    ``branch`` (default ``gh-pages``); ``url``: where the branch is served, written into
    ``index.yaml``."""

    git: str
    url: str
    branch: str = "gh-pages"


@dataclass(frozen=True)
class VersionFile:
    """A file stamped with version info: ``template`` (a Jinja2 file relative to the project
    root, or None for the built-in ``version.json.j2``) rendered to ``path`` (relative to
    ``output_dir``)."""

    template: Path | None
    path: str


@dataclass(frozen=True)
class Discover:
    """``[tool.buildkit.discover]``: find Dockerfiles under ``roots`` (absolute), leaving out
    paths matching ``ignore`` (gitignore patterns, relative to the project root); name each
    image from its ``LABEL <name_label>=...`` when set and present (a value with a registry or
    path keeps its last component: ``localhost:5000/acme/api`` names ``api``), else its folder
    name. ``local_prefixes``: reference prefixes (besides ``registry``) that mark a project
    image (``local-only`` for ``FROM local-only/base:latest``). ``bare_names``: whether a bare
    ``FROM <name>`` names a project image (None: on unless ``local_prefixes`` are set).
    ``skip_label``: a Dockerfile whose label of that name is true (``true``, ``yes``, ``1``,
    ``on``, any case) is left out. ``local_label`` (``KEY=VALUE``): a Dockerfile whose label
    KEY has VALUE is a build-only image (``push = false``)."""

    roots: tuple[Path, ...] = ()
    ignore: tuple[str, ...] = ()
    name_label: str | None = None
    local_prefixes: tuple[str, ...] = ()
    bare_names: bool | None = None
    skip_label: str | None = None
    local_label: tuple[str, str] | None = None


@dataclass(frozen=True)
class HostSpec:
    """One ``[[tool.buildkit.hosts]]`` entry: a remote build host reached over SSH.

    ``address`` ``user@host[:port]`` is split into ``user`` (default: the local user),
    ``hostname`` and ``port`` (default 22). ``platforms`` it builds natively; ``workdir`` on the
    host (relative paths are under the remote user's home; default ``buildkit-tasks``);
    ``identity_file`` a local private key; ``gateway`` another host's ``name`` to jump through;
    ``max_jobs`` how many images it builds at once (sets ``parallel`` there; default: its CPU
    count); ``password_env`` the name of a local environment variable holding an SSH password
    (password authentication is off unless this is set); ``transfer`` how the work tree is
    copied: ``auto`` (rsync when both ends have it and no gateway or password is involved,
    else tar over SFTP), ``rsync`` or ``sftp``.
    """

    name: str
    hostname: str
    user: str
    port: int = 22
    platforms: tuple[str, ...] = ()
    workdir: str = "buildkit-tasks"
    identity_file: Path | None = None
    gateway: str | None = None
    max_jobs: int | None = None
    password_env: str | None = None
    transfer: str = "auto"

    @property
    def address(self) -> str:
        """``user@host:port`` as written for people."""
        return f"{self.user}@{self.hostname}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        """How ``known_hosts`` names this host: ``host`` on port 22, else ``[host]:port``."""
        return self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"


@dataclass(frozen=True)
class Settings:
    """Everything the build needs to know, with paths made absolute.

    Keys (``[tool.buildkit]`` / Invoke ``buildkit.*``): ``registry`` (repository prefix, default
    ``""``), ``output_dir`` (default ``"dist"``), ``platforms`` (default: the engine's own),
    ``source`` (URL for the
    ``org.opencontainers.image.source`` label; default: git's ``origin`` remote),
    ``parallel`` (default: CPU count), ``batch`` (build what must be built in bake
    batches first; default true), ``batch_size`` (most images per bake, default 40),
    ``builder`` (the buildx builder every build, bake and imagetools call uses; default
    buildx's current),
    ``atomic`` (``image.push`` pushes every image by digest and tags
    only when all succeeded; default true), ``pull`` (``image.build`` pulls an image the
    registry holds with its input key instead of building it; default true),
    ``reproducible`` (every image built with ``SOURCE_DATE_EPOCH`` = the commit time and its
    timestamps rewritten, through an OCI layout; default false), ``provenance`` (SLSA
    provenance attestation on pushed images: ``min``, ``max`` or ``off``; default ``min``),
    ``cosign_key`` (private key file ``image.sign`` signs with; else env
    ``BUILDKIT_COSIGN_KEY`` holding the key; its password from env ``COSIGN_PASSWORD``),
    ``cosign_public_key`` (file ``image.verify`` checks signatures with), ``tlog_upload``
    (record signatures in the Rekor transparency log; default false: private registries),
    ``sbom`` (``image.sign`` also attaches each platform's SPDX SBOM as a cosign attestation
    when syft or trivy is installed; default true),
    ``images``,
    ``helm.charts``,
    ``helm.image_values`` (value path -> image name: the stamped chart copy gets this build's
    references), ``helm.repository``
    (``oci://`` target of ``helm.push``; default ``oci://<registry>/charts``),
    ``helm.version_paths`` (chart directory -> paths: that chart's own version from the last
    commit touching them), ``version.files``,
    ``version.tag_pattern`` (glob of release tags, ``*`` standing for the version; default
    ``v*``, e.g. ``api-v*`` in a monorepo), ``version.dev_style`` (``bump``: 2.3.1.dev3, or
    ``post``: 2.3.0.post3.dev0), ``lint.paths`` (default ``["."]``), ``test.args`` (default
    ``[]``), ``registry_user``
    (else env ``BUILDKIT_REGISTRY_USER``), ``password_file`` (else env
    ``BUILDKIT_REGISTRY_PASSWORD``), ``own_docker_config`` (log in to the user's own Docker
    config instead of a throw-away one; default false), ``cache`` (``none``, ``registry``:
    ``<repository>:buildcache``, or ``local``: ``cache_dir``, default ``.buildkit-cache``),
    ``push_retries`` (default 3), ``hosts`` (``[[tool.buildkit.hosts]]``, see
    :class:`HostSpec`), ``known_hosts`` (file checked for host keys; default
    ``~/.ssh/known_hosts``), ``accept_new_host_keys`` (trust and record unknown host keys on first
    use; default false), ``connect_timeout`` (seconds, default 10), ``wheelhouse`` (local
    directory of wheels shipped to hosts that cannot reach a package index; else env
    ``BUILDKIT_WHEELHOUSE``), ``remote_include`` (globs of git-ignored files that remote runs
    still copy, e.g. generated build inputs), ``archive.compression`` (``auto``, ``zstd``,
    ``gzip``, ``none``), ``progress`` (``auto``: live view on a terminal, plain lines in CI or
    when piped; or ``live``, ``plain``, ``verbose``, ``quiet``), ``lint.tools`` (from ``ruff``,
    ``black``, ``isort``, ``mypy``; default ``["ruff"]``), ``test.coverage`` (a floor in
    percent: pytest runs under coverage and fails below it), ``scan.severity`` (what trivy
    findings fail ``image.scan``; default ``CRITICAL``).
    """

    root: Path
    registry: str = ""
    source: str | None = None
    output_dir: Path = Path("dist")
    platforms: tuple[str, ...] = ()
    parallel: int = 1
    batch: bool = True
    batch_size: int = 40
    pull: bool = True
    builder: str | None = None  # the buildx builder (BUILDX_BUILDER) of every buildx call
    atomic: bool = True
    images: Mapping[str, ImageSpec] = field(default_factory=dict)
    charts: tuple[Path, ...] = ()
    version_files: tuple[VersionFile, ...] = (VersionFile(None, "version.json"),)
    lint_paths: tuple[str, ...] = (".",)
    test_args: tuple[str, ...] = ()
    discover: Discover | None = None
    registry_user: str | None = None
    password_file: Path | None = None
    own_docker_config: bool = False
    cache: str = "none"
    cache_dir: Path = Path(".buildkit-cache")
    push_retries: int = 3
    hosts: tuple[HostSpec, ...] = ()
    known_hosts: Path = Path("~/.ssh/known_hosts")
    accept_new_host_keys: bool = False
    connect_timeout: float = 10.0
    wheelhouse: Path | None = None
    remote_include: tuple[str, ...] = ()
    archive_compression: str = "auto"
    progress: str = "auto"
    image_values: Mapping[str, str] = field(default_factory=dict)
    chart_version_paths: Mapping[Path, tuple[str, ...]] = field(default_factory=dict)
    helm_repository: str | None = None
    tag_pattern: str = "v*"
    dev_style: str = "bump"
    lint_tools: tuple[str, ...] = ("ruff",)
    coverage_floor: float | None = None
    scan_severity: str = "CRITICAL"
    image_prefix: str = ""
    version_scheme: str = "pep440"
    base_version: str | None = None
    app_version: str = "image"
    reset_tag: str = "set-by-chartpress"
    reset_version: str = "0.0.1-set.by.chartpress"
    chart_publish: ChartPublish | None = None
    stop_grace: float = 5.0
    reproducible: bool = False
    provenance: str = "min"
    cosign_key: Path | None = None
    cosign_public_key: Path | None = None
    tlog_upload: bool = False
    sbom: bool = True

    @property
    def bare_names(self) -> bool:
        """Whether a bare ``FROM <name>`` names project image ``<name>``: discover
        ``bare_names`` when set, else true unless ``local_prefixes`` declare the project's
        convention."""
        d = self.discover
        if d is not None and d.bare_names is not None:
            return d.bare_names
        return not (d is not None and d.local_prefixes)

    def host(self, name: str, flag: str = "--host") -> HostSpec:
        """The host called ``name``. Raises ConfigError naming ``flag`` and listing the
        configured names."""
        for h in self.hosts:
            if h.name == name:
                return h
        known = ", ".join(h.name for h in self.hosts) or "none configured"
        raise ConfigError(f"{flag}: no host {name!r} in [[tool.buildkit.hosts]] (known: {known})")

    def repository(self, name: str) -> str:
        """The repository of image ``name``: ``<registry>/<image_prefix><name>``, or
        ``<image_prefix><name>`` with no registry."""
        return references.repository_of(self.registry, self.image_prefix, name)

    def reference(self, name: str, tag: str) -> str:
        """The image reference ``<registry>/<name>:<tag>``."""
        return f"{self.repository(name)}:{tag}"

    @property
    def logs_dir(self) -> Path:
        return self.output_dir / "logs"

    @property
    def report_path(self) -> Path:
        return self.output_dir / "build-report.json"


def find_root(start: Path) -> Path:
    """The nearest directory at or above ``start`` holding a ``pyproject.toml``.

    Raises ConfigError when there is none.
    """
    start = start.resolve()
    for d in (start, *start.parents):
        if (d / PYPROJECT).is_file():
            return d
    raise ConfigError(f"no {PYPROJECT} found in {start} or any parent directory")


def read_pyproject(root: Path) -> dict[str, Any]:
    """The parsed ``root/pyproject.toml``. Raises ConfigError when missing or invalid."""
    path = root / PYPROJECT
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); TOML is UTF-8") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: a directory, not a file") from None


def read_table(root: Path) -> dict[str, Any]:
    """The ``[tool.buildkit]`` table of ``root/pyproject.toml`` (``{}`` when absent)."""
    path = root / PYPROJECT
    data = read_pyproject(root)
    tool = data.get("tool", {})
    if not isinstance(tool, dict):
        raise ConfigError(f"{path}: 'tool' must be a table ([tool.*] sections), got {tool!r}")
    table = tool.get("buildkit", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.buildkit] must be a table")
    return table


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``over`` onto ``base``; a ``None`` in ``over`` means "not set"."""
    out = dict(base)
    for key, value in over.items():
        if value is None:
            continue
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load(root: Path, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Read and validate settings for the project at ``root``.

    ``overrides`` is the Invoke ``buildkit`` config subtree (or any mapping of the same keys).
    Raises ConfigError with the file and key at fault.
    """
    from .options import check_keys

    root = root.resolve()
    table = read_table(root)
    check_keys(table, str(root / PYPROJECT))
    given = prune(overrides or {})
    check_keys(given, "Invoke config 'buildkit'")
    return parse(root, merge(table, given), from_invoke=given)


def prune(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` without its None entries, and without tables left empty by that (Invoke
    knows every key, unset ones as None: they are not settings)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            inner = prune(value)
            if inner:
                out[key] = inner
        elif value is not None:
            out[key] = value
    return out


class _Reader:
    """Typed access to one table, with errors that name the file and the key."""

    def __init__(
        self,
        root: Path,
        table: Mapping[builtins.str, Any],
        where: builtins.str,
        from_invoke: Iterable[builtins.str] = (),
        real_root: Path | None = None,
    ) -> None:
        """``real_root``: ``root`` resolved, when the caller has it; else it is resolved on
        first use (once per reader: 164 image tables each resolving it cost ~10 ms)."""
        self.root, self.table, self.where = root, table, where
        self._real_root = real_root
        self.from_invoke = frozenset(from_invoke)  # keys Invoke's config (or env) set

    def fail(self, key: builtins.str, expected: builtins.str) -> ConfigError:
        """The error for ``key``, naming where its value came from: the env var
        ``INVOKE_BUILDKIT_<KEY>``, Invoke's config, or pyproject.toml."""
        got = self.table.get(key)
        if key in self.from_invoke:
            env = f"INVOKE_BUILDKIT_{key.upper()}"
            source = env if env in os.environ else f"Invoke config buildkit.{key}"
            return ConfigError(f"{source}: expected {expected}, got {got!r}")
        return ConfigError(
            f"{self.root / PYPROJECT}: [{self.where}] {key}: expected {expected}, got {got!r}"
        )

    def str(self, key: builtins.str, default: builtins.str | None = None) -> builtins.str | None:
        """A string key; control characters (a newline...) are refused: these values end up
        in files we write (ssh_config, TOML, Dockerfiles) and in command lines."""
        value = self.table.get(key, default)
        if value is not None and not isinstance(value, str):
            raise self.fail(key, "a string")
        if value is not None and _CONTROL.search(value):
            raise self.fail(key, "text without control characters (newlines, tabs, NUL...)")
        return value

    def str_list(
        self, key: builtins.str, default: tuple[builtins.str, ...] = ()
    ) -> tuple[builtins.str, ...]:
        value = self.table.get(key, default)
        if isinstance(value, str):  # INVOKE_BUILDKIT_PLATFORMS=a,b arrives as a string
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, "a list of strings")
        if any(_CONTROL.search(v) for v in value):
            raise self.fail(key, "strings without control characters (newlines, tabs, NUL...)")
        return tuple(value)

    def inside(self, key: builtins.str, rel: builtins.str, base: Path | None = None) -> Path:
        """``rel`` (relative to ``base``, default the project root; ``base`` is a directory
        this method returned, so already resolved) resolved, symlinks included; a ConfigError
        naming ``key`` when it lies outside the project (a build must neither read nor write
        there)."""
        if base is not None and rel not in ("", ".", "..") and os.sep not in rel:
            # one name inside a resolved directory (an image's Dockerfile in its context):
            # only that name can be a symlink, so resolve the whole path only if it is one
            path = base / rel
            if path.is_symlink():
                path = path.resolve()
        else:
            path = ((base or self.root) / rel).resolve()
        if self._real_root is None:
            self._real_root = self.root.resolve()
        root = self._real_root
        if not path.is_relative_to(root):
            raise self.fail(key, f"a path inside the project ({path} is outside {root})")
        return path

    def table_of(self, key: builtins.str) -> Mapping[builtins.str, Any]:
        value = self.table.get(key, {})
        if not isinstance(value, Mapping):
            raise self.fail(key, "a table")
        return value


def parse(root: Path, raw: Mapping[str, Any], from_invoke: Iterable[str] = ()) -> Settings:
    """Validate the merged ``raw`` table into :class:`Settings` (paths resolved from ``root``;
    ``from_invoke``: the top-level keys Invoke's config or env vars set, for error messages)."""
    top = _Reader(root, raw, "tool.buildkit", from_invoke)
    registry = top.str("registry", "") or ""
    if "://" in registry or registry.endswith(("/", "-")):
        raise top.fail(
            "registry",
            "a repository prefix without a scheme or a trailing '/' or '-', e.g. "
            '"quay.io/acme" (for a name prefix such as "k8s-" set image_prefix)',
        )
    if registry and references.try_parse(f"{registry}/x") is None:
        raise top.fail(
            "registry", 'a repository prefix such as "localhost:5000/acme" or "quay.io/acme"'
        )
    image_prefix = top.str("image_prefix", "") or ""
    if image_prefix and references.try_parse(f"{registry or 'x'}/{image_prefix}x") is None:
        raise top.fail(
            "image_prefix", 'text that starts repository names, e.g. "k8s-" or "acme/k8s-"'
        )
    output_dir = top.inside("output_dir", top.str("output_dir", "dist") or "dist")
    if output_dir == root or (output_dir.exists() and not output_dir.is_dir()):
        raise top.fail("output_dir", "a directory inside the project, not the project itself")
    platforms = _platforms(top, "platforms")

    parallel = _count(top, "parallel", os.cpu_count() or 1, 1)

    batch = _bool(top, "batch", True)
    pull = _bool(top, "pull", True)
    batch_size = _count(top, "batch_size", batches.DEFAULT_BATCH_SIZE, 1)
    builder = top.str("builder") or None
    if builder is not None and not BUILDER_NAME.fullmatch(builder):
        raise top.fail("builder", "a buildx builder name (letters, digits, '.', '_', '-')")
    atomic = _bool(top, "atomic", True)
    reproducible = _bool(top, "reproducible", False)
    provenance = top.str("provenance", "min") or "min"
    if provenance not in PROVENANCE_MODES:
        raise top.fail("provenance", "one of min, max, off")
    cosign_key, cosign_public_key = top.str("cosign_key"), top.str("cosign_public_key")

    real_root = root.resolve()
    images = {
        name: _image(root, name, table, real_root) for name, table in top.table_of("images").items()
    }
    secret = sorted(f"{n} ({', '.join(i.secrets)})" for n, i in images.items() if i.secrets)
    if provenance == "max" and secret:
        raise top.fail(
            "provenance",
            "min or off while images take secrets: max provenance records the whole build "
            f"request ({'; '.join(secret)})",
        )

    helm = _Reader(root, top.table_of("helm"), "tool.buildkit.helm")
    charts = []
    for chart in helm.str_list("charts"):
        path = helm.inside("charts", chart)
        if not (path / "Chart.yaml").is_file():
            raise helm.fail("charts", f"chart directories holding Chart.yaml ({path} has none)")
        charts.append(path)

    image_values = helm.table_of("image_values")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in image_values.items()):
        raise helm.fail("image_values", 'a table of "value.path" = "image name"')
    chart_paths: dict[Path, tuple[str, ...]] = {}
    vp = _Reader(root, helm.table_of("version_paths"), "tool.buildkit.helm.version_paths")
    for key in vp.table:
        if (root / key) not in charts:
            raise vp.fail(key, "a chart directory listed in [tool.buildkit.helm] charts")
        chart_paths[root / key] = vp.str_list(key)
    helm_repository = helm.str("repository")
    if helm_repository is not None and not helm_repository.startswith("oci://"):
        raise helm.fail("repository", "an oci:// reference, e.g. oci://registry.example/charts")

    version = _Reader(root, top.table_of("version"), "tool.buildkit.version")
    scheme = version.str("scheme", "pep440") or "pep440"
    if scheme not in VERSION_SCHEMES:
        raise version.fail("scheme", f"one of {', '.join(VERSION_SCHEMES)}")
    default_pattern = "*" if scheme == "chartpress" else "v*"
    tag_pattern = version.str("tag_pattern", default_pattern) or default_pattern
    if (
        tag_pattern.count("*") != 1
        or not tag_pattern.endswith("*")
        or any(ch in tag_pattern[:-1] for ch in "?[]\\")
    ):
        raise version.fail(
            "tag_pattern", "a literal prefix and one '*' for the version, e.g. 'api-v*' or '*'"
        )
    base_version = version.str("base_version")
    if base_version is not None and scheme != "chartpress":
        raise version.fail("base_version", 'nothing unless scheme = "chartpress"')
    if base_version is not None and not _base_version_ok(base_version):
        raise version.fail(
            "base_version", 'a SemVer version such as "5.0.0-0.dev", or major, minor or patch'
        )
    app_version = helm.str("app_version") or ("keep" if scheme == "chartpress" else "image")
    if app_version not in ("image", "keep"):
        raise helm.fail("app_version", "image (the image tag) or keep (Chart.yaml's own)")
    reset_tag = helm.str("reset_tag", "set-by-chartpress") or "set-by-chartpress"
    if not references.valid_tag(reset_tag):
        raise helm.fail("reset_tag", "a valid image tag")
    reset_version = helm.str("reset_version", RESET_VERSION) or ""
    if reset_version != RESET_VERSION and not semver_ok(reset_version):
        raise helm.fail("reset_version", "a SemVer 2 version (helm lint needs one)")
    chart_publish = None
    if "publish" in helm.table:
        pub = _Reader(root, helm.table_of("publish"), "tool.buildkit.helm.publish")
        git_repo, url = pub.str("git"), pub.str("url")
        if not git_repo:
            raise pub.fail("git", "the chart repository's git URL or local path")
        if re.match(r"^[a-z+]+://[^/@]*:[^/@]*@", git_repo):  # the value is not shown
            raise ConfigError(
                f"{root / PYPROJECT}: [tool.buildkit.helm.publish] git: expected a URL "
                "without a password (use a git credential helper or an SSH key)"
            )
        if not url:
            raise pub.fail("url", "the URL the branch is served at (index.yaml entries)")
        branch = pub.str("branch", "gh-pages") or "gh-pages"
        chart_publish = ChartPublish(git_repo, url.rstrip("/"), branch)
    dev_style = version.str("dev_style", "bump") or "bump"
    if dev_style not in ("bump", "post"):
        raise version.fail("dev_style", "bump (2.3.1.dev3) or post (2.3.0.post3.dev0)")
    files = version.table.get("files")
    version_files: tuple[VersionFile, ...] = Settings.version_files
    if files is not None:
        if not isinstance(files, list) or not all(
            isinstance(f, Mapping) and isinstance(f.get("path"), str) for f in files
        ):
            raise version.fail("files", 'a list of {template = "...", path = "..."} tables')
        version_files = tuple(
            VersionFile(version.inside("files", f["template"]) if f.get("template") else None,
                        f["path"])
            for f in files
        )  # fmt: skip
        for vf in version_files:
            version.inside("files", vf.path, output_dir)
        for vf in version_files:
            if vf.template is not None and not vf.template.is_file():
                raise version.fail("files", f"template files that exist ({vf.template} does not)")

    discover = None
    if "discover" in raw:
        d = _Reader(root, top.table_of("discover"), "tool.buildkit.discover")
        roots = tuple(d.inside("roots", r) for r in d.str_list("roots", (".",)))
        for r in roots:
            if not r.is_dir():
                raise d.fail("roots", f"existing directories ({r} is not one)")
        local_label = d.str("local_label")
        key, eq, value = (local_label or "").partition("=")
        if local_label is not None and not (key.strip() and eq):
            raise d.fail("local_label", 'a "KEY=VALUE" label, e.g. "REGISTRY=local-only"')
        ignore = d.str_list("ignore")
        _gitignore(d, "ignore", ignore)
        discover = Discover(
            roots=roots,
            ignore=ignore,
            name_label=d.str("name_label"),
            local_prefixes=tuple(p.rstrip("/") for p in d.str_list("local_prefixes")),
            bare_names=_bool(d, "bare_names", None),
            skip_label=d.str("skip_label"),
            local_label=(key.strip(), value.strip()) if local_label is not None else None,
        )

    cache = top.str("cache", "none") or "none"
    if cache not in ("none", "registry", "local"):
        raise top.fail("cache", "one of none, registry, local")
    password_file = top.str("password_file")
    retries = _count(top, "push_retries", 3, 0)

    hosts = _hosts(root, raw.get("hosts", []))
    timeout = _seconds(top, "connect_timeout", 10.0, 0.001, 3600)
    wheelhouse = top.str("wheelhouse") or os.environ.get("BUILDKIT_WHEELHOUSE")
    grace = _seconds(top, "stop_grace", 5.0, 0, 600)

    progress = top.str("progress", "auto") or "auto"
    if progress not in ("auto", "live", "plain", "verbose", "quiet"):
        raise top.fail("progress", "one of auto, live, plain, verbose, quiet")
    arch = _Reader(root, top.table_of("archive"), "tool.buildkit.archive")
    compression = arch.str("compression", "auto") or "auto"
    if compression not in ("auto", "zstd", "gzip", "none"):
        raise arch.fail("compression", "one of auto, zstd, gzip, none")

    lint = _Reader(root, top.table_of("lint"), "tool.buildkit.lint")
    test = _Reader(root, top.table_of("test"), "tool.buildkit.test")
    lint_paths = lint.str_list("paths", (".",))
    for entry in lint_paths:
        if entry.startswith("-"):
            raise lint.fail("paths", "paths, not options (an entry starts with '-')")
        lint.inside("paths", entry)
    tools = lint.str_list("tools", ("ruff",))
    unknown = [t for t in tools if t not in LINT_TOOLS]
    if unknown:
        raise lint.fail("tools", f"a list from {', '.join(LINT_TOOLS)}")
    floor = test.table.get("coverage")
    if isinstance(floor, str):  # INVOKE_BUILDKIT_TEST_COVERAGE=80
        try:
            floor = float(floor)
        except ValueError:
            raise test.fail("coverage", "a percentage from 0 to 100") from None
    if floor is not None and (
        isinstance(floor, bool) or not isinstance(floor, (int, float)) or not 0 <= floor <= 100
    ):
        raise test.fail("coverage", "a percentage from 0 to 100")
    scan = _Reader(root, top.table_of("scan"), "tool.buildkit.scan")
    severity = scan.str("severity", "CRITICAL") or "CRITICAL"
    if not set(severity.split(",")) <= {"UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"}:
        raise scan.fail("severity", "comma-separated trivy severities, e.g. HIGH,CRITICAL")
    return Settings(
        root=root,
        registry=registry,
        source=top.str("source"),
        output_dir=output_dir,
        platforms=platforms,
        parallel=parallel,
        batch=batch,
        batch_size=batch_size,
        pull=pull,
        builder=builder,
        atomic=atomic,
        images=images,
        charts=tuple(charts),
        version_files=version_files,
        lint_paths=lint_paths,
        test_args=test.str_list("args"),
        discover=discover,
        registry_user=top.str("registry_user"),
        password_file=root / password_file if password_file else None,
        own_docker_config=_bool(top, "own_docker_config", False),
        cache=cache,
        # may be outside the project: CI runners keep build caches in a shared directory
        cache_dir=root / (top.str("cache_dir", ".buildkit-cache") or ".buildkit-cache"),
        push_retries=retries,
        hosts=hosts,
        known_hosts=root / os.path.expanduser(top.str("known_hosts") or "~/.ssh/known_hosts"),
        accept_new_host_keys=_bool(top, "accept_new_host_keys", False),
        connect_timeout=timeout,
        wheelhouse=(root / os.path.expanduser(wheelhouse)) if wheelhouse else None,
        remote_include=top.str_list("remote_include"),
        archive_compression=compression,
        progress=progress,
        image_values=dict(image_values),
        chart_version_paths=chart_paths,
        helm_repository=helm_repository.rstrip("/") if helm_repository else None,
        tag_pattern=tag_pattern,
        dev_style=dev_style,
        lint_tools=tools,
        coverage_floor=float(floor) if floor is not None else None,
        scan_severity=severity,
        image_prefix=image_prefix,
        version_scheme=scheme,
        base_version=base_version,
        app_version=app_version,
        reset_tag=reset_tag,
        reset_version=reset_version,
        chart_publish=chart_publish,
        reproducible=reproducible,
        provenance=provenance,
        cosign_key=root / os.path.expanduser(cosign_key) if cosign_key else None,
        cosign_public_key=(
            root / os.path.expanduser(cosign_public_key) if cosign_public_key else None
        ),
        tlog_upload=_bool(top, "tlog_upload", False),
        sbom=_bool(top, "sbom", True),
        stop_grace=grace,
    )


VERSION_SCHEMES = ("pep440", "chartpress")
RESET_VERSION = "0.0.1-set.by.chartpress"  # chartpress's own default resetVersion


_PLAIN_SEMVER = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)")


def semver_ok(version: str) -> bool:
    """Whether ``version`` is a SemVer 2 version (what Helm needs of a chart version).
    ``MAJOR.MINOR.PATCH`` is answered here; anything else by dunamai (imported only then:
    planning a build should not pay for it)."""
    if _PLAIN_SEMVER.fullmatch(version):
        return True
    from dunamai import Style, check_version

    try:
        check_version(version, Style.SemVer)
    except ValueError:
        return False
    return True


def _base_version_ok(base: str) -> bool:
    # chartpress: major/minor/patch, or SemVer once "-0.dev" is added to a release
    return base in ("major", "minor", "patch") or semver_ok(
        base if "-" in base else f"{base}-0.dev"
    )


_ADDRESS_RE = re.compile(r"^(?:(?P<user>[^@\s]+)@)?(?P<host>[A-Za-z0-9_.-]+)(?::(?P<port>\d+))?$")


def _hosts(root: Path, raw: Any) -> tuple[HostSpec, ...]:
    path = root / PYPROJECT
    if not isinstance(raw, list) or not all(isinstance(h, Mapping) for h in raw):
        raise ConfigError(f"{path}: [[tool.buildkit.hosts]] must be an array of tables")
    out: list[HostSpec] = []
    for i, table in enumerate(raw):
        r = _Reader(root, table, f"tool.buildkit.hosts.{i}")
        name = r.str("name")
        if not name or not valid_name(name):
            raise r.fail("name", "a host name of lowercase letters, digits, '.', '_', '-'")
        if any(h.name == name for h in out):
            raise r.fail("name", "a name no other host has")
        m = _ADDRESS_RE.match(r.str("address") or "")
        if not m:
            raise r.fail("address", "user@host or user@host:port")
        port = int(m["port"] or 22)
        if not 0 < port < 65536:
            raise r.fail("address", "a port from 1 to 65535")
        max_jobs = table.get("max_jobs")
        if max_jobs is not None and (
            not isinstance(max_jobs, int) or isinstance(max_jobs, bool) or max_jobs < 1
        ):
            raise r.fail("max_jobs", "a positive integer")
        identity = r.str("identity_file")
        transfer = r.str("transfer", "auto") or "auto"
        if transfer not in ("auto", "rsync", "sftp"):
            raise r.fail("transfer", "one of auto, rsync, sftp")
        out.append(
            HostSpec(
                name=name,
                hostname=m["host"],
                user=m["user"] or _local_user(),
                port=port,
                platforms=_platforms(r, "platforms"),
                workdir=(r.str("workdir", "buildkit-tasks") or "buildkit-tasks").rstrip("/"),
                identity_file=(root / os.path.expanduser(identity)) if identity else None,
                gateway=r.str("gateway"),
                max_jobs=max_jobs,
                password_env=r.str("password_env"),
                transfer=transfer,
            )
        )
    names = {h.name for h in out}
    for i, h in enumerate(out):
        if h.gateway is not None and (h.gateway not in names or h.gateway == h.name):
            raise ConfigError(
                f"{path}: [tool.buildkit.hosts.{i}] gateway: expected the name of another "
                f"host, got {h.gateway!r}"
            )
    return tuple(out)


def _local_user() -> str:
    import getpass

    return getpass.getuser()


def _count(reader: _Reader, key: str, default: int, minimum: int) -> int:
    """A whole-number key of at least ``minimum`` (an env var's digits count); ``2.5``,
    ``true`` or ``"x"`` are errors, never rounded or guessed."""
    value = reader.table.get(key, default)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer of at least {minimum}"
        raise reader.fail(key, what)
    return value


def _seconds(reader: _Reader, key: str, default: float, low: float, high: float) -> float:
    """A number of seconds from ``low`` to ``high`` (an env var's text counts); ``nan``,
    ``inf`` and booleans are errors."""
    value = reader.table.get(key, default)
    try:
        if isinstance(value, bool):
            raise TypeError
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not (math.isfinite(seconds) and low <= seconds <= high):
        raise reader.fail(key, f"a number of seconds from {low:g} to {high:g}")
    return seconds


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _bool(reader: _Reader, key: str, default: Any) -> Any:
    """A boolean key; from an env var (a string) only the usual spellings count:
    1/true/yes/on and 0/false/no/off, any case. Anything else is an error, never a guess."""
    value = reader.table.get(key, default)
    if isinstance(value, str):
        word = value.strip().lower()
        if word not in _TRUE + _FALSE:
            raise reader.fail(key, "true or false (1/0, yes/no, on/off)")
        value = word in _TRUE
    if value is not default and not isinstance(value, bool):
        raise reader.fail(key, "true or false")
    return value


def truthy(value: str | None) -> bool:
    """Whether a label or env value reads as true: 1/true/yes/on, any case."""
    return value is not None and value.strip().lower() in _TRUE


def _gitignore(reader: _Reader, key: str, patterns: tuple[str, ...]) -> None:
    import pathspec

    try:
        pathspec.GitIgnoreSpec.from_lines(patterns)
    except (ValueError, TypeError) as exc:
        raise reader.fail(key, f"gitignore patterns ({exc})") from None


def _platforms(reader: _Reader, key: str) -> tuple[str, ...]:
    platforms = reader.str_list(key)
    for p in platforms:
        if not _PLATFORM_RE.match(p):
            raise reader.fail(key, "platforms like 'linux/amd64' or 'linux/arm/v7'")
    return platforms


def platform_list(text: str | None, flag: str = "--platform") -> list[str]:
    """``"linux/amd64, linux/arm64"`` (a CLI flag's value) as a list; ConfigError naming
    ``flag`` for an entry that is not a platform like ``linux/amd64`` or ``linux/arm/v7``."""
    platforms = [p.strip() for p in (text or "").split(",") if p.strip()]
    for p in platforms:
        if not _PLATFORM_RE.match(p):
            raise ConfigError(
                f"{flag}: expected platforms like 'linux/amd64' or 'linux/arm/v7', got {p!r}"
            )
    return platforms


def valid_name(name: str) -> bool:
    """Whether ``name`` is a valid repository path component (an image or host name)."""
    return valid_component(name)


def _image(root: Path, name: str, table: Any, real_root: Path) -> ImageSpec:
    where = f"tool.buildkit.images.{name}"
    if not valid_name(name):
        raise ConfigError(
            f"{root / PYPROJECT}: [{where}]: image name {name!r} is not a valid repository name "
            "(lowercase letters, digits, '.', '_', '-')"
        )
    if not isinstance(table, Mapping):
        raise ConfigError(f"{root / PYPROJECT}: [{where}] must be a table")
    r = _Reader(root, table, where, real_root=real_root)
    context_rel = r.str("context")
    if not context_rel:
        raise r.fail("context", "the build context directory, relative to pyproject.toml")
    context = r.inside("context", context_rel)
    if not context.is_dir():
        raise r.fail("context", f"an existing directory ({context} is not one)")
    dockerfile = r.inside("dockerfile", r.str("dockerfile", "Dockerfile") or "Dockerfile", context)
    if dockerfile.is_dir():
        raise r.fail("dockerfile", f"a file relative to the context ({dockerfile} is a directory)")
    if not dockerfile.is_file():
        raise r.fail("dockerfile", f"a file relative to the context ({dockerfile} does not exist)")
    budget = table.get("max_size_mb")
    if budget is not None and (
        isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget <= 0
    ):
        raise r.fail("max_size_mb", "a positive number of megabytes")
    build_args = r.table_of("build_args")
    if not all(isinstance(v, (str, int, float, bool)) for v in build_args.values()):
        raise r.fail("build_args", "a table of string values")
    extra = r.str_list("extra_build_args")
    secrets = r.str_list("secrets")
    for secret in secrets:
        if not ENV_NAME.fullmatch(secret):
            raise r.fail("secrets", "environment variable names (letters, digits, '_')")
        if secret in build_args:
            raise r.fail("secrets", f"names that are not also build_args ({secret} is both)")
    looks_secret = [k for k in build_args if SECRET_WORDS.search(str(k))]
    if looks_secret:
        raise r.fail(
            "build_args",
            f"no secrets ({', '.join(map(str, looks_secret))} looks like one: build args are "
            "kept in the image's history and provenance; list it in secrets to pass it as a "
            "BuildKit secret from the environment)",
        )
    for arg in extra:
        option = arg.split("=", 1)[0]
        if not option.startswith("-") or option in OWN_BUILD_OPTIONS:
            raise r.fail(
                "extra_build_args",
                "buildx build options we do not set ourselves (not "
                f"{', '.join(sorted(OWN_BUILD_OPTIONS))}), each starting with '-'",
            )
    return ImageSpec(
        name=name,
        context=context,
        dockerfile=dockerfile,
        build_args={str(k): str(v) for k, v in build_args.items()},
        target=r.str("target"),
        platforms=_platforms(r, "platforms"),
        max_size_mb=float(budget) if budget is not None else None,
        version_paths=r.str_list("version_paths"),
        push=_bool(r, "push", True),
        extra_build_args=extra,
        secrets=secrets,
    )


# buildx options buildkit-tasks sets itself: extra_build_args may not change them
OWN_BUILD_OPTIONS = frozenset(
    "--tag -t --file -f --push --load --output -o --platform --builder --iidfile "
    "--metadata-file --build-context --target --cache-from --cache-to --provenance "
    "--attest --secret".split()
)
PROVENANCE_MODES = ("min", "max", "off")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# build arg names that hold a secret (as remote.py's words for environment variables)
SECRET_WORDS = re.compile(r"PASSWORD|PASSWD|TOKEN|SECRET|PRIVATE_KEY|API_KEY", re.IGNORECASE)


def describe(s: Settings) -> dict[str, str]:
    """The effective value of every top-level and table key of ``s`` as text, keyed as in
    :data:`options.OPTIONS` (what ``inv config.show`` prints). Paths are relative to the
    project root where they are inside it; secrets are never read."""

    def rel(p: Path | None) -> str:
        if p is None:
            return "none"
        return p.relative_to(s.root).as_posix() if p.is_relative_to(s.root) else str(p)

    def items(values: Iterable[str], empty: str = "[]") -> str:
        values = list(values)
        return ", ".join(values) if values else empty

    def flag(value: bool) -> str:
        return "true" if value else "false"

    d = s.discover
    out = {
        "root": str(s.root),
        "registry": s.registry or '""',
        "output_dir": rel(s.output_dir),
        "platforms": items(s.platforms, "engine's own"),
        "parallel": str(s.parallel),
        "batch": flag(s.batch),
        "batch_size": str(s.batch_size),
        "builder": s.builder or "buildx's current",
        "atomic": flag(s.atomic),
        "pull": flag(s.pull),
        "reproducible": flag(s.reproducible),
        "provenance": s.provenance,
        "cosign_key": rel(s.cosign_key)
        if s.cosign_key
        else ("env BUILDKIT_COSIGN_KEY" if os.environ.get("BUILDKIT_COSIGN_KEY") else "none"),
        "cosign_public_key": rel(s.cosign_public_key),
        "tlog_upload": flag(s.tlog_upload),
        "sbom": flag(s.sbom),
        "source": s.source or "git `origin` URL",
        "cache": s.cache,
        "cache_dir": rel(s.cache_dir),
        "registry_user": s.registry_user or os.environ.get("BUILDKIT_REGISTRY_USER") or "none",
        "password_file": rel(s.password_file),
        "own_docker_config": flag(s.own_docker_config),
        "push_retries": str(s.push_retries),
        "progress": s.progress,
        "known_hosts": str(s.known_hosts),
        "accept_new_host_keys": flag(s.accept_new_host_keys),
        "connect_timeout": f"{s.connect_timeout:g}",
        "stop_grace": f"{s.stop_grace:g}",
        "wheelhouse": rel(s.wheelhouse),
        "remote_include": items(s.remote_include),
        "images": items(s.images, "none configured"),
        "discover": "on" if d is not None else "off",
        "helm.charts": items(rel(c) for c in s.charts),
        "helm.image_values": items(f"{k} = {v}" for k, v in s.image_values.items()),
        "helm.version_paths": items(
            f"{rel(k)} = {list(v)}" for k, v in s.chart_version_paths.items()
        ),
        "helm.repository": s.helm_repository or "oci://<registry>/charts",
        "helm.app_version": s.app_version,
        "helm.reset_tag": s.reset_tag,
        "helm.reset_version": s.reset_version,
        "helm.publish.git": s.chart_publish.git if s.chart_publish else "none",
        "helm.publish.branch": s.chart_publish.branch if s.chart_publish else "gh-pages",
        "helm.publish.url": s.chart_publish.url if s.chart_publish else "none",
        "image_prefix": s.image_prefix or '""',
        "version.scheme": s.version_scheme,
        "version.base_version": s.base_version or "the last tag",
        "version.tag_pattern": s.tag_pattern,
        "version.dev_style": s.dev_style,
        "version.files": items(f.path for f in s.version_files),
        "lint.paths": items(s.lint_paths),
        "lint.tools": items(s.lint_tools),
        "test.args": items(s.test_args),
        "test.coverage": "none" if s.coverage_floor is None else f"{s.coverage_floor:g}",
        "scan.severity": s.scan_severity,
        "archive.compression": s.archive_compression,
        "hosts": items((h.name for h in s.hosts), "none"),
    }
    if d is not None:
        out.update(
            {
                "discover.roots": items(rel(r) or "." for r in d.roots),
                "discover.ignore": items(d.ignore),
                "discover.name_label": d.name_label or "folder name",
                "discover.local_prefixes": items(d.local_prefixes),
                "discover.bare_names": flag(s.bare_names),
                "discover.skip_label": d.skip_label or "none",
                "discover.local_label": "=".join(d.local_label) if d.local_label else "none",
            }
        )
    return out

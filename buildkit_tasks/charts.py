"""Package the project's Helm charts with the project version, reproducibly.

Each chart is staged in a temporary copy (the source tree is never touched): local ``file://``
dependencies are packaged and vendored into its ``charts/``, remote ones fetched with
``helm dependency build``; image values named in ``[tool.buildkit.helm.image_values]`` are set
to this build's references; then ``helm package`` writes
``<output_dir>/charts/<name>-<chart_version>.tgz`` with ``version`` the SemVer form of the
project version and ``appVersion`` the image tag. The archive is then rewritten in a fixed
form (sorted entries, normalised modes and owners, times from ``SOURCE_DATE_EPOCH`` or the
commit date) so the same inputs give the same bytes.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from .buildplan import BuildPlan, ChartPlan
from .config import Settings
from .engines import helm
from .errors import CommandError, ConfigError
from .fsutil import atomic_path, created_dirs, scratch_dir, write_text_atomic
from .references import is_loopback, registry_host
from .runner import Runner

DEFAULT_EPOCH = 315532800  # 1980-01-01, the earliest time a zip or tar tool agrees on


@dataclass(frozen=True)
class ChartResult:
    """A packaged chart: ``path`` of its ``.tgz``."""

    name: str
    version: str
    app_version: str
    path: Path

    def as_dict(self, output_dir: Path) -> dict[str, str]:
        """The report entry (``path`` relative to ``output_dir``)."""
        return {
            "name": self.name,
            "version": self.version,
            "app_version": self.app_version,
            "path": self.path.relative_to(output_dir).as_posix(),
        }

    @classmethod
    def from_dict(cls, entry: dict[str, str], output_dir: Path) -> ChartResult:
        """Back from a report entry written by :meth:`as_dict`."""
        return cls(
            entry["name"], entry["version"], entry["app_version"], output_dir / entry["path"]
        )


def _yaml() -> Any:
    from ruamel.yaml import YAML

    y = YAML()  # round-trip: comments and key order survive in the stamped copy
    y.preserve_quotes = True
    return y


def load_yaml(path: Path) -> Any:
    """A YAML file whose top level is a mapping (``Chart.yaml``, ``values.yaml``,
    ``index.yaml``; an empty file is ``{}``), in round-trip form, its indentation remembered
    for :func:`dump_yaml`. Raises ConfigError naming it when it cannot be read, does not parse
    or is not a mapping."""
    from ruamel.yaml.util import load_yaml_guess_indent

    try:
        text = path.read_text(encoding="utf-8")
        data: Any = _yaml().load(text) or {}
        _, indent, offset = load_yaml_guess_indent(text)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except Exception as exc:  # ruamel.yaml's YAMLError family, undecodable bytes
        raise ConfigError(f"{path}: invalid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, Mapping):
        kind = "a list" if isinstance(data, list) else f"{type(data).__name__} {data!r:.40}"
        raise ConfigError(f"{path}: expected keys and values at the top level, got {kind}")
    if hasattr(data, "__dict__") and indent:  # ruamel's CommentedMap/Seq take attributes
        mapping = indent if offset is None else max(indent - offset, 2)
        cast(Any, data)._buildkit_indent = (mapping, indent, offset or 0)
    return data


def dump_yaml(data: Any, path: Path) -> None:
    """Write ``data`` to ``path`` (atomically), indented as the file was (``load_yaml``'s
    guess), so stamping a source file changes only the stamped values."""
    y = _yaml()
    indent = getattr(data, "_buildkit_indent", None)
    if indent is not None:
        mapping, sequence, offset = indent
        y.indent(mapping=mapping, sequence=sequence, offset=offset)
    buf = io.StringIO()
    y.dump(data, buf)
    write_text_atomic(path, buf.getvalue())


def source_epoch(root: Path) -> int:
    """``SOURCE_DATE_EPOCH`` when set, else the commit date of ``HEAD``, else 1980-01-01."""
    from .versioning import source_date_epoch

    epoch = source_date_epoch(root)
    return DEFAULT_EPOCH if epoch is None else epoch


def set_image_values(values: Any, references: Mapping[str, tuple[str, str]], where: str) -> None:
    """Set image values in ``values`` (a parsed values.yaml) in place, as chartpress does.

    ``references``: value path -> (repository, tag) of the image it names
    (:attr:`buildplan.ChartPlan.image_values`). A path is dotted keys, a number indexing a
    list (``singleuser.profileList.0.image``). At a mapping, whichever of ``name`` and
    ``repository`` it holds is set to the repository (a schema that allows only one of them
    keeps validating) and ``tag`` to the tag; at a string, the whole ``repository:tag``.
    Raises ConfigError naming ``where`` (the values file) and the path: a path that does not
    exist (a typo never adds keys), a mapping with neither ``name`` nor ``repository``, any
    other kind of value.
    """
    for path, (repository, tag) in references.items():
        parent, key = _locate(values, path, where)
        current: Any = parent[key]
        if isinstance(current, MutableMapping):
            keys = [k for k in IMAGE_REPOSITORY_KEYS if k in current]
            if not keys:
                raise ConfigError(
                    f"{where}: image value {path!r} is a mapping with neither "
                    f"{' nor '.join(IMAGE_REPOSITORY_KEYS)}; add one (and tag)"
                )
            for k in keys:
                current[k] = repository
            current["tag"] = tag
        elif isinstance(current, str):
            parent[key] = f"{repository}:{tag}"
        else:
            raise ConfigError(
                f"{where}: image value {path!r} holds {type(current).__name__}, expected a "
                "mapping (name or repository, and tag) or a string (the whole reference)"
            )


IMAGE_REPOSITORY_KEYS = ("name", "repository")


def _locate(values: Any, path: str, where: str) -> tuple[Any, str | int]:
    """(the mapping or list holding the last part of ``path``, that key or index)."""
    node, parts = values, path.split(".")
    for i, part in enumerate(parts):
        key: str | int = part
        if isinstance(node, list) and part.isdigit():
            key = int(part)
            found = key < len(node)
        elif isinstance(node, Mapping):
            found = part in node
        else:
            found = False
        if not found:
            at = ".".join(parts[:i]) or "the top level"
            raise ConfigError(f"{where}: image value path {path!r}: no {part!r} under {at}")
        if i == len(parts) - 1:
            return node, key
        node = node[key]
    raise ConfigError(f"{where}: empty image value path")


def dependencies(chart: Path) -> list[dict[str, Any]]:
    """``dependencies`` of ``chart/Chart.yaml``."""
    data = load_yaml(chart / "Chart.yaml")
    deps = data.get("dependencies") or []
    if not isinstance(deps, list):
        raise ConfigError(f"{chart / 'Chart.yaml'}: dependencies must be a list")
    return [dict(d) for d in deps]


def reproducible(src: Path, dest: Path, epoch: int) -> None:
    """Rewrite the chart archive ``src`` to ``dest``: entries sorted by name, owner 0:0 with
    no names, modes 0644/0755, every time ``epoch``, gzip header without name or time."""
    with tarfile.open(src, "r:gz") as tin:
        members = sorted(tin.getmembers(), key=lambda m: m.name)
        blobs = {m.name: tin.extractfile(m).read() for m in members if m.isfile()}  # type: ignore[union-attr]
    raw = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=epoch, compresslevel=9) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tout:
            for m in members:
                if not (m.isfile() or m.isdir()):
                    raise CommandError(f"{src}: unexpected entry {m.name} in the chart archive")
                info = tarfile.TarInfo(m.name)
                info.type = m.type
                info.mtime = epoch
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mode = 0o755 if m.isdir() or m.mode & 0o111 else 0o644
                data = blobs.get(m.name, b"")
                info.size = len(data) if m.isfile() else 0
                tout.addfile(info, io.BytesIO(data) if m.isfile() else None)
    dest.write_bytes(raw.getvalue())


class _Stager:
    """Builds the staged copy of one chart (and, recursively, its file:// subcharts)."""

    def __init__(self, settings: Settings, runner: Runner, work: Path):
        self.s, self.runner, self.work = settings, runner, work

    def stage(self, chart: Path, plan: ChartPlan | None) -> Path:
        """Copy ``chart`` into the work dir and make it ready for ``helm package``: the top
        chart gets ``plan``'s image values; a vendored subchart (``plan`` None) keeps its own."""
        dest = Path(tempfile.mkdtemp(prefix="stage-", dir=self.work)) / chart.name
        shutil.copytree(chart, dest, symlinks=False)
        local: list[dict[str, Any]] = []
        remote: list[dict[str, Any]] = []
        for dep in dependencies(chart):
            repo = str(dep.get("repository") or "")
            (local if repo.startswith("file://") else remote).append(dep)
        for dep in local:
            sub = (chart / dep["repository"][len("file://") :]).resolve()
            if not (sub / "Chart.yaml").is_file():
                raise ConfigError(
                    f"{chart / 'Chart.yaml'}: dependency {dep.get('name')!r}: {sub} is not a chart"
                )
            staged = self.stage(sub, None)
            (dest / "charts").mkdir(exist_ok=True)
            self._package(staged, dest / "charts")
        if remote:
            loopback = any(plain_http(str(d.get("repository"))) for d in remote)
            self.runner.run(
                helm.dependency_build_argv(dest, loopback),
                capture=True,
                what=f"helm dependency build {chart.name} (remote dependencies "
                f"{', '.join(str(d.get('repository')) for d in remote)} must be reachable)",
            )
        if plan is not None and plan.image_values:
            source = chart / "values.yaml"  # read from the source so errors name that file
            values = load_yaml(source) if source.is_file() else {}
            set_image_values(values, plan.image_values, _values_where(chart))
            dump_yaml(values, dest / "values.yaml")
        return dest

    def _package(
        self,
        chart: Path,
        dest_dir: Path,
        version: str | None = None,
        app_version: str | None = None,
    ) -> Path:
        out = Path(tempfile.mkdtemp(prefix="pkg-", dir=self.work))
        argv = helm.package_argv(chart, out, version, app_version)
        self.runner.run(argv, capture=True, what=f"helm package {chart.name}")
        made = list(out.glob("*.tgz"))
        if len(made) != 1:
            raise CommandError(f"helm package {chart}: expected one .tgz, found {len(made)}")
        final = dest_dir / made[0].name
        reproducible(made[0], final, source_epoch(self.s.root))
        return final


@contextlib.contextmanager
def staged(
    settings: Settings, plan: BuildPlan, runner: Runner
) -> Iterator[list[tuple[Path, Path]]]:
    """Staged copies of every chart of ``plan`` (dependencies vendored, image values set) for
    the ``with`` block: ``[(source chart, staged chart)]``, removed afterwards. ``helm lint``
    and ``helm package`` both work on these, so what is linted is what ships."""
    with tempfile.TemporaryDirectory(prefix="buildkit-charts-") as tmp:
        stager = _Stager(settings, runner, Path(tmp))
        yield [(ch.source, stager.stage(ch.source, ch)) for ch in plan.charts]


def package_all(settings: Settings, plan: BuildPlan, runner: Runner) -> list[ChartResult]:
    """Package every chart of ``plan`` (``[tool.buildkit.helm] charts``) with the version and
    ``appVersion`` the plan gives; returns what was (with ``--dry``: would be) written.

    Each package is made from a staged copy and renamed into ``<output_dir>/charts``, so a
    failed run leaves no partial ``.tgz`` and the source tree is never modified. Raises
    CommandError (helm failed, a remote dependency unreachable) or ConfigError.
    """
    dest_dir = settings.output_dir / "charts"
    if runner.dry:
        for ch in plan.charts:
            argv = helm.package_argv(ch.source, dest_dir, ch.version, ch.packaged_app_version)
            runner.run(argv)
        return planned(settings, plan)
    results = []
    with created_dirs(dest_dir), scratch_dir(dest_dir, ".helm-") as tmp:
        stager = _Stager(settings, runner, tmp)
        for ch in plan.charts:
            staged = stager.stage(ch.source, ch)
            made = stager._package(staged, tmp, ch.version, ch.packaged_app_version)
            final = dest_dir / made.name
            with atomic_path(final) as part:
                os.replace(made, part)
            results.append(ChartResult(ch.name, ch.version, ch.app_version, final))
    return results


def planned(settings: Settings, plan: BuildPlan) -> list[ChartResult]:
    """The archives :func:`package_all` writes for ``plan`` (what ``--dry`` runs work with)."""
    dest_dir = settings.output_dir / "charts"
    return [
        ChartResult(ch.name, ch.version, ch.app_version, dest_dir / ch.filename)
        for ch in plan.charts
    ]


def oci_target(settings: Settings) -> str:
    """Where ``helm.push`` puts charts: ``[tool.buildkit.helm] repository``, else
    ``oci://<registry>/charts``. Raises ConfigError when neither is set."""
    if settings.helm_repository:
        return settings.helm_repository
    if not settings.registry:
        raise ConfigError(
            "helm.push: set [tool.buildkit] registry or [tool.buildkit.helm] repository"
        )
    return f"oci://{settings.registry}/charts"


def plain_http(target: str) -> bool:
    """Loopback registries speak plain HTTP (as Docker assumes for them)."""
    return is_loopback(registry_host(target))


@dataclass(frozen=True)
class PushResult:
    name: str
    version: str
    reference: str
    digest: str | None


def push_all(
    settings: Settings,
    results: list[ChartResult],
    runner: Runner,
    login_args: list[str],
    force: bool = False,
) -> list[PushResult]:
    """``helm push`` every packaged chart to :func:`oci_target`. A chart version the registry
    already holds is refused unless ``force``. Raises BuildkitError / CommandError."""
    from .errors import BuildkitError

    target = oci_target(settings)
    http = plain_http(target)
    pushed = []
    for ch in results:
        ref = f"{target}/{ch.name}"
        show = helm.show_chart_argv(ref, ch.version, http, login_args)
        if not force and runner.run(show, capture=True, check=False, stderr_to_devnull=True).ok:
            if not runner.dry:
                raise BuildkitError(
                    f"helm.push: chart {ch.name} {ch.version} is already in {target}; "
                    "a chart version is immutable: bump the version, or --force to overwrite"
                )
        with tempfile.TemporaryDirectory(prefix="buildkit-helm-push-") as tmp:
            log = Path(tmp) / "push.log"
            runner.run(
                helm.push_argv(ch.path, target, http, login_args),
                log=log,
                what=f"helm push {ch.name}",
            )
            said = log.read_text(errors="replace") if log.exists() else ""
        digest = next(
            (ln.split()[-1] for ln in said.splitlines() if ln.startswith("Digest:")), None
        )
        pushed.append(PushResult(ch.name, ch.version, f"{ref}:{ch.version}", digest))
    return pushed


def _values_where(chart: Path) -> str:
    return f"{chart / 'values.yaml'} ([tool.buildkit.helm.image_values])"


@dataclass(frozen=True)
class Stamped:
    """One source file ``helm.stamp`` rewrote (or, with ``--dry``, would): ``changes`` are
    ``key: old -> new`` lines."""

    path: Path
    changes: tuple[str, ...]


def stamp(
    settings: Settings, plan: BuildPlan, dry: bool = False, reset: bool = False
) -> list[Stamped]:
    """Write each chart's version, ``appVersion`` (with ``helm.app_version = "image"``) and
    image values into its source ``Chart.yaml`` and ``values.yaml``, as chartpress does by
    default (for scripts and docs builds that read the tree). ``reset`` puts the placeholders
    back instead: version ``helm.reset_version``, every image tag (and the stamped
    ``appVersion``) ``helm.reset_tag``, image names this build's repositories (chartpress's
    ``--reset``). Files are rewritten atomically with their comments, quotes and indentation,
    only when something changes; ``dry`` changes nothing. Raises ConfigError for a missing
    value path or an unreadable file."""
    out = []
    for ch in plan.charts:
        version = settings.reset_version if reset else ch.version
        app = settings.reset_tag if reset else ch.app_version
        chart_file = ch.source / "Chart.yaml"
        meta = load_yaml(chart_file)
        changes = []
        wanted = {"version": version, **({"appVersion": app} if ch.sets_app_version else {})}
        for key, value in wanted.items():
            if str(meta.get(key)) != value:
                changes.append(f"{key}: {meta.get(key)} -> {value}")
                meta[key] = value
        if changes:
            out.append(Stamped(chart_file, tuple(changes)))
            if not dry:
                dump_yaml(meta, chart_file)
        if not ch.image_values:
            continue
        values_file = ch.source / "values.yaml"
        values = load_yaml(values_file)
        before = _flat(values)
        refs = {
            path: (repo, settings.reset_tag if reset else tag)
            for path, (repo, tag) in ch.image_values.items()
        }
        set_image_values(values, refs, _values_where(ch.source))
        after = _flat(values)
        changes = [f"{k}: {before.get(k)} -> {v}" for k, v in after.items() if before.get(k) != v]
        if changes:
            out.append(Stamped(values_file, tuple(changes)))
            if not dry:
                dump_yaml(values, values_file)
    return out


def _flat(node: Any, at: str = "") -> dict[str, str]:
    """Every scalar of a parsed YAML document by dotted path (to say what stamping changed)."""
    if isinstance(node, Mapping):
        items: Iterator[tuple[Any, Any]] = iter(node.items())
    elif isinstance(node, list):
        items = iter(enumerate(node))
    else:
        return {at: str(node)}
    out: dict[str, str] = {}
    for key, value in items:
        out.update(_flat(value, f"{at}.{key}" if at else str(key)))
    return out

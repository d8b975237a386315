"""Docker Engine and buildx: build, inspect, save.

Builds go through the ``docker buildx build`` CLI (the SDK has no buildx); inspection through
the ``docker`` SDK. Everything here takes argv-ready values; nothing builds a shell string.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import os
import re
import shutil
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..console import emit
from ..errors import BuildkitError, CommandError
from ..references import name_and_tag, registry_host
from ..runner import Runner, Started

T = TypeVar("T")

DOCKER = "docker"


@dataclass(frozen=True)
class BuildRequest:
    """One ``docker buildx build``.

    ``contexts`` maps a reference as the Dockerfile writes it to the source to use for it
    (``docker-image://<ref>``, or ``target:<name>`` inside a bake), which is how an image
    builds from this run's result of another. ``platforms`` empty means the engine's own.
    ``push`` pushes, else the result is loaded into the local image store; ``oci_dest`` (with
    ``push`` false) also writes it as an OCI layout archive there, for a push by digest.
    ``source_date_epoch`` (seconds since 1970, with ``oci_dest``): a reproducible build, the
    ``SOURCE_DATE_EPOCH`` build arg and every timestamp in its layers rewritten to it, written
    only to the OCI layout (the engine's store refuses rewritten timestamps: load the layout,
    :func:`load_layout`). ``provenance``: ``min``/``max`` adds a SLSA provenance attestation,
    ``off`` none, None leaves buildx's default. ``secrets``: environment variable names each
    passed as a BuildKit secret of that id (their values never reach argv). ``no_cache``:
    BuildKit's cache is not used (every step runs).
    """

    context: Path
    dockerfile: Path
    tags: Sequence[str]
    labels: Mapping[str, str] = field(default_factory=dict)
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    platforms: Sequence[str] = ()
    contexts: Mapping[str, str] = field(default_factory=dict)
    push: bool = False
    iidfile: Path | None = None
    cache_from: Sequence[str] = ()
    cache_to: Sequence[str] = ()
    extra_args: Sequence[str] = ()  # config extra_build_args: options we do not model
    oci_dest: Path | None = None
    source_date_epoch: int | None = None
    provenance: str | None = None
    secrets: Sequence[str] = ()
    no_cache: bool = False

    @property
    def args(self) -> dict[str, str]:
        """Build args, with ``SOURCE_DATE_EPOCH`` for a reproducible build."""
        if self.source_date_epoch is None:
            return dict(self.build_args)
        return {**self.build_args, "SOURCE_DATE_EPOCH": str(self.source_date_epoch)}

    @property
    def secret_specs(self) -> list[str]:
        """``--secret`` values: each secret read by BuildKit from the environment."""
        return [f"id={name},env={name}" for name in self.secrets]


def outputs(req: BuildRequest) -> list[str]:
    """The exporters of ``req`` as ``--output`` values: the registry, or the local store and
    with ``oci_dest`` an OCI layout archive too (BuildKit 0.13 runs both in one build); a
    reproducible build only the layout, timestamps rewritten."""
    if req.push:
        return ["type=registry"]
    if req.oci_dest is not None and req.source_date_epoch is not None:
        return [f"type=oci,dest={req.oci_dest},rewrite-timestamp=true"]
    if req.oci_dest is not None:
        return [f"type=oci,dest={req.oci_dest}", "type=docker"]
    return ["type=docker"]


def build_argv(req: BuildRequest) -> list[str]:
    """The ``docker buildx build`` argv for ``req``."""
    argv = [DOCKER, "buildx", "build", "--progress=plain", "--file", str(req.dockerfile)]
    for tag in req.tags:
        argv += ["--tag", tag]
    for key, value in sorted(req.labels.items()):
        argv += ["--label", f"{key}={value}"]
    for key, value in sorted(req.args.items()):
        argv += ["--build-arg", f"{key}={value}"]
    for spec in req.secret_specs:
        argv += ["--secret", spec]
    if req.provenance is not None:
        argv.append(
            "--provenance=false"
            if req.provenance == "off"
            else f"--provenance=mode={req.provenance}"
        )
    if req.target:
        argv += ["--target", req.target]
    if req.platforms:
        argv += ["--platform", ",".join(req.platforms)]
    for name, source in sorted(req.contexts.items()):
        argv += ["--build-context", f"{name}={source}"]
    for spec in req.cache_from:
        argv += ["--cache-from", spec]
    for spec in req.cache_to:
        argv += ["--cache-to", spec]
    for spec in outputs(req):
        argv += ["--output", spec]
    if req.no_cache:
        argv.append("--no-cache")
    if req.iidfile and req.source_date_epoch is None:  # a layout only: no image in the store
        argv += ["--iidfile", str(req.iidfile)]
    argv += list(req.extra_args)
    argv.append(str(req.context))
    return argv


def build(runner: Runner, req: BuildRequest, log: Path) -> str:
    """Run the build, output appended to ``log``; returns the image ID (``sha256:...``).

    Raises CommandError with the log's last lines on failure.
    """
    runner.run(build_argv(req), log=log, what=f"docker buildx build of {req.tags[0]}")
    if runner.dry or req.iidfile is None or req.source_date_epoch is not None:
        return ""  # a reproducible build's ID is its layout's digest (images.ImageBuild.loaded)
    return req.iidfile.read_text().strip()


_BAKE_KEY_BAD = re.compile(r"[^a-zA-Z0-9_-]")


def bake_keys(names: Iterable[str]) -> dict[str, str]:
    """``{image name: bake target key}``. bake takes only ``[a-zA-Z0-9_-]+`` keys ("Invalid
    name" otherwise) while image names may hold dots and slashes (``base-python-cpu-3.10``):
    a valid name is its own key; any other has each invalid character replaced by ``_``, plus
    ``-`` and 8 hex digits of the name's SHA-256 when that would equal another key. Stable:
    the same names always give the same keys."""
    import hashlib

    names = sorted(set(names))
    valid = [n for n in names if n and not _BAKE_KEY_BAD.search(n)]
    keys = {n: n for n in valid}
    used = set(valid)
    for name in names:
        if name in keys:
            continue
        key = _BAKE_KEY_BAD.sub("_", name) or "_"
        if key in used:
            key = f"{key}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
        keys[name] = key
        used.add(key)
    return keys


def bake_definition(requests: Mapping[str, BuildRequest]) -> dict[str, Any]:
    """A ``docker buildx bake`` JSON definition with one target per request (the group
    ``default`` holds them all), each pushed when its request says ``push``, else loaded into
    the local store. Targets are keyed by :func:`bake_keys` of the request names, and a
    ``target:<name>`` context source names the dependency's key.

    buildx 0.13 fails ("unsupported context source target") when one target names the same
    ``target:`` under two keys (``FROM base`` and ``FROM <registry>/base:latest``); every key
    after the first gets a twin of that target instead (``<dep>--ctx<N>``: inherits it, no
    tags, cache-only output), which BuildKit solves once with the original.
    """
    keys = bake_keys(requests)
    targets: dict[str, Any] = {}
    twins: dict[str, Any] = {}
    for name, req in requests.items():
        t: dict[str, Any] = {
            "context": str(req.context),
            "dockerfile": str(req.dockerfile),
            "tags": list(req.tags),
            "labels": dict(req.labels),
            "args": req.args,
            "output": outputs(req),
        }
        if req.secrets:
            t["secret"] = req.secret_specs
        if req.no_cache:
            t["no-cache"] = True
        if req.provenance is not None:
            t["attest"] = [
                "type=provenance,disabled=true"
                if req.provenance == "off"
                else f"type=provenance,mode={req.provenance}"
            ]
        if req.target:
            t["target"] = req.target
        if req.platforms:
            t["platforms"] = list(req.platforms)
        if req.cache_from:
            t["cache-from"] = list(req.cache_from)
        if req.cache_to:
            t["cache-to"] = list(req.cache_to)
        contexts: dict[str, str] = {}
        uses: dict[str, int] = {}
        for key, source in sorted(req.contexts.items()):
            if source.startswith("target:"):
                dep = keys[source[len("target:") :]]
                uses[dep] = uses.get(dep, 0) + 1
                if uses[dep] > 1:
                    twin = f"{dep}--ctx{uses[dep] - 1}"
                    twins[twin] = {"inherits": [dep], "tags": [], "output": ["type=cacheonly"]}
                    dep = twin
                source = f"target:{dep}"
            contexts[key] = source
        if contexts:
            t["contexts"] = contexts
        targets[keys[name]] = t
    group = [keys[n] for n in requests]
    return {"group": {"default": {"targets": group}}, "target": {**targets, **twins}}


# Where the docker CLI looks for its plugins after ``<config dir>/cli-plugins`` (Linux).
PLUGIN_DIRS = (
    "/usr/local/lib/docker/cli-plugins",
    "/usr/local/libexec/docker/cli-plugins",
    "/usr/lib/docker/cli-plugins",
    "/usr/libexec/docker/cli-plugins",
)


def config_dir(env: Mapping[str, str]) -> str:
    """The Docker config directory commands run in environment ``env`` use: its
    ``DOCKER_CONFIG``, else ``~/.docker`` (the docker CLI's rule)."""
    return env.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")


def plugin_argv(argv: list[str], env: Mapping[str, str]) -> list[str]:
    """The argv that runs ``docker buildx ...`` (``argv``) in environment ``env``: the buildx
    plugin's own binary, standalone (``docker-buildx ...``), found where the docker CLI would
    find it (:func:`buildx_binary`); the CLI only starts it (~40 ms of CPU each time: its own
    start and a scan of its plugins). Any other argv, no docker CLI on ``env``'s ``PATH``, or
    no binary found: ``argv`` as it is (the CLI says what is missing). For
    :class:`~..runner.Runner` (``exec_argv``)."""
    if argv[:2] != [DOCKER, "buildx"]:
        return argv
    binary = buildx_binary(config_dir(env), env.get("PATH", os.defpath))
    return [binary, *argv[2:]] if binary else argv


@functools.lru_cache(maxsize=8)
def buildx_binary(config_dir: str, path: str = os.defpath) -> str | None:
    """The executable ``docker-buildx`` the docker CLI on ``path`` (a ``PATH`` value) runs
    for ``docker buildx``, given its config directory (``DOCKER_CONFIG``, default
    ``~/.docker``): the first in ``<config_dir>/cli-plugins``, then :data:`PLUGIN_DIRS`; None
    when there is none, no docker CLI on ``path``, or the config names further plugin
    directories (``cliPluginsExtraDirs``: the CLI's own search is left to it)."""
    if shutil.which(DOCKER, path=path) is None:
        return None
    try:
        config = json.loads(Path(config_dir, "config.json").read_text("utf-8"))
    except (OSError, ValueError):
        config = {}
    if not isinstance(config, dict) or config.get("cliPluginsExtraDirs"):
        return None
    for folder in (os.path.join(config_dir, "cli-plugins"), *PLUGIN_DIRS):
        path = os.path.join(folder, "docker-buildx")
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def bake_argv(metadata: Path) -> list[str]:
    """``docker buildx bake`` reading its definition from stdin (outputs are per target)."""
    return [
        DOCKER,
        "buildx",
        "bake",
        "--file",
        "-",
        "--progress=plain",
        "--metadata-file",
        str(metadata),
    ]


def start_bake(runner: Runner, log: Path, metadata: Path) -> Started:
    """``docker buildx bake`` started now, waiting for its definition on stdin (for
    :func:`bake`): the docker CLI and its buildx plugin take ~0.1-0.2 s to start (dialing the
    engine at once: a ping and BuildKit's session), so they start while the caller still
    makes what the definition names (its aliases). Output goes to ``log``, emptied first (a
    bake's log holds that bake only: :func:`split_bake_log` reads it whole); the caller
    finishes it with :func:`bake` or stops it with ``Started.cancel()``."""
    if not runner.dry:
        log.write_bytes(b"")
    return runner.start(
        bake_argv(metadata), log=None if runner.dry else log, stdin=True,
        what="docker buildx bake",
    )  # fmt: skip


def bake(
    runner: Runner,
    requests: Mapping[str, BuildRequest],
    log: Path,
    metadata: Path,
    started: Started | None = None,
) -> bool:
    """Build every request in one bake (definition on stdin, output to ``log``), in the bake
    ``started`` (:func:`start_bake`) or one started now. True when all succeeded; False when
    any failed (the rest are canceled by bake)."""
    import json

    definition = json.dumps(bake_definition(requests), indent=2)
    if runner.dry:
        emit(f"# bake definition (stdin):\n{definition}")
    if started is None:
        started = start_bake(runner, log, metadata)
    return started.finish(definition.encode(), check=False).ok


_VERTEX = re.compile(r"^#(\d+) \[([^\] ]+)[ \]]")


def split_bake_log(log: Path, per_target: Mapping[str, Path]) -> None:
    """Write each target's steps of a bake's plain progress log to its own file
    (``per_target``: image name -> file; the log names targets by :func:`bake_keys`).

    BuildKit names a step after the first target that asked for it, so a step two targets
    share is filed under one of them; the whole log stays in ``log``.
    """
    owner: dict[str, str] = {}
    by_key = {k: n for n, k in bake_keys(per_target).items()}
    out: dict[str, list[str]] = {name: [] for name in per_target}
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return
    for line in lines:
        m = _VERTEX.match(line)
        if m and m.group(2) in by_key:
            owner.setdefault(m.group(1), by_key[m.group(2)])
        num = line[1:].split(" ", 1)[0] if line.startswith("#") else ""
        target = owner.get(num)
        if target:
            out[target].append(line)
    for name, path in per_target.items():
        path.write_text("\n".join([f"# steps of {name} from {log.name}", *out[name]]) + "\n")


def bake_digests(metadata: Path, names: Iterable[str]) -> dict[str, str]:
    """``{image name: image digest}`` from a bake ``--metadata-file`` (keyed by
    :func:`bake_keys`)."""
    import json

    data = json.loads(metadata.read_text())
    keys = bake_keys(names)
    return {n: (data.get(k) or {}).get("containerimage.digest", "") for n, k in keys.items()}


_client_lock = threading.Lock()
# The engine tasks talk to: the environment's (DOCKER_HOST...) unless :func:`engine_at` chose
# another for a block. Kept in a context variable, never in os.environ, so nothing else in the
# process changes and threads driving different engines (a fan-out over build hosts) each see
# their own; pools hand it to their workers (:func:`in_context`).
_ENGINE: contextvars.ContextVar[tuple[tuple[tuple[str, str], ...], Any]] = contextvars.ContextVar(
    "buildkit_engine", default=((), None)
)
_clients: dict[tuple[tuple[tuple[str, str], ...], int], Any] = {}


@contextlib.contextmanager
def engine_at(env: Mapping[str, str], ssh_client: Any = None) -> Iterator[None]:
    """Talk to another engine for the block (in this thread and the pool workers it hands
    work to through :func:`in_context`): ``env`` (``DOCKER_HOST`` and what the docker CLI
    needs, for commands run through a Runner whose ``env`` holds it too) and, for an ``ssh://``
    engine, ``ssh_client``: an open ``paramiko.SSHClient`` the SDK's requests go through
    (``docker system dial-stdio`` on the host), so its host key checks are ours."""
    state = (tuple(sorted(env.items())), ssh_client)
    token = _ENGINE.set(state)
    try:
        yield
    finally:
        _ENGINE.reset(token)
        with _client_lock:
            _clients.pop((state[0], id(ssh_client)), None)


def engine_env() -> tuple[tuple[str, str], ...]:
    """The environment naming the engine this thread talks to (:func:`engine_at`; empty:
    this machine's, as the environment says)."""
    return _ENGINE.get()[0]


def in_context(fn: Callable[..., T]) -> Callable[..., T]:
    """``fn`` run in a copy of the caller's context (so the engine chosen by
    :func:`engine_at` follows work into pool threads); wrap at submit time."""
    ctx = contextvars.copy_context()

    def run(*args: Any, **kwargs: Any) -> T:
        return ctx.copy().run(fn, *args, **kwargs)

    return run


def client() -> Any:
    """The ``docker`` SDK client of the current engine (see :func:`engine_at`; else from the
    environment), made and pinged once per engine (threads share it). Raises BuildkitError
    when the engine cannot be reached."""
    env, ssh_client = _ENGINE.get()
    key = (env, id(ssh_client))
    with _client_lock:
        if key not in _clients:
            _clients[key] = _new_client(dict(env), ssh_client)
        return _clients[key]


def _new_client(engine_env: dict[str, str], ssh_client: Any) -> Any:
    import docker

    try:
        if ssh_client is not None:
            c = _ssh_client(engine_env["DOCKER_HOST"], ssh_client)
        else:
            # ssh:// engines go through the OpenSSH client (and its host key checks), not the
            # SDK's own paramiko transport.
            env = {**os.environ, **engine_env}
            ssh = env.get("DOCKER_HOST", "").startswith("ssh://")
            c = docker.from_env(use_ssh_client=ssh, environment=env)
        c.ping()
    except Exception as exc:  # docker.errors.DockerException and connection errors
        raise BuildkitError(
            f"cannot reach the Docker engine ({exc.__class__.__name__}); is dockerd running?"
        ) from None
    return c


def _ssh_client(base_url: str, ssh_client: Any) -> Any:
    """An SDK client whose requests go over ``ssh_client`` (already connected, host key
    checked): the SDK's SSH adapter with its paramiko client replaced by ours."""
    import docker
    from docker.transport.sshconn import SSHHTTPAdapter

    class Adapter(SSHHTTPAdapter):  # type: ignore[misc]
        def _create_paramiko_client(self, base_url: str) -> None:
            self.ssh_client = ssh_client
            self.ssh_params: dict[str, Any] = {}

        def _connect(self) -> None:  # connected (and reconnected) by its owner
            pass

    from .localapi import API_VERSION  # fixed: making the client must not ask the engine
    # before the SSH transport below is in place

    c = docker.DockerClient(base_url=base_url, version=API_VERSION, use_ssh_client=True)
    adapter = Adapter(base_url)
    c.api._custom_adapter = adapter
    c.api.mount("http+docker://ssh", adapter)
    return c


_NO_ANSWER = object()


def _local(
    method: str, path: str, query: Mapping[str, str] | None = None, absent: Any = _NO_ANSWER
) -> Any:
    """``<method> path`` answered by the current engine over its unix socket without the SDK
    (:mod:`.localapi`) when it is the local engine on its default socket (no SSH client, no
    context): the decoded answer (None when empty), ``absent`` when the engine says 404;
    :data:`_NO_ANSWER` when the engine is not that one or the request failed otherwise: the
    caller then asks the SDK (which raises its own errors)."""
    from . import containerd, localapi

    env, ssh_client = _ENGINE.get()
    if ssh_client is not None or not containerd.local_engine({**os.environ, **dict(env)}):
        return _NO_ANSWER
    try:
        return localapi.request(method, path, query)
    except localapi.APIError as exc:
        return absent if exc.status == 404 else _NO_ANSWER
    except OSError:
        return _NO_ANSWER


def reset_client() -> None:
    """Forget the cached SDK client (to reconnect)."""
    with _client_lock:
        _clients.clear()


def local_image(reference: str) -> LocalImage | None:
    """The local image ``reference`` names (one inspect call), or None when there is none."""
    import docker

    try:
        attrs = client().api.inspect_image(reference)
    except docker.errors.NotFound:
        return None
    tags = tuple(attrs.get("RepoTags") or ())
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    return LocalImage(attrs["Id"], tags, labels, int(attrs.get("Size") or 0))


# The engine is asked in LIST_CALLS calls at once (fewer for a handful of references), each for
# at most LIST_MAX references (500 make a URL of about 40 kB): a constant number of engine
# calls for graphs up to 2000 images.
LIST_CALLS, LIST_MAX = 4, 500


def local_images(
    references: Iterable[str],
    *,
    label: str,
    remember: bool = True,
    alias: Callable[[str, str], str | None] | None = None,
) -> dict[str, LocalImage]:
    """The local images ``references`` name, under each ``repository:tag`` naming them (look
    names up with :func:`find_local`), each with only its label ``label`` (the one asked
    about, e.g. the input key) in ``labels``; ``size`` is not reported here (0: see
    :func:`local_image`). ``remember``: keep what the engine lists of that label in
    :mod:`..imagecache` (false under ``--dry``). ``alias(reference, label value)``: the
    alias (:func:`alias_reference`) the image under that reference would have (None: none);
    where containerd answers, the alias of the image each tag was last seen naming is
    confirmed in its one quiet call, and each image's ``aliases`` holds those found naming
    it (the engine's list, filtered by reference, names no alias: there ``aliases`` stays
    empty and the caller makes them).

    For the local engine with the containerd store (:func:`_from_containerd`), which image
    each tag names is read from containerd (what each named last time confirmed in one call,
    the rest listed), and the engine is asked only about images whose label was never kept
    here, plus one image to confirm that containerd and the engine agree. Otherwise, and
    when that fails, the engine lists them all (:func:`_listed`)."""
    refs = sorted(set(references))
    found = _from_containerd(refs, label, remember, alias) if refs else None
    return found if found is not None else _listed(refs, label, remember)


def _listed(refs: Sequence[str], label: str, remember: bool) -> dict[str, LocalImage]:
    """:func:`local_images` by the engine: :data:`LIST_CALLS` calls (``GET /images/json``
    filtered by reference) made at once, instead of one inspect per image. Listing the whole
    store is no option: with the containerd store the engine works out every listed image's
    details (Engine 26: about 14 ms of engine CPU per image, one image after another within a
    call; moby#47564), and build machines hold thousands. Several calls let the engine use
    every core (164 images: 2.5 s in one call, 1.7 s in four on two cores); an image matched
    by two calls costs twice, so an image's tags stay in one call."""
    from .. import imagecache

    if not refs:
        return {}
    calls = max(min(LIST_CALLS, len(refs) // 16 or 1), -(-len(refs) // LIST_MAX))
    size = -(-len(refs) // calls)
    chunks: list[list[str]] = [[]]  # an image's tags (sorted next to each other): one call
    for i, ref in enumerate(refs):
        same_repository = i > 0 and ref.rpartition(":")[0] == refs[i - 1].rpartition(":")[0]
        if len(chunks[-1]) >= size and not same_repository:
            chunks.append([])
        chunks[-1].append(ref)

    def images(refs: list[str]) -> list[dict[str, Any]]:
        filters = json.dumps({"reference": refs})
        listed = _local("GET", "/images/json", {"filters": filters})
        if listed is _NO_ANSWER:
            return client().api.images(filters={"reference": refs})
        return listed

    if len(chunks) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(chunks), thread_name_prefix="image-list") as pool:
            listed = list(pool.map(in_context(images), chunks))
    else:
        listed = [images(c) for c in chunks]
    out: dict[str, LocalImage] = {}
    for attrs in (a for part in listed for a in part):
        tags = tuple(t for t in attrs.get("RepoTags") or () if t != "<none>:<none>")
        value = (attrs.get("Labels") or {}).get(label)
        image = LocalImage(attrs["Id"], tags, {} if value is None else {label: value})
        if remember:
            imagecache.remember(image.image_id, label, value)
        for tag in tags:
            out[tag] = image
    return out


# whether containerd answered for the engine in this process (None: not tried yet)
_containerd_agrees: dict[tuple[tuple[str, str], ...], bool] = {}
# the scope of the guesses the last lookup through containerd read (imagecache.tag_targets)
_guess_scopes: dict[tuple[tuple[str, str], ...], str] = {}


def remember_tags(moved: Mapping[str, str]) -> None:
    """Keep what this process made tags name (``{reference: image ID}``, e.g. a build's
    output) as the guesses the next lookup through containerd confirms in its one quiet call
    (:func:`.containerd.targets`), instead of listing each moved tag in full. Only beside the
    guesses of the last such lookup of the current engine (its scope: that engine's
    containerd and the repositories asked about); nothing when there was none. A wrong guess
    only costs that listing."""
    from .. import imagecache
    from . import containerd

    env, _ = _ENGINE.get()
    scope = _guess_scopes.get(env)
    if scope is None or not moved:
        return
    repositories = set(scope.split("\n")[1:])
    guesses = imagecache.tag_targets(scope)
    for ref, image_id in moved.items():
        name = containerd.store_name(ref)
        if name and name.rpartition(":")[0] in repositories and image_id.startswith("sha256:"):
            guesses[name] = image_id
    imagecache.keep_tag_targets(scope, guesses)


def _containerd_socket(confirmed: bool = False) -> str | None:
    """The containerd socket of the current engine's store: only for the local engine on its
    default socket (no SSH client, no context) with one containerd socket alive
    (:func:`.containerd.engine_socket`); ``confirmed``: only once a lookup in this process
    found the engine reporting the image IDs containerd does (:func:`_from_containerd`)."""
    from . import containerd

    env, ssh_client = _ENGINE.get()
    if ssh_client is not None or (confirmed and _containerd_agrees.get(env) is not True):
        return None
    if not containerd.local_engine({**os.environ, **dict(env)}):
        return None
    return containerd.engine_socket()


def _from_containerd(
    refs: Sequence[str],
    label: str,
    remember: bool,
    alias: Callable[[str, str], str | None] | None = None,
) -> dict[str, LocalImage] | None:
    """:func:`local_images` with containerd saying which image each of ``refs`` names, the
    label from :mod:`..imagecache`; the engine lists only the images whose label is not kept, and
    the first image found, whose ID it must report as containerd does (else containerd is not
    the engine's store: None for this and every later call). None when containerd cannot be
    used: not the local engine on its default socket, no single containerd socket, ``ctr``
    failed, or none of ``refs`` is there (the engine then answers cheaply)."""
    from .. import imagecache
    from . import containerd

    env, _ = _ENGINE.get()
    if _containerd_agrees.get(env) is False or (address := _containerd_socket()) is None:
        return None
    names = {r: containerd.store_name(r) for r in refs}
    wanted = {n for n in names.values() if n}
    # guesses kept per socket and repositories (a project's, whatever its version)
    scope = "\n".join([address, *sorted({n.rpartition(":")[0] for n in wanted})])
    _guess_scopes[env] = scope
    guesses = imagecache.tag_targets(scope)
    recalled: dict[str, tuple[bool, str | None]] = {}  # image ID -> its kept label

    def recall(image_id: str) -> tuple[bool, str | None]:
        if image_id not in recalled:
            recalled[image_id] = imagecache.recall(image_id, label)
        return recalled[image_id]

    # the alias of the image each tag was last seen naming (by its kept label), confirmed
    # in the same quiet call
    aliases: dict[str, tuple[str, str, str]] = {}  # containerd name -> (alias, ref, image ID)
    for ref, name in names.items():
        guess = guesses.get(name) if name and alias is not None else None
        value = recall(guess)[1] if guess else None
        made = alias(ref, value) if alias is not None and guess and value else None
        if guess and made and (n := containerd.store_name(made)):
            aliases.setdefault(n, (made, ref, guess))
    also = {n: guess for n, (_, _, guess) in aliases.items()}
    held = containerd.targets(address, wanted, guesses, also=also)
    if not held:
        return None
    present = {r: held[n] for r, n in names.items() if n and n in held}
    if not present:  # only aliases are left (their tags were removed)
        return None
    seen: dict[str, list[str]] = {}  # image ID -> its aliases confirmed
    for n, (made, ref, _) in aliases.items():
        if n in held and held[n] == present.get(ref):
            seen.setdefault(held[n], []).append(made)
    kept = {i: recall(i) for i in set(present.values())}
    sample = min(present)  # until containerd and the engine agreed, the engine must confirm
    instance = containerd.engine_instance(address)
    if _containerd_agrees.get(env) is None and instance and imagecache.confirmed_store(instance):
        _containerd_agrees[env] = True  # this engine run agreed before
    ask = {i for i, (known, _) in kept.items() if not known}
    if _containerd_agrees.get(env) is None:
        ask.add(present[sample])
    # an image's tags are asked together (as the engine lists them: once, with each asked tag)
    unknown = [r for r, n in names.items() if not n or present.get(r) in ask]
    asked = _listed(sorted(unknown), label, remember)
    if _containerd_agrees.get(env) is None:
        confirmed = find_local(asked, sample)
        agrees = confirmed is not None and confirmed.image_id == present[sample]
        _containerd_agrees[env] = agrees
        if not agrees:
            return None
        if instance and remember:
            imagecache.keep_confirmed_store(instance)
    if remember:
        imagecache.keep_tag_targets(scope, {n: d for n, d in held.items() if n in wanted})
    tags: dict[str, list[str]] = {}
    for ref in sorted(present):
        tags.setdefault(present[ref], []).append(ref)
    out = {
        r: LocalImage(
            i,
            tuple(tags[i]),
            {} if (v := kept[i][1]) is None else {label: v},
            aliases=tuple(sorted(seen.get(i, ()))),
        )
        for r, i in present.items()
        if i not in ask
    }
    out.update(asked)
    return out


def find_local(images: Mapping[str, LocalImage], reference: str) -> LocalImage | None:
    """``reference`` in a :func:`local_images` index; the engine lists Docker Hub images by
    their short names (``docker.io/library/x:1`` as ``x:1``, ``docker.io/acme/x:1`` as
    ``acme/x:1``)."""
    found = images.get(reference)
    if found is None and reference.startswith("docker.io/"):
        short = reference[len("docker.io/") :]
        found = images.get(short) or images.get(short.removeprefix("library/"))
    return found


@dataclass(frozen=True)
class LocalImage:
    """An image in the local store: its ID, every ``repository:tag`` naming it, its labels,
    and ``size`` in bytes as the engine reports it (for the containerd store: the compressed
    content of the engine's platform; 0 where not asked: :func:`local_images`)."""

    image_id: str
    tags: tuple[str, ...]
    labels: Mapping[str, str]
    size: int = 0
    aliases: tuple[str, ...] = ()  # its aliases a lookup saw (:func:`local_images`)


@dataclass(frozen=True)
class RemoteImage:
    """An image in a registry: the digest of what ``reference`` names, and its labels (of
    every platform, merged); per platform (``linux/arm64``) its manifest digest and labels."""

    digest: str
    labels: Mapping[str, str]
    platform_digests: Mapping[str, str] = field(default_factory=dict)
    platform_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


def platform_name(p: Mapping[str, Any]) -> str:
    """``os/architecture[/variant]`` of an OCI platform object (``linux/arm64/v8``)."""
    return "/".join(x for x in (p.get("os"), p.get("architecture"), p.get("variant")) if x)


def parse_imagetools(data: Mapping[str, Any]) -> RemoteImage:
    """:class:`RemoteImage` from ``docker buildx imagetools inspect --format '{{json .}}'``:
    a manifest list (``image`` maps each platform to its config, or is the config itself when
    the list holds one platform; attestation entries, platform ``unknown/unknown``, left out)
    or a single manifest (``image`` is its config)."""
    manifest, image = data.get("manifest") or {}, data.get("image") or {}
    digest = manifest.get("digest", "")
    if "manifests" in manifest:  # a manifest list
        digests = {
            platform_name(m.get("platform") or {}): m.get("digest", "")
            for m in manifest.get("manifests") or []
            if (m.get("platform") or {}).get("os") not in (None, "unknown")
        }
        if "config" in image:  # one platform in it: imagetools gives its config alone
            configs = {p: image for p in digests}
        else:
            configs = {p: c for p, c in image.items() if not p.startswith("unknown")}
    else:  # one manifest
        platform = platform_name(image)
        configs = {platform: image} if platform else {}
        digests = {platform: digest} if platform else {}
    per_platform = {
        p: dict((c.get("config") or {}).get("Labels") or {}) for p, c in configs.items()
    }
    labels: dict[str, str] = {}
    for platform_labels in per_platform.values():
        labels.update(platform_labels)
    return RemoteImage(digest, labels, digests, per_platform)


def remote_image(runner: Runner, reference: str) -> RemoteImage | None:
    """What the registry holds at ``reference``, or None when it holds nothing there: read
    from the registry's HTTP API where anyone may read it (:func:`registry.read`: a few
    requests instead of a process), else by ``docker buildx imagetools inspect``."""
    import json

    from . import registry

    try:
        return registry.read(reference, auth=_registry_auth(runner, reference))
    except registry.Unanswered:
        pass
    res = runner.run(
        [DOCKER, "buildx", "imagetools", "inspect", "--format", "{{json .}}", reference],
        capture=True,
        check=False,
        stderr_to_devnull=True,
        query=True,
    )
    if not res.ok or not res.stdout.strip():
        return None
    return parse_imagetools(json.loads(res.stdout))


def _registry_auth(runner: Runner, reference: str) -> str | None:
    """The Basic credentials for ``reference``'s registry in the Docker config ``runner``'s
    commands use (its ``DOCKER_CONFIG``, as a registry login sets it, else this process's,
    else ``~/.docker``): :func:`.registry.basic_auth`."""
    from . import registry

    return registry.basic_auth(config_dir({**os.environ, **runner.env}), registry_host(reference))


def registry_index(runner: Runner, reference: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """The digest the registry reports for ``reference`` (the manifest list's, or the single
    manifest's), each platform's manifest digest (attestation entries left out), and the
    attestations of the manifest list: each attested
    platform -> the digest of its attestation manifest (BuildKit's
    ``vnd.docker.reference.type=attestation-manifest`` entries: provenance, SBOM)."""
    import json

    from . import registry

    manifest: dict[str, Any] | None = None
    if not runner.dry:  # read directly where anyone may read (else imagetools, below)
        try:
            found = registry.manifest(reference, auth=_registry_auth(runner, reference))
        except registry.Unanswered:
            found = None
        if found is not None:
            manifest = {**found[1], "digest": found[0]}
    if manifest is None:
        res = runner.run(
            [DOCKER, "buildx", "imagetools", "inspect", "--format", "{{json .Manifest}}",
             reference],
            capture=True,
            what=f"reading {reference} from the registry",
        )  # fmt: skip
        if runner.dry:
            return "", {}, {}
        manifest = json.loads(res.stdout)
    platforms, attestations = {}, {}
    for m in manifest.get("manifests") or []:
        p = m.get("platform") or {}
        notes = m.get("annotations") or {}
        if notes.get("vnd.docker.reference.type") == "attestation-manifest":
            attestations[notes.get("vnd.docker.reference.digest", "")] = m["digest"]
        elif p.get("os") and p.get("os") != "unknown":
            platforms[platform_name(p)] = m["digest"]
    by_platform = {plat: attestations[d] for plat, d in platforms.items() if d in attestations}
    return manifest.get("digest", ""), platforms, by_platform


def ensure_tag(
    runner: Runner, reference: str, digest: str
) -> tuple[str, dict[str, str], dict[str, str]]:
    """Make the registry's ``reference`` name the manifest ``digest`` (what a build pushed):
    when it names something else, it is pointed at ``<repository>@<digest>``. Returns
    :func:`registry_index` of the result. Raises CommandError when it still differs."""
    got, platforms, attested = registry_index(runner, reference)
    if got == digest or runner.dry:
        return got, platforms, attested
    repository, _ = name_and_tag(reference)
    emit(f"registry: {reference} named {got[:19]}, not the pushed {digest[:19]}; re-pointing it")
    remote_tag(runner, f"{repository}@{digest}", reference)
    got, platforms, attested = registry_index(runner, reference)
    if got != digest:
        raise CommandError(f"the registry's {reference} names {got}, not the pushed {digest}")
    return got, platforms, attested


def remote_tag(
    runner: Runner, source: str | Sequence[str], *targets: str, log: Path | None = None
) -> None:
    """Point every one of ``targets`` at what ``source`` names, inside the registry (one
    ``imagetools create``: no pull, no push of layers); several sources (``repository@digest``
    each, one per platform or host) make one manifest list of all their manifests. Progress
    goes to ``log`` when given."""
    argv = [DOCKER, "buildx", "imagetools", "create"]
    for target in targets:
        argv += ["--tag", target]
    what = f"tagging {', '.join(targets)} in the registry"
    sources = [source] if isinstance(source, str) else list(source)
    runner.run([*argv, *sources], capture=log is None, log=log, what=what)


def pull(runner: Runner, reference: str, platforms: Sequence[str], log: Path) -> None:
    """Pull ``reference`` into the local store: each of ``platforms`` (the containerd store
    keeps them under one image), or the engine's own when empty. Output goes to ``log``.
    Raises CommandError when a pull fails."""
    for platform in list(platforms) or [""]:
        argv = [
            DOCKER,
            "pull",
            "--quiet",
            *(["--platform", platform] if platform else []),
            reference,
        ]
        runner.run(
            argv, log=log, what=f"pulling {reference}" + (f" ({platform})" if platform else "")
        )


def require_images(references: Iterable[str]) -> None:
    """Raise CommandError naming the first reference missing from the local image store."""
    for ref in references:
        if local_image(ref) is None:
            raise CommandError(f"image {ref} is not in the local image store; run inv image.build")


# With the containerd image store, the engine's build resolver asks a reference's registry
# before its own store (moby/moby#46584), so a dependency named by its real reference could
# come from a registry. A dependency is therefore handed to its dependents under an alias
# whose registry is a closed loopback port: the registry lookup is refused at once and the
# engine's own store answers (:func:`alias_reference`).
ALIAS_REGISTRY = "localhost:1/buildkit-tasks"


def load_layout(runner: Runner, layout: Path, log: Path) -> None:
    """Load the OCI layout archive ``layout`` (every platform; the tags its ``index.json``
    names) into the local store, output appended to ``log``. The containerd image store keeps
    the layout's manifests as they are: the image ID is the layout's index digest."""
    runner.run(
        [DOCKER, "load", "--input", str(layout)], log=log, what=f"docker load of {layout.name}"
    )


def alias_reference(project: str, name: str, key: str) -> str:
    """The local-only alias of image ``name`` built from input ``key`` (hex) in ``project``
    (a short hex ID of the project's output directory): ``<ALIAS_REGISTRY>/<project>/<name>:
    <first 32 hex of key>``. Named by what the image is built from, it names the same image
    from one run to the next (a build that makes the image again moves it), so it is kept
    between runs instead of being made and removed in each."""
    return f"{ALIAS_REGISTRY}/{project}/{name}:{key[:32]}"


def alias_parts(reference: str) -> tuple[str, str, str] | None:
    """``(project, name, key prefix)`` of an :func:`alias_reference`; None for anything else."""
    rest = reference.removeprefix(f"{ALIAS_REGISTRY}/")
    project, _, tagged = rest.partition("/")
    name, _, key = tagged.rpartition(":")
    if rest == reference or not (project and name and key):
        return None
    return project, name, key


def add_names(wanted: Mapping[str, tuple[str, Sequence[str]]]) -> None:
    """Give local images further references, all at once: ``{reference: (image, the image's
    tags)}``, the image by its ID (or a reference naming it: then only by the engine), the
    tags as a lookup in this run found them.

    With the containerd store (a lookup in this process confirmed it is the engine's:
    :func:`_containerd_socket`), each is made by ``ctr images tag`` from one of the image's
    tags, concurrently, then one quiet ``ctr images list`` confirms every new reference
    names its image ID (a tag moved meanwhile, or ``ctr`` failing, sends that reference to
    the engine); Engine 26 takes 40-70 ms for each tag call, ``ctr`` ~15 ms. Anything else:
    the engine's tag call by image ID (:func:`tag`), concurrently; raises what it raises."""
    from concurrent.futures import ThreadPoolExecutor

    from . import containerd

    todo = dict(wanted)
    address = _containerd_socket(confirmed=True) if todo else None
    if address is not None:
        made: dict[str, str] = {}  # containerd name -> reference
        jobs = []
        for ref, (_, tags) in todo.items():
            name = containerd.store_name(ref)
            source = next(filter(None, map(containerd.store_name, tags)), None)
            if name and source and todo[ref][0].startswith("sha256:"):
                made[name] = ref
                jobs.append((source, name))
        with ThreadPoolExecutor(min(8, len(jobs) or 1), thread_name_prefix="ctr-tag") as pool:
            list(pool.map(lambda job: containerd.tag(address, job[0], [job[1]]), jobs))
        guesses = {n: todo[r][0] for n, r in made.items()}
        held = containerd.targets(address, guesses, guesses) if guesses else None
        for name, ref in made.items():
            if held is not None and held.get(name) == todo[ref][0]:
                del todo[ref]
    if not todo:
        return
    with ThreadPoolExecutor(min(8, len(todo)), thread_name_prefix="tag") as pool:
        done = [pool.submit(in_context(tag), image_id, ref) for ref, (image_id, _) in todo.items()]
        for future in done:
            future.result()


def remove_names(references: Iterable[str]) -> None:
    """Remove ``references`` from the local store, each image keeping its other names; one
    not there is no error. With the containerd store (as :func:`add_names`): one ``ctr images
    rm`` call; otherwise, or when it fails, the engine's call for each (:func:`untag`),
    concurrently."""
    from concurrent.futures import ThreadPoolExecutor

    from . import containerd

    refs = sorted(set(references))
    address = _containerd_socket(confirmed=True) if refs else None
    names = [containerd.store_name(r) for r in refs]
    if address is not None and all(names):
        if containerd.remove(address, [n for n in names if n]):
            return
    if refs:
        with ThreadPoolExecutor(min(8, len(refs)), thread_name_prefix="untag") as pool:
            list(pool.map(in_context(untag), refs))


def tag(source: str, target: str) -> None:
    """Add reference ``target`` to the local image ``source`` (``POST /images/{source}/tag``;
    the SDK's errors when it fails)."""
    repository, tag_ = name_and_tag(target)
    query = {"repo": repository, "tag": tag_ or "latest"}
    if _local("POST", f"/images/{urllib.parse.quote(source, safe='/:')}/tag", query) is _NO_ANSWER:
        client().api.tag(source, repository, tag_ or "latest")


def untag(reference: str) -> None:
    """Remove reference ``reference`` from the local store, keeping the image's other names
    (``DELETE /images/{reference}?noprune=1``); nothing when it is not there."""
    path = f"/images/{urllib.parse.quote(reference, safe='/:')}"
    if _local("DELETE", path, {"noprune": "1"}, absent=None) is not _NO_ANSWER:
        return
    import docker

    try:
        client().images.remove(reference, noprune=True)
    except docker.errors.NotFound:
        pass


BINFMT_FIX = "apt-get install qemu-user-static binfmt-support && update-binfmts --enable"


def parse_builder_platforms(inspect_output: str) -> list[str]:
    """The ``Platforms:`` list of ``docker buildx inspect`` output."""
    for line in inspect_output.splitlines():
        if line.strip().startswith("Platforms:"):
            rest = line.split(":", 1)[1]
            return [p.strip().rstrip("*") for p in rest.split(",") if p.strip()]
    return []


def builder_env(runner: Runner, name: str) -> tuple[dict[str, str], str | None]:
    """``(command env, engine)`` that send every docker and buildx command to builder
    ``name``, and the engine the SDK should talk to (for :func:`engine_at`, None: unchanged).
    A docker context's own builder (docker driver, which buildx uses only through its
    context) is ``DOCKER_CONTEXT`` and that context's engine; any other buildx builder
    (docker-container, remote, kubernetes, a multi-node one) is ``BUILDX_BUILDER``, images
    still loaded into the current engine. A read-only query, run under ``--dry`` too."""
    res = runner.run(
        [DOCKER, "context", "inspect", "--format", "{{.Endpoints.docker.Host}}", name],
        capture=True,
        check=False,
        query=True,
        stderr_to_devnull=True,
    )
    host = res.stdout.strip() if res.ok else ""
    if host:
        return {"DOCKER_CONTEXT": name}, host
    return {"BUILDX_BUILDER": name}, None


@contextlib.contextmanager
def using_builder(runner: Runner, name: str | None) -> Iterator[dict[str, str]]:
    """For the block, ``runner``'s commands and the SDK's calls go to builder ``name``
    (:func:`builder_env`); yields the command env it added (empty without a ``name``)."""
    if not name:
        yield {}
        return
    env, engine = builder_env(runner, name)
    saved = dict(runner.env)
    runner.env.update(env)
    try:
        with engine_at({"DOCKER_HOST": engine}) if engine else contextlib.nullcontext():
            yield env
    finally:
        runner.env.clear()
        runner.env.update(saved)


def builder_platforms(runner: Runner) -> list[str] | None:
    """The platforms the current builder lists (``docker buildx inspect``; a read-only query,
    run under ``--dry`` too), or None when buildx does not answer."""
    res = runner.run(
        [DOCKER, "buildx", "inspect"],
        capture=True,
        check=False,
        query=True,
        stderr_to_devnull=True,
        what="docker buildx inspect",
    )
    return parse_builder_platforms(res.stdout) if res.ok else None


def save_argv(references: Iterable[str]) -> list[str]:
    """``docker save`` of ``references`` to stdout (one archive; shared layers once)."""
    return [DOCKER, "save", *references]


def login_argv(host: str, user: str) -> list[str]:
    """``docker login`` reading the password from stdin (the argv holds no secret)."""
    return [DOCKER, "login", "--username", user, "--password-stdin", host]


def check_platforms(runner: Runner, platforms: Iterable[str]) -> None:
    """Raise BuildkitError naming every platform the current builder cannot build (no native
    support and no qemu binfmt emulation), with the fix."""
    wanted = list(dict.fromkeys(platforms))
    if not wanted or runner.dry:
        return
    known = set(builder_platforms(runner) or [])
    missing = [p for p in wanted if p not in known]
    if missing:
        raise BuildkitError(
            f"--platform: the builder cannot build {', '.join(missing)} (it lists "
            f"{', '.join(sorted(known)) or 'nothing'}); for emulation through qemu run as root: "
            f"{BINFMT_FIX}"
        )


def engine_platform() -> str:
    """The engine's own platform, e.g. ``linux/amd64`` (``GET /version``); for the local
    engine on its default socket whose containerd is found (:func:`_containerd_socket`),
    asked once per engine run and then kept
    (:func:`..imagecache.engine_platform`, keyed by :func:`.containerd.engine_instance`), so
    a run that builds nothing need not reach the engine's API at all."""
    from .. import imagecache
    from . import containerd

    address = _containerd_socket()
    instance = containerd.engine_instance(address) if address else None
    kept = imagecache.engine_platform(instance) if instance else None
    if kept:
        return kept
    info = _local("GET", "/version")
    if info is _NO_ANSWER:
        info = client().version()
    platform = f"{info.get('Os', 'linux')}/{info.get('Arch', 'amd64')}"
    if instance:
        imagecache.keep_engine_platform(instance, platform)
    return platform


def containerd_store() -> bool:
    """Whether the engine keeps images in the containerd image store (``docker save`` then
    emits the compressed layer blobs as they are)."""
    status = client().info().get("DriverStatus") or []
    return any("io.containerd.snapshotter" in str(v) for pair in status for v in pair)

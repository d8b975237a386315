"""Build the project's images: plan -> scheduler -> docker engine -> results.

Every image is tagged ``<registry>/<name>:<docker_tag>`` and ``:latest`` and carries OCI
labels. An image that builds on another project image gets it as a named build context naming
the image in the local image store under an alias (:func:`engines.docker.alias_reference`), so
it never comes from a registry. An alias is named by the project and the image's input key:
it names the same image from one run to the next, so it is kept, and the next run that needs
it only confirms it (one quiet ``ctr`` call for all of them) instead of making it anew. A run
that builds removes the aliases its project made for input keys the images no longer have
(:meth:`ImageBuild.collect_aliases`), so an old image is not held by an alias once its tags
moved on.
"""

from __future__ import annotations

import functools
import hashlib
import random
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import batches, cachekey, credentials, imagecache, publishing, scheduler
from .buildplan import BuildPlan
from .config import ImageSpec, Settings
from .console import emit
from .engines import docker, oras
from .errors import BuildkitError, CommandError, ConfigError
from .graph import ImageGraph
from .publishing import Published, point_tags, publish
from .references import parse as parse_reference
from .runner import Runner, Started, tail
from .scheduler import Outcome, Status
from .versioning import VersionInfo, iso_date

OCI = "org.opencontainers.image"
# seconds an interrupted run waits for aliases still being made, to keep them listed once made
ALIASES_WAIT = 5.0


@dataclass
class ImageResult:
    """One image's outcome, as the report records it."""

    name: str
    status: str
    references: list[str] = field(default_factory=list)
    image_id: str = ""
    platforms: list[str] = field(default_factory=list)
    seconds: float = 0.0
    key: str | None = None
    note: str | None = None
    digest: str | None = None
    platform_digests: dict[str, str] | None = None
    attestations: dict[str, str] | None = None
    pushed: str | None = None
    tagged: bool | None = None
    batch: bool | None = None
    hosts: dict[str, str] | None = None
    log: str | None = None
    error: str | None = None
    log_tail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if v is not None}
        d["seconds"] = round(self.seconds, 3)
        return d


@dataclass(frozen=True)
class Done:
    """A job's result for one image it built or reused: the references it got, the
    platforms, its input key and image ID (or registry digest), a ``note`` (platforms left
    out), what was published, ``batch_seconds`` when the batch built it, and for an atomic push
    ``pushed`` (``repository@digest``, what this run pushed) and ``release``: the tags to make
    once every image succeeded and the reference they are made from."""

    references: list[str]
    platforms: list[str]
    key: str
    image_id: str
    note: str | None = None
    published: Published = field(default_factory=Published)
    batch_seconds: float | None = None
    pushed: str | None = None
    release: tuple[str, tuple[str, ...]] | None = None


def context_key(reference: str) -> str:
    """The named-context key BuildKit looks up for ``reference``: its familiar repository
    (``nginx`` for ``docker.io/library/nginx:1``, ``local-only/base`` for
    ``local-only/base:latest``). BuildKit normalises both the context name and the ``FROM``
    reference this way and matches a tagged ``FROM`` to the untagged key (bake matches only
    that)."""
    return parse_reference(reference).familiar_repository


def oci_labels(
    info: VersionInfo, name: str, source: str | None, epoch: int | None = None
) -> dict[str, str]:
    """The ``org.opencontainers.image.*`` labels for image ``name``; ``source`` the project's
    repository address (:func:`source_of`), None to leave it out; ``created`` is the build
    date, or ``epoch`` (seconds) in a reproducible build."""
    created = info.build_date if epoch is None else iso_date(epoch)
    labels = {
        f"{OCI}.title": name,
        f"{OCI}.version": info.version,
        f"{OCI}.created": created,
    }
    if info.commit:
        labels[f"{OCI}.revision"] = info.commit
    if source:
        labels[f"{OCI}.source"] = source
    return labels


def source_of(settings: Settings) -> str | None:
    """The project's repository address for the ``source`` label: config ``source``, else
    the work tree's ``origin`` remote (:func:`git_remote`), else None."""
    return settings.source or git_remote(settings.root)


def source_date_epoch(settings: Settings) -> int:
    """The ``SOURCE_DATE_EPOCH`` of a reproducible build (seconds): env ``SOURCE_DATE_EPOCH``
    when set, else the time of the commit checked out in the project. Raises ConfigError when
    the variable is not a whole number or there is no commit."""
    import os

    from .versioning import source_date_epoch as dated

    given = os.environ.get("SOURCE_DATE_EPOCH")
    if given is not None and not given.isdigit():
        raise ConfigError(f"SOURCE_DATE_EPOCH: expected seconds since 1970, got {given!r}")
    epoch = dated(settings.root)
    if epoch is None:
        raise ConfigError(
            f"reproducible: {settings.root} has no git commit to take SOURCE_DATE_EPOCH from "
            "(commit, or set SOURCE_DATE_EPOCH)"
        )
    return epoch


def git_remote(root: Path) -> str | None:
    """``git remote get-url origin`` in ``root``, or None."""
    from .engines import git

    return git.line(root, "remote", "get-url", "origin")


def platforms_for(
    spec: ImageSpec, requested: Iterable[str], default: Iterable[str]
) -> tuple[list[str], list[str]]:
    """``(chosen, left_out)``: the platforms to build ``spec`` for, ``requested`` (else
    ``default``, the config ``platforms``) narrowed by the image's own ``platforms``, and the
    requested ones its ``platforms`` exclude. ``chosen`` empty with nothing left out means the
    engine's own platform; empty with something left out means the image is skipped."""
    wanted = list(requested) or list(default)
    allowed = spec.platforms
    if not allowed:
        return wanted, []
    if not wanted:
        return list(allowed), []
    return [p for p in wanted if p in allowed], [p for p in wanted if p not in allowed]


def input_manifests(
    graph: ImageGraph, platforms: dict[str, list[str]], workers: int = 8
) -> dict[str, cachekey.InputManifest]:
    """Every image's inputs (:class:`cachekey.InputManifest`): contexts hashed, then combined
    with the keys of the images each builds on, in dependency order. ``platforms`` maps each
    image to the platforms it is built for. A context whose files are all remembered
    unchanged is read in this thread (164 of them: ~40 ms; threads would only fight over the
    interpreter lock); the others are listed and hashed by ``workers`` threads (reading and
    hashing release the lock)."""
    names = graph.order()
    contexts: dict[str, dict[str, str]] = {}
    for name in names:
        spec = graph.nodes[name].spec
        found = cachekey.remembered_context_entries(spec.context, spec.dockerfile)
        if found is not None:
            contexts[name] = found
    todo = [n for n in names if n not in contexts]

    def entries(name: str) -> dict[str, str]:
        spec = graph.nodes[name].spec
        return cachekey.context_entries(spec.context, spec.dockerfile)

    if todo:
        with ThreadPoolExecutor(max_workers=min(workers, len(todo))) as pool:
            contexts.update(zip(todo, pool.map(entries, todo), strict=True))
    manifests: dict[str, cachekey.InputManifest] = {}
    keys: dict[str, str] = {}
    for name in names:
        node = graph.nodes[name]
        deps = {d: keys[d] for d in node.depends_on}
        manifests[name] = cachekey.manifest(node.spec, platforms[name], deps, contexts[name])
        keys[name] = manifests[name].key()
    return manifests


def batchable(graph: ImageGraph, names: list[str]) -> list[str]:
    """``names`` a bake can build: not an image with ``extra_build_args`` (bake takes no CLI
    options per target), nor one building on such an image inside this run."""
    alone: set[str] = set()
    for name in graph.order():
        node = graph.nodes[name]
        if node.spec.extra_build_args or any(d in alone and d in names for d in node.depends_on):
            alone.add(name)
    return [n for n in names if n not in alone]


@dataclass(frozen=True)
class Explanation:
    """Why an image is built, reused or skipped: ``decision`` is ``build``, ``cached`` or
    ``skip``; ``reasons`` are phrases such as ``changed work.sh`` or ``base image base
    changed``; ``held`` the reference of the image the engine (or, pushing, the registry)
    holds under its tags and ``held_key`` that image's input key."""

    name: str
    decision: str
    reasons: tuple[str, ...]
    key: str
    held: str | None = None
    held_key: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "decision": self.decision,
            "reasons": list(self.reasons),
            "key": self.key,
            "held": self.held,
            "held_key": self.held_key,
        }


@dataclass(frozen=True)
class CacheHit:
    """An image with the wanted input key: its ID (or registry digest), the tags already
    naming it, and its local image ID when the local store has it (else only the registry);
    ``sources``: for a push by digest only, each platform's ``repository@digest`` in the
    registry."""

    image_id: str
    tags: tuple[str, ...]
    local_id: str | None
    sources: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()  # the local image's aliases the lookup saw


def find_held_platforms(
    runner: Runner,
    repository: str,
    key: str,
    tags: list[str],
    platforms: list[str],
    local_image: Callable[[str], docker.LocalImage | None],
) -> CacheHit | None:
    """For a push by digest only (one host's share of a fan-out): the image under ``tags``
    (version tag first) whose manifests for every one of ``platforms`` carry input ``key``,
    with those manifests as ``sources``; its local ID when the local store has the same key
    (dependents then build on it there)."""
    for ref in tags:
        remote = docker.remote_image(runner, ref)
        if remote is None or not platforms:
            continue
        if all(
            remote.platform_labels.get(p, {}).get(cachekey.KEY_LABEL) == key
            and remote.platform_digests.get(p)
            for p in platforms
        ):
            local = local_image(ref)
            same = local is not None and local.labels.get(cachekey.KEY_LABEL) == key
            sources = tuple(f"{repository}@{remote.platform_digests[p]}" for p in platforms)
            return CacheHit(remote.digest, (ref,), local.image_id if local and same else None,
                            sources)  # fmt: skip
    return None


def held_tags(
    digest: str,
    found: str,
    tags: list[str],
    remote_image: Callable[[str], docker.RemoteImage | None],
) -> tuple[str, ...]:
    """Those of ``tags`` that already name ``digest`` in the registry (``found`` does): their
    tags are left alone, only the others are pointed at it. ``remote_image`` answers what
    the registry holds at a reference."""
    held = [found]
    for ref in tags:
        if ref != found:
            other = remote_image(ref)
            if other is not None and other.digest == digest:
                held.append(ref)
    return tuple(held)


def find_cached(
    runner: Runner,
    key: str,
    tags: list[str],
    push: bool,
    local_image: Callable[[str], docker.LocalImage | None] = docker.local_image,
    remote_image: Callable[[str], docker.RemoteImage | None] | None = None,
) -> CacheHit | None:
    """Look for an image with input ``key`` under ``tags`` (version tag first, then latest):
    in the local store (``local_image`` answers), or with ``push`` in the registry
    (``remote_image`` answers; default :func:`docker.remote_image`)."""
    ask = remote_image or functools.partial(docker.remote_image, runner)
    for ref in tags:
        if push:
            remote = ask(ref)
            if remote is not None and remote.labels.get(cachekey.KEY_LABEL) == key:
                local = local_image(ref)
                same = local is not None and local.labels.get(cachekey.KEY_LABEL) == key
                image_id = local.image_id if local is not None and same else None
                held = held_tags(remote.digest, ref, tags, ask)
                aliases = local.aliases if local is not None and same else ()
                return CacheHit(remote.digest, held, image_id, aliases=aliases)
        else:
            image = local_image(ref)
            if image is not None and image.labels.get(cachekey.KEY_LABEL) == key:
                return CacheHit(image.image_id, image.tags, image.image_id, aliases=image.aliases)
    return None


class ImageBuild:
    """One run of image builds over a graph: plan (platforms, keys, cache hits), an optional
    batch through ``docker buildx bake``, then per-image builds on the scheduler.

    Use :func:`build_images`; this class only holds the run's state.
    """

    def __init__(
        self,
        settings: Settings,
        plan: BuildPlan,
        runner: Runner,
        *,
        push: bool,
        platforms: Iterable[str],
        force: bool,
        atomic: bool = False,
        tag: bool = True,
        layouts: Path | None = None,
    ) -> None:
        self.settings, self.plan, self.graph, self.runner = settings, plan, plan.graph, runner
        self.layouts = layouts  # reproducible builds' OCI layouts are kept here
        self.push, self.force = push, force
        # reproducible: every image goes through an OCI layout (timestamps rewritten) and a
        # push is by digest from it, so the registry holds the very digest built
        self.epoch = source_date_epoch(settings) if settings.reproducible else None
        self.atomic = push and (atomic or not tag or self.epoch is not None)
        self.tag = tag  # false: push by digest only; the caller makes the tags
        if self.atomic and not runner.dry:
            oras.require()
        self.tags = {n: list(p.references) for n, p in plan.images.items()}
        # aliases: per project (its output directory, which the project lock guards) and
        # engine; those this run made or used are kept listed for a later run to collect
        self.project = hashlib.sha256(str(settings.output_dir).encode()).hexdigest()[:12]
        self._named = {r: n for n, tags in self.tags.items() for r in tags}
        self._bases = {d for node in self.graph.nodes.values() for d in node.local_refs.values()}
        # Local lookups need no key: ask for every image under our tags now (one engine
        # call), beside the hashing below.
        self._pool = ThreadPoolExecutor(max_workers=16)
        # the source label's address: one git call per run, beside the planning
        self._source = self._pool.submit(source_of, settings)
        self._local: Future[dict[str, docker.LocalImage]] | None = None
        if not force:  # read-only lookups: --dry plans exactly as the real run does
            refs = [r for tags in self.tags.values() for r in tags]
            self._local = self._pool.submit(
                docker.in_context(docker.local_images),
                refs,
                label=cachekey.KEY_LABEL,
                remember=not runner.dry,
                alias=self._alias_of,
            )
        try:
            self._plan(platforms)
        except BaseException:  # engine unreachable, platform refused: stop the lookups
            self._pool.shutdown(wait=False, cancel_futures=True)
            raise
        # an edit's images are not in the local store with their new keys: the registry is
        # asked now, before a bake starts ahead (:meth:`bake_ahead`) and beside the local
        # lookup; the first :meth:`look_up` takes the answers
        self._asked = None if force else self._ask_registry(self.graph.nodes)
        self.hits: dict[str, CacheHit | None] = {}
        self.built: dict[str, str] = {}  # name -> image id, built by a batch
        self.batch_seconds: dict[str, float] = {}  # name -> seconds of the batch that built it
        self.batch_count = 0
        self.sources: dict[str, str] = {}  # name -> the image its dependents build from
        self.aliases: list[str] = []
        self.moved: dict[str, str] = {}  # reference -> the image ID this run made it name
        self._lock = threading.Lock()
        self._tmp = tempfile.TemporaryDirectory(prefix="buildkit-build-")
        self._ahead: Started | None = None  # the first batch's bake, started before lookups
        self._stale: list[str] | None = None  # the stale aliases collected (None: not yet)
        self._collecting: Future[None] | None = None  # their removal
        self._early: Future[None] | None = None  # aliases made while the registry is asked

    def pushes(self, name: str) -> bool:
        """Whether ``name`` is pushed: in a push run, unless it is build-only (``push =
        false``: loaded into the local store for its dependents, never pushed)."""
        return self.push and self.plan.images[name].push

    def pulls(self, name: str) -> bool:
        """Whether ``name``, missing from the local store, is looked for in the registry to be
        pulled instead of built: config ``pull`` (default true) with a ``registry``, when
        building (not pushing) an image that is pushed elsewhere (not build-only)."""
        s = self.settings
        return s.pull and bool(s.registry) and not self.push and self.plan.images[name].push

    def by_digest(self, name: str) -> bool:
        """Whether ``name`` is pushed atomically: built into the local store and an OCI
        layout, pushed by digest, tagged only once every image succeeded (:meth:`release`)."""
        return self.atomic and self.pushes(name)

    def layout(self, name: str) -> Path:
        """The OCI layout archive an atomic push or reproducible build of ``name`` is exported
        to (in ``layouts`` when given, kept there)."""
        return (self.layouts or Path(self._tmp.name)) / f"{name}.oci.tar"

    def _plan(self, platforms: Iterable[str]) -> None:
        """Platforms per image (what is left out, what is skipped), then input keys."""
        settings, graph, runner = self.settings, self.graph, self.runner
        requested = list(platforms)
        self.native = [docker.engine_platform()]
        self.plats: dict[str, list[str]] = {}
        self.errors: dict[str, str] = {}  # name -> why it is skipped before anything runs
        self.notes: dict[str, str] = {}
        for name, node in graph.nodes.items():
            chosen, left_out = platforms_for(node.spec, requested, settings.platforms)
            self.plats[name] = chosen
            if left_out:
                why = (
                    f"{', '.join(left_out)} not in its platforms ({', '.join(node.spec.platforms)})"
                )
                if chosen:
                    self.notes[name] = f"left out {why}"
                else:
                    self.errors[name] = f"skipped: {why}"
        docker.check_platforms(runner, [p for ps in self.plats.values() for p in ps])
        self.manifests = input_manifests(
            graph, {n: p or self.native for n, p in self.plats.items()}
        )
        self.keys = {n: m.key() for n, m in self.manifests.items()}
        self.new_keys: set[str] = set()  # images whose key this machine never planned before
        if not runner.dry:  # so later runs can say what changed (--dry writes nothing)
            for name, m in self.manifests.items():
                if cachekey.record(m, self.keys[name]):
                    self.new_keys.add(name)

    # -- plan -------------------------------------------------------------------------------

    def look_up(self, names: Iterable[str]) -> dict[str, CacheHit | None]:
        """Cache hits for ``names`` (concurrently, read-only, also under ``--dry``); nothing
        when forced."""
        names = [n for n in names if n not in self.errors]
        if self.force or not names:
            return {}

        prefetched, self._local = self._local, None  # used once: later lookups ask again
        ahead, self._asked = self._asked or self._ask_registry(names), None

        def remote(ref: str) -> docker.RemoteImage | None:
            asked = ahead.pop(ref, None)
            return asked.result() if asked is not None else docker.remote_image(self.runner, ref)

        if prefetched is not None:
            index = prefetched.result()
        else:
            refs = (r for n in names for r in self.tags[n])
            index = docker.local_images(
                refs, label=cachekey.KEY_LABEL, remember=not self.runner.dry, alias=self._alias_of
            )

        def local(ref: str) -> docker.LocalImage | None:
            return docker.find_local(index, ref)

        def one(n: str) -> CacheHit | None:
            if self.by_digest(n) and not self.tag:
                return find_held_platforms(
                    self.runner, self.settings.repository(n), self.keys[n], self.tags[n],
                    self.plats[n] or self.native, local,
                )  # fmt: skip
            hit = find_cached(
                self.runner, self.keys[n], self.tags[n], self.pushes(n), local, remote
            )
            if hit is None and self.pulls(n):
                hit = find_cached(self.runner, self.keys[n], self.tags[n], True, local, remote)
            return hit

        # what the local store answers alone is read here; only what needs the registry goes
        # to the pool (164 images through a thread pool: ~30 ms of handing over)
        hits = {
            n: None if self.pushes(n) else find_cached(
                self.runner, self.keys[n], self.tags[n], False, local
            )
            for n in names
        }  # fmt: skip
        if self._ahead is not None:  # a bake is waiting: its bases' aliases, beside the registry
            self._alias_early(hits)
        asked = [n for n in names if self.pushes(n) or (hits[n] is None and self.pulls(n))]
        hits.update(zip(asked, self._pool.map(docker.in_context(one), asked), strict=True))
        return hits

    def _ask_registry(self, names: Iterable[str]) -> dict[str, Future[docker.RemoteImage | None]]:
        """What the registry holds under each tag of those of ``names`` whose input keys this
        machine never planned (they are not in the local store with them) and that a push or
        pull would look for there, asked now in the pool: ``{reference: future}``."""
        return {
            ref: self._pool.submit(docker.in_context(docker.remote_image), self.runner, ref)
            for n in names
            if n in self.new_keys
            and n not in self.errors
            and (self.pushes(n) or self.pulls(n))
            and not (self.by_digest(n) and not self.tag)
            for ref in self.tags[n]
        }

    def _alias_early(self, local_hits: Mapping[str, CacheHit | None]) -> None:
        """Start making the aliases (:meth:`source`) of the images the likely builds build on
        now, while the registry is still asked about the images the local store lacks: those
        found locally that a missing image's Dockerfile names. In a thread of their own (the
        registry requests may take every thread of the pool). The first :meth:`make_sources`
        waits for them; one the registry's answer made unneeded is removed at the end with
        the rest."""
        missing = [n for n, hit in local_hits.items() if hit is None]
        bases = sorted(
            {
                d
                for n in missing
                for d in self.graph.nodes[n].local_refs.values()
                if (hit := local_hits.get(d)) is not None and hit.local_id
            }
        )
        if bases and self._early is None:
            # a thread of its own: the pool may be busy with registry requests
            own = ThreadPoolExecutor(1, thread_name_prefix="aliases")
            self._early = own.submit(docker.in_context(self._keep_sources), bases, dict(local_hits))
            own.shutdown(wait=False)

    def held(self, name: str) -> tuple[str | None, str | None]:
        """``(reference, input key)`` of the image the local store (pushing: the registry)
        holds under ``name``'s version tag or ``latest``: the first whose inputs were recorded
        (so a change can be named), else the first found; ``(None, None)`` when none."""
        found: list[tuple[str, str | None]] = []
        for ref in self.tags[name]:
            image: docker.LocalImage | docker.RemoteImage | None = (
                docker.remote_image(self.runner, ref)
                if self.pushes(name)
                else docker.local_image(ref)
            )
            if image is not None:
                found.append((ref, image.labels.get(cachekey.KEY_LABEL)))
        for ref, key in found:
            if key is not None and cachekey.recall(key) is not None:
                return ref, key
        return found[0] if found else (None, None)

    def explain(self) -> list[Explanation]:
        """For every image, in build order: build, cached or skip, and why (needs
        :attr:`hits` from :meth:`look_up`). A changed input is named by comparing this run's
        inputs with the recorded inputs of the image held under its tags."""

        def one(name: str) -> Explanation:
            key = self.keys[name]
            if name in self.errors:
                return Explanation(name, "skip", (self.errors[name],), key)
            hit = self.hits.get(name)
            if hit is not None:
                where = hit.tags[0] if hit.tags else hit.image_id[:19]
                reason = f"inputs unchanged ({where})"
                if hit.local_id is None and not self.pushes(name):
                    reason = f"inputs unchanged ({where} in the registry; pulled, not built)"
                return Explanation(name, "cached", (reason,), key, where, key)
            if self.force:
                return Explanation(name, "build", ("--force",), key)
            ref, old_key = self.held(name)
            if ref is None:
                tags = " or ".join(self.tags[name])
                return Explanation(name, "build", (f"no image under {tags} yet",), key)
            if old_key is None:
                reason = f"{ref} carries no input key (not built by buildkit-tasks)"
                return Explanation(name, "build", (reason,), key, ref)
            old = cachekey.recall(old_key)
            if old is None:
                reason = f"inputs differ from {ref}'s; its inputs were not recorded on this machine"
                return Explanation(name, "build", (reason,), key, ref, old_key)
            found = cachekey.changes(old, self.manifests[name])
            return Explanation(name, "build", tuple(found or ["inputs differ"]), key, ref, old_key)

        names = self.graph.order()
        return list(self._pool.map(docker.in_context(one), names))

    def to_build(self) -> list[str]:
        return [
            n
            for n in self.graph.order()
            if self.hits.get(n) is None and n not in self.errors and n not in self.built
        ]

    def pull_held(self) -> None:
        """Pull every image the registry holds with its input key and the local store lacks
        (:meth:`pulls`), concurrently, before anything builds: dependents then build on the
        local copy, as on one built here. A pull that fails, or brings an image with another
        key (the tag moved meanwhile), sends the image back to be built, with a note."""
        held = {
            n: hit.tags[0]
            for n, hit in self.hits.items()
            if hit is not None and hit.local_id is None and not self.pushes(n)
        }
        if not held or self.runner.dry:
            for n, ref in held.items():
                emit(f"# {n}: inputs unchanged in the registry; would pull {ref}")
            return
        self.settings.logs_dir.mkdir(parents=True, exist_ok=True)

        def one(name: str) -> CacheHit | None:
            ref = held[name]
            log = self.log_path(name)
            log.write_text(f"# buildkit-tasks: inputs unchanged in the registry; pulling {ref}\n")
            try:
                docker.pull(self.runner, ref, self.plats[name], log)
            except CommandError as exc:
                self.notes[name] = f"pull of {ref} failed ({exc}); built instead"
                return None
            image = docker.local_image(ref)
            if image is None or image.labels.get(cachekey.KEY_LABEL) != self.keys[name]:
                self.notes[name] = f"{ref} changed in the registry while pulling; built instead"
                return None
            self.notes[name] = "; ".join(filter(None, [self.notes.get(name), f"pulled {ref}"]))
            return CacheHit(image.image_id, image.tags, image.image_id)

        for name, hit in zip(held, self._pool.map(docker.in_context(one), held), strict=True):
            self.hits[name] = hit

    # -- requests ---------------------------------------------------------------------------

    def request(self, name: str, contexts: dict[str, str]) -> docker.BuildRequest:
        node = self.graph.nodes[name]
        direct = self.pushes(name) and not self.by_digest(name)
        return docker.BuildRequest(
            context=node.spec.context,
            dockerfile=node.spec.dockerfile,
            # A direct push names only the version tag: the engine (26, containerd store)
            # sometimes pushed a second name as a single-platform manifest; `latest` is made in
            # the registry from the version tag instead (see pushed()).
            tags=self.tags[name][:1] if direct else self.tags[name],
            labels={
                **oci_labels(
                    self.plan.images[name].version, name, self._source.result(), self.epoch
                ),
                cachekey.KEY_LABEL: self.keys[name],
            },
            build_args=node.spec.build_args,
            target=node.spec.target,
            platforms=self.plats[name],
            contexts=contexts,
            push=direct,
            iidfile=Path(self._tmp.name) / f"{name}.iid",
            cache_from=self.cache_specs(name)[0],
            cache_to=self.cache_specs(name)[1],
            extra_args=node.spec.extra_build_args,
            oci_dest=self.layout(name) if self.by_digest(name) or self.epoch is not None else None,
            source_date_epoch=self.epoch,
            # Rewriting clamps: a layer BuildKit cached from a build before the commit keeps
            # older times, so reproducible images are built afresh (unchanged ones are still
            # reused by input key, without building).
            no_cache=self.epoch is not None,
            provenance=self.settings.provenance if self.pushes(name) else None,
            secrets=node.spec.secrets,
        )

    def cache_specs(self, name: str) -> tuple[list[str], list[str]]:
        """``--cache-from`` / ``--cache-to`` for config ``cache``: ``registry`` uses
        ``<repository>:buildcache`` (mode=max), ``local`` a directory per image under
        ``cache_dir``, ``none`` nothing."""
        s = self.settings
        if s.cache == "registry":
            ref = f"{s.repository(name)}:buildcache"
            return [f"type=registry,ref={ref}"], [f"type=registry,ref={ref},mode=max"]
        if s.cache == "local":
            d = s.cache_dir / name
            src = [f"type=local,src={d}"] if (d / "index.json").is_file() else []
            return src, [f"type=local,dest={d},mode=max"]
        return [], []

    def contexts(self, name: str, source: Callable[[str], str]) -> dict[str, str]:
        """Named build contexts for ``name``: each project image its Dockerfile references,
        keyed by :func:`context_key`, mapped to ``source(dependency)``."""
        return {
            context_key(ref): source(dep) for ref, dep in self.graph.nodes[name].local_refs.items()
        }

    def done(
        self,
        name: str,
        image_id: str,
        published: Published | None = None,
        batch_seconds: float | None = None,
        pushed: str | None = None,
        release: tuple[str, tuple[str, ...]] | None = None,
    ) -> Done:
        return Done(
            references=list(self.tags[name]),
            platforms=self.plats[name] or self.native,
            key=self.keys[name],
            image_id=image_id,
            note=self.notes.get(name),
            published=published or Published(),
            batch_seconds=batch_seconds,
            pushed=pushed,
            release=release,
        )

    def log_path(self, name: str) -> Path:
        return self.settings.logs_dir / f"{name}.log"

    # -- batch ------------------------------------------------------------------------------

    def bake(self, names: list[str]) -> tuple[bool, str | None]:
        """Build ``names`` in one ``docker buildx bake`` (one solve: shared steps once, no
        per-build overhead); a dependency among ``names`` is a ``target:`` context, any other
        the image built or found before (:meth:`source`). Returns ``(ok, engine_error)``:
        ``ok`` when every one was built; on failure, the log line saying the engine (not an
        image) failed the batch, else None (:func:`batches.engine_error`). Nothing is lost
        either way: images the batch finished are found again by their keys."""
        inside = set(names)
        self.batch_count += 1
        log, metadata = self._bake_files(self.batch_count)
        # bake starts while its aliases are made; it reads the definition once they exist
        pending, self._ahead = self._ahead, None
        if pending is None and not self.runner.dry:
            pending = docker.start_bake(self.runner, log, metadata)
        try:
            deps = (d for n in names for d in self.graph.nodes[n].local_refs.values())
            self.make_sources(d for d in deps if d not in inside)
            requests = {
                name: self.request(
                    name,
                    self.contexts(
                        name, lambda dep: f"target:{dep}" if dep in inside else self.source(dep)
                    ),
                )
                for name in names
            }
            named = self._aliases_in_bake(requests)
        except BaseException:
            if pending is not None:
                pending.cancel()
            raise
        self.collect_aliases()  # while the bake runs: none of its aliases is stale
        started = time.monotonic()
        ok = docker.bake(self.runner, requests, log, metadata, pending)
        self.batch_seconds.update(dict.fromkeys(names, time.monotonic() - started))
        if self.runner.dry:
            self.built.update({n: "" for n in names})
            return True, None
        docker.split_bake_log(log, {n: self.log_path(n) for n in names})
        if ok:
            digests = docker.bake_digests(metadata, names)
            self.built.update({n: self.loaded(n, digests.get(n, "")) for n in names})
            for n in names:
                self.record(n, self.built[n])
            with self._lock:
                for n, alias in named.items():
                    self.sources.setdefault(n, f"docker-image://{alias}")
            return True, None
        # images the batch did finish are in the store (or registry) under their keys
        for name, hit in self.look_up(names).items():
            if hit is not None:
                self.built[name] = hit.image_id
        return False, batches.engine_error(tail(log, 40))

    def _bake_files(self, batch: int) -> tuple[Path, Path]:
        """The log and metadata file of the ``batch``-th bake of this run (from 1)."""
        log = self.settings.logs_dir / ("bake.log" if batch == 1 else f"bake-{batch}.log")
        return log, Path(self._tmp.name) / f"bake-metadata-{batch}.json"

    def bake_ahead(self) -> None:
        """Start the first batch's ``docker buildx bake`` now, before the lookups, when one is
        likely: two or more images to build (``force``) or with input keys this machine never
        planned before (an edit; the dependents' keys change with their base's). The docker
        CLI and buildx start (~0.1-0.2 s; buildx dials the engine, then sends nothing until it
        has read its definition) while the lookups run; the first :meth:`bake` feeds it,
        :meth:`close` stops it when nothing needed a bake (the keys were found cached or in
        the registry). Not under ``--dry``."""
        likely = self.graph.nodes if self.force else self.new_keys
        if self.runner.dry or self.batch_count or len(likely) < 2:
            return
        self.settings.logs_dir.mkdir(parents=True, exist_ok=True)
        self._ahead = docker.start_bake(self.runner, *self._bake_files(1))

    def alias(self, name: str) -> str:
        """The alias of ``name``'s image with this run's input key
        (:func:`docker.alias_reference`)."""
        return docker.alias_reference(self.project, name, self.keys[name])

    def _alias_of(self, reference: str, key: str) -> str | None:
        """For the local lookup: the alias the image under ``reference`` (one of an image's
        tags) with input ``key`` has, when that image is a base of another (only those are
        ever aliased)."""
        name = self._named.get(reference)
        if name is None or name not in self._bases:
            return None
        return docker.alias_reference(self.project, name, key)

    def _alias_scope(self) -> str:
        """What the kept list of this project's aliases is kept per: the engine (its
        environment) and the project."""
        return "\n".join([repr(docker.engine_env()), self.project])

    def collect_aliases(self) -> None:
        """Start removing, in a worker thread, the aliases of this project's images that name
        input keys other than this run's (kept listed by earlier runs: :meth:`close`), once:
        they held images whose tags moved on, and no run builds from them again (an edit
        undone gets its alias anew). Aliases of images outside this run's graph are left as
        they are. Never under ``--dry``. :meth:`close` waits for it."""
        if self._stale is not None or self.runner.dry:
            return
        current = {self.alias(n) for n in self.graph.nodes}
        self._stale = stale = [
            a
            for a in imagecache.kept_aliases(self._alias_scope())
            if a not in current
            and (parts := docker.alias_parts(a)) is not None
            and parts[0] == self.project
            and parts[1] in self.graph.nodes
        ]
        if stale:
            self._collecting = self._pool.submit(docker.in_context(docker.remove_names), stale)

    def drop_ahead(self) -> None:
        """Stop the bake :meth:`bake_ahead` started, if no batch took it."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            ahead.cancel()

    def _aliases_in_bake(self, requests: dict[str, docker.BuildRequest]) -> dict[str, str]:
        """Give each image of the batch that an image built later in this run builds on its
        alias (:meth:`source`) as one more tag of the bake's own output, instead of a tag call
        after it (Engine 26: 25-45 ms of engine CPU each; ~100 in a cold 164-image build).
        Only for plain loads into the local store (a pushed or OCI output would carry the
        alias elsewhere). ``requests`` is updated; returns ``{name: alias}``, each alias
        listed as this run's whether the bake succeeds or not."""
        if self.runner.dry:
            return {}
        later = {n for n in self.to_build() if n not in requests}
        wanted = {d for n in later for d in self.graph.nodes[n].local_refs.values()}
        named = {
            name: self.alias(name)
            for name, req in requests.items()
            if name in wanted and docker.outputs(req) == ["type=docker"]
        }
        for name, alias in named.items():
            requests[name] = replace(requests[name], tags=[*requests[name].tags, alias])
        with self._lock:
            self.aliases.extend(named.values())
        return named

    def bake_all(self, names: list[str]) -> None:
        """Build ``names`` (in build order) in batches of at most ``batch_size``
        (:func:`batches.run`), chains of images kept together. A batch the engine failed is
        retried in halves: a line on stderr and a note on each of its images say so. When an
        image failed a batch, batching stops with a line: the rest build one by one, where a
        failure skips only its dependents."""

        def retried(r: batches.Retry) -> None:
            why = f"bake of {len(r.names)} images failed in the engine ({r.why})"
            sizes = " and ".join(str(len(p)) for p in r.parts)
            emit(f"buildkit: {why}; retrying as batches of {sizes}", err=True)
            for name in (n for part in r.parts for n in part):
                self.notes[name] = "; ".join(
                    filter(None, [self.notes.get(name), f"{why}, retried smaller"])
                )

        deps = {n: set(self.graph.nodes[n].local_refs.values()) for n in names}
        if not batches.run(
            names, self.settings.batch_size, self.bake, lambda n: n in self.built, retried, deps
        ):
            emit("buildkit: an image failed its bake batch; building the rest one by one", err=True)

    # -- per image --------------------------------------------------------------------------

    def source(self, name: str) -> str:
        """The named-context source a dependent uses for ``name`` (built or cached before it):
        a run-unique alias of its local image, made on first use, or else (push mode, image
        only in the registry, its key checked there) the registry's tag."""
        with self._lock:
            if name not in self.sources:
                self.sources[name] = self._new_sources([name], self.hits)[name]
            return self.sources[name]

    def make_sources(self, names: Iterable[str]) -> None:
        """:meth:`source` of each of ``names`` made now, all at once (:func:`docker.add_names`:
        a batch's aliases one after another would cost seconds), after those the lookup
        started early (:meth:`_alias_early`). For a batch, before its bake: nothing else asks
        meanwhile."""
        early, self._early = self._early, None
        if early is not None:
            early.result()
        self._keep_sources(sorted(set(names) - set(self.sources)), self.hits)

    def _keep_sources(self, names: list[str], hits: Mapping[str, CacheHit | None]) -> None:
        """:meth:`_new_sources` of ``names`` kept in ``sources``."""
        if not names:
            return
        made = self._new_sources(names, hits)
        with self._lock:
            for name, source in made.items():
                self.sources.setdefault(name, source)

    def _new_sources(self, names: list[str], hits: Mapping[str, CacheHit | None]) -> dict[str, str]:
        """The sources for ``names`` (``hits``: the lookup's answers): their aliases, made
        now (:func:`docker.add_names`) unless the lookup saw an earlier run's naming the
        image; takes no lock. Each alias is listed as this run's before it is made (list
        appends are atomic), so one that a Ctrl-C leaves unanswered is still collected when
        its key is gone."""
        out, wanted = {}, {}
        for name in names:
            hit = hits.get(name)
            local = hit.local_id if hit is not None else self.tags[name][0]
            if not local or self.runner.dry:
                out[name] = f"docker-image://{self.tags[name][0]}"
                continue
            alias = self.alias(name)
            self.aliases.append(alias)
            if hit is None or alias not in hit.aliases:
                wanted[alias] = (local, hit.tags if hit is not None else ())
            out[name] = f"docker-image://{alias}"
        if wanted:
            docker.add_names(wanted)
        return out

    def job(self, name: str) -> Done | tuple[Status, Done | str]:
        """The scheduler's job for one image: reuse, take the batch's result, or build."""
        if name in self.errors:
            return Status.SKIPPED, self.errors[name]
        hit = self.hits.get(name)
        if hit is not None:
            if self.by_digest(name) and not self.tag:  # its manifests are the sources
                return Status.CACHED, self.done(name, hit.image_id, pushed=", ".join(hit.sources))
            if self.by_digest(name):
                return Status.CACHED, self.held_for_release(name, hit)
            if self.runner.dry:
                emit(f"# {name}: cached; its tags would name {hit.image_id[:19]}")
            else:
                point_tags(self.runner, hit.image_id, hit.tags, self.tags[name], self.pushes(name))
                if hit.local_id and not self.pushes(name):
                    with self._lock:
                        self.moved.update(dict.fromkeys(self.tags[name], hit.local_id))
            return Status.CACHED, self.done(name, hit.image_id, self.pushed(name))
        log = self.log_path(name)
        if name in self.built:
            # built inside the batch: its time is the batch's
            image_id = self.built[name]
            if self.by_digest(name):
                return self.push_by_digest(name, image_id, log, self.batch_seconds[name])
            return self.done(name, image_id, self.pushed(name, image_id), self.batch_seconds[name])
        contexts = self.contexts(name, self.source)
        if not self.runner.dry:
            log.write_text("")
        req = self.request(name, contexts)
        image_id = self.retrying(
            req.tags[0], req.push, log, lambda: docker.build(self.runner, req, log), build=name
        )
        image_id = self.loaded(name, image_id)
        self.record(name, image_id)
        if self.by_digest(name):
            return self.push_by_digest(name, image_id, log)
        return self.done(name, image_id, self.pushed(name, image_id))

    def settled(self, name: str) -> bool:
        """Whether :meth:`job` of ``name`` only reports what is already decided, asking no
        engine or registry anything (the scheduler runs it inline): skipped before the
        start, reused with every tag already naming it, or built by a batch, neither pushed
        nor pushed by digest."""
        if name in self.errors:
            return True
        if self.pushes(name) or self.by_digest(name):
            return False
        hit = self.hits.get(name)
        if hit is not None:
            return all(t in hit.tags for t in self.tags[name])
        return name in self.built

    def record(self, name: str, image_id: str) -> None:
        """Keep ``name``'s input key as the label of the image this run built as ``image_id``
        (the build set it), so later lookups need not ask the engine (:mod:`.imagecache`);
        not under ``--dry``, nor when the image's extra build args set that label."""
        extra = self.graph.nodes[name].spec.extra_build_args
        if image_id and not self.runner.dry and not any(cachekey.KEY_LABEL in a for a in extra):
            imagecache.remember(image_id, cachekey.KEY_LABEL, self.keys[name])
        if image_id and not self.runner.dry:
            with self._lock:
                self.moved.update(dict.fromkeys(self.tags[name], image_id))

    def loaded(self, name: str, image_id: str) -> str:
        """A reproducible build of ``name`` (written only to its OCI layout) loaded into the
        local store under its tags (``docker load``: the store keeps the layout's digest, which
        becomes the image ID, returned); the layout stays for a push by digest. Any other
        build: ``image_id`` as it is."""
        if self.epoch is None or self.runner.dry:
            return image_id
        layout = self.layout(name)
        digest = oras.layout_digest(layout)
        docker.load_layout(self.runner, layout, self.log_path(name))
        if not self.by_digest(name) and self.layouts is None:
            layout.unlink(missing_ok=True)
        return digest

    def retrying(
        self,
        ref: str,
        push: bool,
        log: Path,
        action: Callable[[], str],
        build: str | None = None,
    ) -> str:
        """Run ``action``; when it pushes (``push``) and fails for a transient reason (5xx,
        reset or refused connections, timeouts) try again, ``push_retries`` times, after
        :func:`backoff` seconds. A refused authentication or authorization is never retried.
        ``build``: the image ``action`` builds; when the engine, not the image, failed it
        (:func:`batches.engine_error`, e.g. BuildKit losing a snapshot it was committing while
        containerd collected garbage) it is built once more, said in its log and report note.
        Nothing is tried again once the runner is stopping (Ctrl-C)."""
        retries = self.settings.push_retries if push else 0
        attempt = 0
        engine_retried = False
        while True:
            try:
                return action()
            except CommandError as exc:
                if push and credentials.is_auth_error(error_lines(exc.output_tail)):
                    raise BuildkitError(
                        f"the registry refused the push of {ref}: check that the "
                        "credentials (BUILDKIT_REGISTRY_USER, BUILDKIT_REGISTRY_PASSWORD or "
                        "password_file) may push to this repository"
                    ) from None
                if self.runner.stopping:  # stopped by Ctrl-C: nothing is tried again
                    raise
                why = batches.engine_error(exc.output_tail) if build else None
                if build and why and not engine_retried:
                    engine_retried = True
                    note = f"the engine failed its build ({why[:200]}), built again"
                    self.notes[build] = "; ".join(filter(None, [self.notes.get(build), note]))
                    with log.open("a") as fh:
                        fh.write(f"\n# buildkit-tasks: {note}\n")
                    continue
                if attempt == retries or not is_transient(exc.output_tail):
                    raise
            delay = backoff(attempt)
            with log.open("a") as fh:
                fh.write(
                    f"\n# buildkit-tasks: transient failure, retry {attempt + 1} in {delay:.1f} s\n"
                )
            time.sleep(delay)
            attempt += 1

    # -- atomic push ------------------------------------------------------------------------

    def push_by_digest(
        self, name: str, image_id: str, log: Path, batch_seconds: float | None = None
    ) -> Done:
        """Push the OCI layout this run built for ``name`` by digest (``oras cp``, no tag,
        retried like a push); its tags wait for :meth:`release`."""
        repository = self.settings.repository(name)
        layout = self.layout(name)
        if self.runner.dry:
            digest = "sha256:<digest>"
            self.runner.run(oras.copy_argv(layout, digest, repository))
            ref = f"{repository}@{digest}"
            return self.done(name, image_id, batch_seconds=batch_seconds, pushed=ref,
                             release=(ref, tuple(self.tags[name])))  # fmt: skip
        digest = oras.layout_digest(layout)
        argv = oras.copy_argv(layout, digest, repository)
        what = f"pushing {name} by digest to {repository}"

        out = Path(self._tmp.name) / f"{name}.oras.log"

        def copy() -> str:
            out.write_text("")
            res = self.runner.run(argv, log=out, check=False)
            text = out.read_text(encoding="utf-8", errors="replace")
            with log.open("a") as fh:
                fh.write(text)
            if not res.ok:
                raise CommandError(
                    f"{what} failed (exit {res.returncode}); log: {log}",
                    res.returncode,
                    oras.failure_summary(text),
                )
            return digest

        self.retrying(repository, True, log, copy)
        layout.unlink(missing_ok=True)  # pushed: the registry holds it now
        ref = f"{repository}@{digest}"
        return self.done(
            name,
            image_id,
            publishing.read(self.runner, ref),
            batch_seconds,
            pushed=ref,
            release=(ref, tuple(self.tags[name])),
        )

    def held_for_release(self, name: str, hit: CacheHit) -> Done:
        """A reused image in an atomic push: the registry already holds it (``hit``); the
        tags it lacks are made by :meth:`release` from its digest."""
        repository = self.settings.repository(name)
        ref = f"{repository}@{hit.image_id}"
        missing = tuple(t for t in self.tags[name] if t not in hit.tags)
        if self.runner.dry:
            return self.done(name, hit.image_id, release=(ref, missing) if missing else None)
        return self.done(
            name,
            hit.image_id,
            publishing.read(self.runner, ref),
            release=(ref, missing) if missing else None,
        )

    def pushed(self, name: str, digest: str | None = None) -> Published:
        """With ``push``: :func:`publishing.publish` of ``name`` (``digest``: what this run
        built; None for a reused image)."""
        if not self.pushes(name):
            return Published()
        version_ref, latest_ref = self.tags[name]
        return publish(self.runner, version_ref, latest_ref, digest)

    def close(self, interrupted: bool = False) -> None:
        """Free the run's resources; ``interrupted``: do not wait for engine lookups still
        under way (their threads end on their own; Ctrl-C must not hang on them). A run that
        built something and has not yet collected its project's stale aliases does so now
        (:meth:`collect_aliases`; not when interrupted). The aliases this run made or used
        are kept listed, with those earlier runs listed minus the ones removed, whatever
        happens meanwhile (aliases still being made are waited for up to
        :data:`ALIASES_WAIT` seconds): a later run collects them once their keys are gone. A
        bake started ahead that no batch took is stopped."""
        collecting: Future[None] | None = None
        try:
            self.drop_ahead()
            if not interrupted and (self.built or self.moved):
                self.collect_aliases()
            collecting = self._collecting
            self._pool.shutdown(wait=not interrupted, cancel_futures=True)
            self._tmp.cleanup()
        finally:
            if self._early is not None:  # aliases still being made are listed first
                futures_wait([self._early], timeout=ALIASES_WAIT)
            self._keep_aliases(collecting if not interrupted else None)
            docker.remember_tags(self.moved)

    def _keep_aliases(self, collecting: Future[None] | None) -> None:
        """Keep this project's aliases listed (:func:`imagecache.keep_aliases`): those listed
        before, minus the stale ones ``collecting`` removed (when it did), plus this run's."""
        removed: set[str] = set()
        if collecting is not None and collecting.done() and not collecting.cancelled():
            if collecting.exception() is None:
                removed = set(self._stale or ())
        if self.runner.dry or not (self.aliases or removed):
            return
        scope = self._alias_scope()
        imagecache.keep_aliases(
            scope, [*(a for a in imagecache.kept_aliases(scope) if a not in removed), *self.aliases]
        )


def build_images(
    settings: Settings,
    plan: BuildPlan,
    runner: Runner,
    *,
    push: bool = False,
    platforms: Iterable[str] = (),
    workers: int | None = None,
    fail_fast: bool = False,
    force: bool = False,
    batch: bool = True,
    atomic: bool = False,
    tag: bool = True,
    on_start: Callable[[str], None] | None = None,
    on_done: Callable[[ImageResult], None] | None = None,
    on_plan: Callable[[list[Explanation]], None] | None = None,
    layouts: Path | None = None,
) -> list[ImageResult]:
    """Build (and with ``push``, push) every image of ``plan`` in dependency order, under the
    references the plan gives.

    1. Plan: every image's input key (:mod:`.cachekey`) is computed and looked up. An image
       whose key matches the local image under its tags (with ``push``: the image in the
       registry) is not rebuilt; its tags are pointed at it and it is reported ``cached``
       (``force`` rebuilds everything). Building with a ``registry`` (config ``pull``, default
       true), an image the local store lacks but the registry holds with its key is pulled
       instead (:meth:`ImageBuild.pull_held`; ``cached``, its note says ``pulled``).
    2. Batches (``batch``, the default, when two or more images must build): the images
       are cut in build order into ``docker buildx bake`` batches of at most
       ``settings.batch_size`` (:mod:`.batches`), each one solve, dependents inside a batch
       from ``target:`` contexts, which is what makes a cold build as fast as bake. A batch
       the engine fails is retried in halves (said on stderr and in each image's note); when
       an image fails a batch, what the batches finished is kept and the rest go to step 3,
       where failures are isolated.
    3. Per image: the rest build on the scheduler, ``workers`` (default
       ``settings.parallel``) at once; a failure skips only what depends on it (``fail_fast``
       stops starting new builds).
    4. With ``push`` and ``atomic``: every image was built into the local store and an OCI
       layout and pushed by digest only (``oras``); its tags are made by :func:`release`
       once no image failed, so a failed run leaves no tag of its own in the registry.
       ``tag`` false (with ``push``): every image is pushed by digest only, never tagged; each
       result's ``pushed`` names it, for the caller to tag (:mod:`.fanout` makes manifest
       lists of several hosts' digests). An image whose tag already lists manifests with this
       run's key for every one of its platforms is ``cached`` and ``pushed`` names those
       manifests (``repository@digest, ...``).

    ``on_plan`` gets the plan's :class:`Explanation` of every image before anything builds.
    ``layouts``: a directory where reproducible builds (config ``reproducible``) keep each
    image's OCI layout archive, ``<name>.oci.tar`` (image.verify --rebuild reads them).
    Returns one ImageResult per image in build order; failures are in the results (status
    ``failed``/``skipped``), not raised. Raises KeyboardInterrupt after stopping builds.
    """
    graph = plan.graph
    run = ImageBuild(
        settings, plan, runner, push=push, platforms=platforms, force=force, atomic=atomic,
        tag=tag, layouts=layouts,
    )  # fmt: skip
    interrupted = False
    try:
        if batch:
            run.bake_ahead()
        run.hits = run.look_up(graph.nodes)
        if on_plan:
            on_plan(run.explain())
        if not runner.dry:
            settings.logs_dir.mkdir(parents=True, exist_ok=True)
        run.pull_held()
        pending = batchable(graph, run.to_build())
        if batch and len(pending) > 1:
            if on_start:
                for name in pending:
                    on_start(name)
            run.bake_all(pending)
        run.drop_ahead()

        def done(outcome: Outcome) -> None:
            if on_done:
                on_done(to_result(settings, outcome))

        def start(name: str) -> None:
            if on_start and name not in run.built and run.hits.get(name) is None:
                on_start(name)

        outcomes = scheduler.run_graph(
            graph.predecessors(),
            run.job,
            workers=workers or settings.parallel,
            fail_fast=fail_fast,
            on_start=start,
            on_done=done,
            on_interrupt=runner.terminate_all,
            stop_wait=runner.stop_grace + 3,
            inline=run.settled,
        )
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        run.close(interrupted)
    results = [to_result(settings, outcomes[n]) for n in graph.order()]
    if run.atomic and tag:
        release(settings, runner, outcomes, results)
    return results


def release(
    settings: Settings, runner: Runner, outcomes: dict[str, Outcome], results: list[ImageResult]
) -> None:
    """The last step of an atomic push (``results`` updated in place): when no image failed,
    every image's tags are made from its digest (``docker buildx imagetools create``, in build
    order); otherwise none is, so no tag of this run exists in the registry, and what was
    pushed by digest only is said. Should tagging itself fail (the registry gone between two
    images), that image is marked failed and the rest stay untagged. Tagging output goes to
    each image's log under ``settings.logs_dir``."""
    pending = {
        name: o.value.release
        for name, o in outcomes.items()
        if isinstance(o.value, Done) and o.value.release is not None
    }
    failed = any_failed(results)
    for result in results:
        if result.pushed is not None or result.name in pending:
            result.tagged = False
    if failed:
        pushed = [r.pushed for r in results if r.pushed]
        emit(
            "atomic push: an image failed, so no tag of this run was made"
            + (f"; pushed by digest only: {', '.join(pushed)}" if pushed else ""),
            err=True,
        )
        return
    for result in results:
        if result.name not in pending:
            continue
        source, tags = pending[result.name]
        try:
            log = None if runner.dry else settings.logs_dir / f"{result.name}.log"
            docker.remote_tag(runner, source, *tags, log=log)
        except CommandError as exc:
            result.status, result.error = Status.FAILED.value, f"tagging failed: {exc}"
            return
        result.tagged = True


def explain_images(
    settings: Settings,
    plan: BuildPlan,
    runner: Runner,
    *,
    push: bool = False,
    platforms: Iterable[str] = (),
) -> list[Explanation]:
    """The plan of :func:`build_images` without building: every image's decision and why.
    Read-only (local store and, with ``push``, registry lookups). Raises ConfigError or
    BuildkitError as planning a build does."""
    run = ImageBuild(settings, plan, runner, push=push, platforms=platforms, force=False)
    try:
        run.hits = run.look_up(plan.graph.nodes)
        return run.explain()
    finally:
        run.close()


_TRANSIENT = re.compile(
    r"\b5\d\d (?:Internal|Bad|Service|Gateway)|status(?: code)?:? 5\d\d|connection reset|"
    r"connection refused|i/o timeout|timed out|timeout exceeded|unexpected EOF|broken pipe|"
    r"temporar(?:y|ily)",
    re.I,
)


BACKOFF_CAP = 30.0  # seconds: the longest wait between two tries of a push


def backoff(attempt: int) -> float:
    """Seconds to wait before try ``attempt + 1`` of a push: 1, 2, 4... capped at
    :data:`BACKOFF_CAP`, each with +-50 % jitter so parallel pushes do not retry in step."""
    return min(BACKOFF_CAP, 2.0**attempt) * random.uniform(0.5, 1.5)


def error_lines(text: str) -> str:
    """The lines of a build log that report errors."""
    return "\n".join(ln for ln in text.splitlines() if "error" in ln.lower())


def is_transient(text: str) -> bool:
    """Whether a failed push's log says something worth another try (5xx, resets, timeouts)."""
    return bool(_TRANSIENT.search(error_lines(text)))


def to_result(settings: Settings, outcome: Outcome) -> ImageResult:
    """The report's form of a scheduler outcome (a :class:`Done` for built or cached
    images; failed and skipped ones carry only their error)."""
    done = outcome.value if isinstance(outcome.value, Done) else None
    log = settings.logs_dir / f"{outcome.name}.log"
    in_batch = done is not None and done.batch_seconds is not None
    return ImageResult(
        name=outcome.name,
        status=outcome.status.value,
        references=done.references if done else [],
        image_id=done.image_id if done else "",
        platforms=done.platforms if done else [],
        seconds=done.batch_seconds if done and done.batch_seconds is not None else outcome.seconds,
        key=done.key if done else None,
        note=done.note if done else None,
        digest=done.published.digest if done else None,
        platform_digests=done.published.platform_digests if done else None,
        attestations=done.published.attestations if done else None,
        pushed=done.pushed if done else None,
        batch=True if in_batch else None,
        log=str(log)
        if outcome.status in (Status.FAILED, Status.SUCCEEDED) and log.exists()
        else None,
        error=outcome.error,
        log_tail=outcome.detail or None,
    )


def not_built(results: Iterable[ImageResult]) -> list[ImageResult]:
    """The results that are neither succeeded nor cached (failed or skipped)."""
    ok = (Status.SUCCEEDED.value, Status.CACHED.value)
    return [r for r in results if r.status not in ok]


def any_failed(results: Iterable[ImageResult]) -> bool:
    """Whether an image failed (an image skipped only because its ``platforms`` exclude what
    was asked, and what builds on it, is not a failure)."""
    return any(r.status == Status.FAILED.value for r in results)

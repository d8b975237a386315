"""The local engine's containerd image store, read directly: which image each tag names now.

With the containerd image store, Engine 26's image list (``GET /images/json``) works out every
listed image's details (content checks, sizes, labels: about 12-14 ms of engine CPU per image,
one after another within a call; moby#47564), so asking after 164 images costs 1.5-2.5 s even
when nothing changed. containerd itself keeps each name's target digest (the engine's image
ID) in its metadata and answers for all of them in one call (``ctr images list``, about
0.3 s for 164 names, most of it ``ctr`` reading each image's manifests to print its size;
confirming what each name was last seen naming, ``--quiet`` with a ``name==N,target.digest==D``
filter per name, reads none: ~20 ms for 328 names). Here only that question is asked, through
containerd's own ``ctr``;
what an image *is* (its labels) stays the engine's answer, kept by image ID in
:mod:`..imagecache` (an ID is a content digest, so what it names never changes).

Only for the local engine on its default socket, whose containerd socket is one of the
well-known two and the only one of them alive; :func:`engine_socket` says which. The
engine's namespace is ``moby`` (dockerd's default).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TypeVar

from ..references import try_parse

NAMESPACE = "moby"
# dockerd's own containerd (started by dockerd under its exec-root /var/run/docker), then the
# system containerd (a containerd service, which dockerd uses when it runs at dockerd's start)
SOCKETS = ("/var/run/docker/containerd/containerd.sock", "/run/containerd/containerd.sock")
# the engine sockets for which the engine is this machine's dockerd
LOCAL_ENGINES = ("", "unix:///var/run/docker.sock", "unix:///run/docker.sock")
TIMEOUT = 30.0  # seconds for one ``ctr images list``
CHUNK, CALLS = 64, 2  # names per ``ctr`` call before asking in CALLS calls at once

T = TypeVar("T")


def local_engine(env: Mapping[str, str]) -> bool:
    """Whether the Docker SDK, given environment ``env``, talks to this machine's dockerd on
    its default socket (``DOCKER_HOST`` unset or ``unix:///var/run/docker.sock``, no docker
    context chosen): the only engine whose containerd :func:`engine_socket` can find."""
    context = env.get("DOCKER_CONTEXT", "")
    return env.get("DOCKER_HOST", "") in LOCAL_ENGINES and context in ("", "default")


def engine_socket(candidates: Iterable[str] | None = None) -> str | None:
    """The containerd socket of the local engine: the one of ``candidates`` (paths; default
    :data:`SOCKETS`) that is a socket this process may use, when ``ctr`` is on PATH; None when
    none is, or when more than one is (two containerds: which one the engine uses cannot be
    told from here)."""
    if shutil.which("ctr") is None:
        return None
    found: dict[str, str] = {}
    for path in SOCKETS if candidates is None else candidates:
        try:
            if not stat.S_ISSOCK(os.stat(path).st_mode):
                continue
        except OSError:
            continue
        if os.access(path, os.R_OK | os.W_OK):
            found.setdefault(os.path.realpath(path), path)
    return next(iter(found.values())) if len(found) == 1 else None


PID_FILE = "/var/run/docker.pid"  # dockerd's default --pidfile


def engine_instance(address: str) -> str | None:
    """Text naming this run of the local engine with containerd at ``address``: the socket,
    dockerd's process ID (from :data:`PID_FILE`) and start time, and the boot ID; what the
    engine keeps its images in cannot change within it. None when the pid file or the
    process cannot be read, or the process is not ``dockerd``."""
    try:
        pid = int(Path(PID_FILE).read_text().strip())
        proc = Path(f"/proc/{pid}")
        if (proc / "comm").read_text().strip() != "dockerd":
            return None
        started = (proc / "stat").read_text().rpartition(")")[2].split()[19]
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except (OSError, ValueError, IndexError):
        return None
    return f"{address}\n{pid}\n{started}\n{boot}"


def store_name(reference: str) -> str | None:
    """The name containerd keeps ``reference`` under: fully qualified, tag ``latest`` when
    none is written (``api:1`` -> ``docker.io/library/api:1``); None for text that is not a
    tagged reference (digests are not names)."""
    ref = try_parse(reference)
    if ref is None or ref.digest:
        return None
    return f"{ref.repository}:{ref.tag or 'latest'}"


def images_argv(address: str, *args: str) -> list[str]:
    """``ctr images <args...>`` against containerd at ``address`` in the engine's namespace."""
    return ["ctr", "--address", address, "--namespace", NAMESPACE, "images", *args]


def list_argv(address: str, names: Iterable[str]) -> list[str]:
    """``ctr images list`` of exactly ``names`` (containerd names, each its own ``name==``
    filter; filters given apart are alternatives) in the engine's namespace."""
    return images_argv(address, "list", *(f"name=={n}" for n in names))


def parse_list(text: str) -> dict[str, str]:
    """``{name: target digest}`` from ``ctr images list`` output (columns ``REF TYPE DIGEST
    SIZE PLATFORMS LABELS``; the first line is the header; SIZE holds a space, so only the
    first three columns are read). Raises ValueError on a line that does not fit."""
    out: dict[str, str] = {}
    for line in text.splitlines()[1:]:
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) < 3 or not parts[2].startswith("sha256:"):
            raise ValueError(f"unexpected ctr images list line: {line[:120]!r}")
        out[parts[0]] = parts[2]
    return out


def confirm_argv(address: str, names: Iterable[str], guesses: Mapping[str, str]) -> list[str]:
    """``ctr images list --quiet`` printing which of ``names`` containerd holds, a name with
    a guessed target only while it still names that target (a ``name==N,target.digest==D``
    filter: both must hold; ``name==N`` for the others)."""
    filters = (
        f"name=={n},target.digest=={guesses[n]}" if n in guesses else f"name=={n}"
        for n in sorted(set(names))
    )
    return images_argv(address, "list", "--quiet", *filters)


def targets(
    address: str,
    names: Iterable[str],
    guesses: Mapping[str, str] | None = None,
    also: Mapping[str, str] | None = None,
) -> dict[str, str] | None:
    """``{name: target digest}`` of those of ``names`` (containerd names) that containerd at
    ``address`` holds; None when it cannot be asked (``ctr`` failed, timed out, printed
    something else): the caller then asks the engine. With ``guesses`` (name -> the target
    it named when last seen), one quiet call that reads no manifest first confirms them and
    says which of the other names exist; only the names whose guess failed and the unguessed
    ones that exist are then listed in full. ``also`` (further names -> a target): names
    only confirmed in that quiet call (none without ``guesses``), in the answer when they
    name that target, never listed. More than :data:`CHUNK` of those are asked in
    :data:`CALLS` ``ctr`` calls at once (``ctr`` reads each listed image's index and
    manifests to print its size, ~1.5 ms per name: 328 names took 0.57 s in one call, 0.41 s
    in two on two cores)."""
    names = sorted(set(names))
    out: dict[str, str] = {}
    guesses = {n: d for n, d in (guesses or {}).items() if n in set(names)}
    if guesses:
        also = {n: d for n, d in (also or {}).items() if n not in set(names)}
        there = _run(confirm_argv(address, [*names, *also], {**guesses, **also}), _parse_quiet)
        if there is None:
            return None
        out.update({n: d for n, d in guesses.items() if n in there})
        confirmed = {n: d for n, d in also.items() if n in there}
        there -= set(confirmed)
        names = [n for n in names if (n in guesses and n not in out) or n in there - set(out)]
        out.update(confirmed)
    if not names:
        return out
    calls = min(CALLS, -(-len(names) // CHUNK))
    size = -(-len(names) // calls)
    chunks = [names[i : i + size] for i in range(0, len(names), size)]
    if len(chunks) == 1:
        listed = [_run(list_argv(address, chunks[0]), parse_list)]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(chunks), thread_name_prefix="ctr") as pool:
            listed = list(pool.map(lambda c: _run(list_argv(address, c), parse_list), chunks))
    for part in listed:
        if part is None:
            return None
        out.update(part)
    return out


def tag(address: str, source: str, names: Iterable[str]) -> bool:
    """Give the image containerd at ``address`` holds as ``source`` the further ``names``
    (containerd names; one that exists is moved) in one ``ctr images tag --force`` call: ~15
    ms, where the engine's own tag call takes 40-70 ms with the containerd store. True when
    ``ctr`` says it did. The new names take whatever ``source`` names at that moment: callers
    confirm with :func:`targets`."""
    argv = images_argv(address, "tag", "--force", source, *names)
    return _run(argv, lambda _: True) is True


def remove(address: str, names: Iterable[str]) -> bool:
    """Remove ``names`` (containerd names; one not there is no error) in one ``ctr images
    rm`` call; the images keep their other names (an image with none left is garbage
    collected, as the engine would with ``noprune`` unset). True when ``ctr`` says it did."""
    argv = images_argv(address, "rm", *sorted(set(names)))
    return _run(argv, lambda _: True) is True


def _parse_quiet(text: str) -> set[str]:
    """The names ``ctr images list --quiet`` printed, one per line."""
    return {line.strip() for line in text.splitlines() if line.strip()}


def _run(argv: list[str], parse: Callable[[str], T]) -> T | None:
    """``parse`` of what ``ctr`` printed, None when it failed, timed out or printed something
    else (ValueError from ``parse``)."""
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
            env={**os.environ, "LC_ALL": "C"},
        )
        if done.returncode != 0:
            return None
        return parse(done.stdout)
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None

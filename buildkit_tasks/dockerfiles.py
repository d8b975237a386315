"""What a Dockerfile says about images: its stages, the images it uses, its labels.

Instructions come from BuildKit's own parser (the ``dockerfile`` package wraps the official Go
parser): heredocs, ``# escape=``, line continuations and comments are read exactly as
``docker build`` reads them. On top of those instructions this module does what BuildKit's
Dockerfile frontend does with words: quotes, escapes and variable expansion (``$X``, ``${X}``,
``${X:-default}``, ``${X-default}``, ``${X:+alt}``, ``${X+alt}``, ``${X:?message}``,
``${X#glob}``, ``${X%glob}``...), with ``ARG`` scoping as documented: ``ARG`` before the first
``FROM`` (global) is visible in ``FROM`` lines and in a stage only after ``ARG NAME`` there;
build args override declared ``ARG`` defaults; ``ENV`` is inherited by stages built on a stage.
Only stages the target needs count (BuildKit builds no others).
"""

from __future__ import annotations

import csv
import fnmatch
import functools
import re
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

from .errors import ConfigError, caused_by_interrupt

_DIRECTIVE_RE = re.compile(r"^#\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(.*?)\s*$")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PORT_IN_DOMAIN_RE = re.compile(r"(?<![\w.:/-])([A-Za-z0-9][A-Za-z0-9.-]*):([0-9]+)/")


class DockerfileError(ValueError):
    """A Dockerfile BuildKit would refuse (syntax, or a ``${X:?}`` left unset); the message
    names the line when it can."""


@dataclass(frozen=True)
class Stage:
    """One ``FROM``: its 0-based ``index``, ``name`` (``AS name``, lower-cased), ``base`` (the
    image or stage it starts from, variables expanded), ``platform`` (``--platform`` value) and
    ``line`` (1-based)."""

    index: int
    name: str | None
    base: str
    platform: str | None
    line: int


@dataclass(frozen=True)
class ImageUse:
    """A reference to an image that is not one of the file's stages: ``FROM x``,
    ``COPY --from=x`` or ``RUN --mount=...,from=x`` (``how`` says which), in ``stage``."""

    reference: str
    how: str
    stage: int
    line: int


@dataclass(frozen=True)
class Dockerfile:
    """The parsed file: ``stages`` in order, each stage's image uses and stage dependencies,
    each stage's labels (inherited from an in-file base stage), and the ``escape`` character."""

    stages: tuple[Stage, ...]
    uses: tuple[tuple[ImageUse, ...], ...]  # per stage
    needs: tuple[frozenset[int], ...]  # per stage: the stages it builds on or copies from
    stage_labels: tuple[Mapping[str, str], ...]  # per stage
    escape: str = "\\"

    def stage_index(self, target: str | None) -> int:
        """The index of stage ``target`` (by name, case-insensitive), the last stage when None.
        Raises DockerfileError when there is no such stage."""
        if target is None:
            return len(self.stages) - 1
        for stage in self.stages:
            if stage.name == target.lower():
                return stage.index
        raise DockerfileError(f"target stage {target!r} not found")

    def reachable(self, target: str | None = None) -> list[int]:
        """The stages BuildKit builds for ``target``, in file order."""
        seen: set[int] = set()
        stack = [self.stage_index(target)]
        while stack:
            i = stack.pop()
            if i not in seen:
                seen.add(i)
                stack.extend(self.needs[i])
        return sorted(seen)

    def image_uses(self, target: str | None = None) -> list[ImageUse]:
        """Every image reference the build of ``target`` uses, in file order."""
        return [use for i in self.reachable(target) for use in self.uses[i]]

    def labels(self, target: str | None = None) -> Mapping[str, str]:
        """The labels ``target`` (default: the last stage) sets, its in-file bases' included."""
        return self.stage_labels[self.stage_index(target)]


# -- words ----------------------------------------------------------------------------------


def expand(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """Process one word as BuildKit does: quotes removed, escapes applied, variables expanded
    from ``env`` (a name missing from ``env`` is unset; an empty value is set but empty).

    A modifier BuildKit has that this does not (``${X/a/b}``) leaves the expression as written.
    Raises DockerfileError for unterminated quotes or braces and for ``${X:?msg}`` with X unset.
    """
    return _Words(word, env, escape).process()


@dataclass
class _Words:
    text: str
    env: Mapping[str, str]
    escape: str
    pos: int = 0
    out: list[str] = field(default_factory=list)

    def process(self) -> str:
        text, n = self.text, len(self.text)
        while self.pos < n:
            ch = text[self.pos]
            if ch == self.escape:
                if self.pos + 1 < n:
                    self.out.append(text[self.pos + 1])
                self.pos += 2
            elif ch == "'":
                end = text.find("'", self.pos + 1)
                if end < 0:
                    raise DockerfileError(f"unterminated single quote in {text!r}")
                self.out.append(text[self.pos + 1 : end])
                self.pos = end + 1
            elif ch == '"':
                self.double_quoted()
            elif ch == "$":
                self.out.append(self.variable())
            else:
                self.out.append(ch)
                self.pos += 1
        return "".join(self.out)

    def double_quoted(self) -> None:
        text, n = self.text, len(self.text)
        self.pos += 1
        while self.pos < n:
            ch = text[self.pos]
            if ch == '"':
                self.pos += 1
                return
            if ch == self.escape and self.pos + 1 < n and text[self.pos + 1] in ('"', "$", ch):
                self.out.append(text[self.pos + 1])
                self.pos += 2
            elif ch == "$":
                self.out.append(self.variable())
            else:
                self.out.append(ch)
                self.pos += 1
        raise DockerfileError(f"unterminated double quote in {self.text!r}")

    def variable(self) -> str:
        text = self.text
        start = self.pos
        self.pos += 1  # the $
        if text.startswith("{", self.pos):
            end = _closing_brace(text, self.pos + 1)
            if end < 0:
                raise DockerfileError(f"missing '}}' in {text!r}")
            self.pos = end + 1
            return self.braced(text[start + 2 : end], text[start : end + 1])
        m = _NAME_RE.match(text, self.pos)
        if not m:
            return "$"
        self.pos = m.end()
        return self.env.get(m.group(), "")

    def braced(self, inner: str, written: str) -> str:
        m = _NAME_RE.match(inner)
        if not m:
            return written
        name, op = m.group(), inner[m.end() :]
        value = self.env.get(name)
        if not op:
            return value or ""
        for mod in (":-", ":+", ":?", "-", "+", "?", "##", "#", "%%", "%"):
            if op.startswith(mod):
                word = op[len(mod) :]
                break
        else:
            return written  # ${X/a/b} and others: left as written
        colon = mod.startswith(":")
        present = value is not None and (value != "" or not colon)
        if mod in (":-", "-"):
            return value or "" if present else self.sub(word)
        if mod in (":+", "+"):
            return self.sub(word) if present else ""
        if mod in (":?", "?"):
            if not present:
                raise DockerfileError(f"{name}: {self.sub(word) or 'is not set'}")
            return value or ""
        return _trim(value or "", mod, self.sub(word))

    def sub(self, word: str) -> str:
        return _Words(word, self.env, self.escape).process()


def _closing_brace(text: str, pos: int) -> int:
    depth = 1
    while pos < len(text):
        if text.startswith("${", pos):
            depth += 1
            pos += 2
            continue
        if text[pos] == "}":
            depth -= 1
            if depth == 0:
                return pos
        pos += 1
    return -1


def _trim(value: str, mod: str, pattern: str) -> str:
    """``${X#p}`` (shortest prefix), ``##`` (longest), ``%`` (shortest suffix), ``%%``."""
    n = len(value)
    if mod.startswith("#"):
        cuts = range(n, -1, -1) if mod == "##" else range(n + 1)
        for k in cuts:
            if fnmatch.fnmatchcase(value[:k], pattern):
                return value[k:]
    else:
        cuts = range(n + 1) if mod == "%%" else range(n, -1, -1)
        for k in cuts:
            if fnmatch.fnmatchcase(value[k:], pattern):
                return value[:k]
    return value


# -- parsing --------------------------------------------------------------------------------


class _Command(Protocol):
    """One instruction as ``dockerfile.parse_string`` returns it."""

    cmd: str
    value: tuple[str, ...]
    flags: tuple[str, ...]
    start_line: int
    end_line: int


def _go_parser() -> Any:
    """The ``dockerfile`` module (BuildKit's parser: Go code built as a C extension), imported
    on first use (fast ``inv --list``) with SIGINT blocked in this thread: loading it starts
    Go's runtime, and a Ctrl-C landing in the middle of that start killed the process with
    SIGSEGV (interrupt soak, about one planning-time Ctrl-C in ten). The threads Go starts
    keep SIGINT blocked (they inherit the mask), so Ctrl-C reaches Python's threads; one
    that came meanwhile is delivered, as KeyboardInterrupt, when the import is done."""
    if "dockerfile" in sys.modules:
        return sys.modules["dockerfile"]
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        import dockerfile
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    return dockerfile


@functools.lru_cache(maxsize=1 << 15)
def _commands(text: str) -> tuple[_Command, ...]:
    dockerfile = _go_parser()
    try:
        return cast("tuple[_Command, ...]", tuple(dockerfile.parse_string(text)))
    except dockerfile.GoParseError as exc:
        raise DockerfileError(str(exc)) from None
    except SystemError as exc:
        # Ctrl-C while the Go parser runs: the extension goes on with the KeyboardInterrupt
        # set, and Python reports a chain of SystemErrors ending in it; it is the interrupt
        if caused_by_interrupt(exc):
            raise KeyboardInterrupt from None
        raise


def escape_character(text: str) -> str:
    """The ``# escape=`` parser directive of ``text`` (``\\`` when there is none)."""
    for line in text.splitlines():
        m = _DIRECTIVE_RE.match(line.strip())
        if not m:
            break
        if m.group(1).lower() == "escape" and m.group(2) in ("\\", "`"):
            return m.group(2)
    return "\\"


def _pairs(values: Sequence[str]) -> list[tuple[str, str]]:
    """``ENV``/``LABEL`` values as the parser gives them: ``k, v, k, v...``."""
    return [(values[i], values[i + 1]) for i in range(0, len(values) - 1, 2)]


def _flag(flags: Sequence[str], name: str) -> list[str]:
    prefix = f"--{name}="
    return [f[len(prefix) :] for f in flags if f.startswith(prefix)]


def _mount_froms(flags: Sequence[str]) -> list[str]:
    out = []
    for spec in _flag(flags, "mount"):
        for field_ in next(csv.reader([spec]), []):
            key, _, value = field_.partition("=")
            if key.strip().lower() == "from" and value:
                out.append(value)
    return out


def parse(text: str, build_args: Mapping[str, str] | None = None) -> Dockerfile:
    """Read ``text`` as BuildKit would, with ``build_args`` (``--build-arg`` values).

    Raises DockerfileError for a file BuildKit refuses (no instructions, no ``FROM`` before
    other instructions, syntax errors, unterminated quotes or heredocs).
    """
    args = dict(build_args or {})
    escape = escape_character(text)
    commands = _commands(text)

    def word(value: str, env: Mapping[str, str], line: int) -> str:
        try:
            return expand(value, env, escape)
        except DockerfileError as exc:
            raise DockerfileError(f"line {line}: {exc}") from None

    # Stage names first: a FROM or --from may name a stage defined anywhere in the file.
    names: dict[str, int] = {}
    count = 0
    for c in commands:
        if c.cmd.upper() == "FROM":
            v = c.value
            if len(v) >= 3 and v[1].lower() == "as":
                names.setdefault(v[2].lower(), count)
            count += 1

    meta: dict[str, str] = {}
    stages: list[Stage] = []
    uses: list[list[ImageUse]] = []
    needs: list[set[int]] = []
    labels: list[dict[str, str]] = []
    envs: list[dict[str, str]] = []  # ENV per stage (inherited by stages built on it)
    scope: dict[str, str] = {}

    def stage_ref(ref: str, current: int) -> int | None:
        if ref.isdigit():
            return int(ref) if int(ref) < current else None
        index = names.get(ref.lower())
        return index if index is not None and index != current else None

    def use(ref: str, how: str, line: int) -> None:
        i = len(stages) - 1
        dep = stage_ref(ref, i)
        if dep is not None:
            needs[i].add(dep)
        elif ref and ref.lower() != "scratch":
            uses[i].append(ImageUse(ref, how, i, line))

    for c in commands:
        cmd, value, flags, line = c.cmd.upper(), c.value, c.flags, c.start_line
        if cmd == "ARG":
            target = meta if not stages else scope
            for decl in value:
                key, eq, default = decl.partition("=")
                if key in args:
                    target[key] = args[key]
                elif eq:
                    target[key] = word(default, target, line)
                elif stages and key in meta:
                    target[key] = meta[key]
            continue
        if cmd == "FROM":
            base = word(value[0], meta, line) if value else ""
            platform = _flag(flags, "platform")
            name = value[2].lower() if len(value) >= 3 and value[1].lower() == "as" else None
            index = len(stages)
            stages.append(
                Stage(index, name, base, word(platform[-1], meta, line) if platform else None, line)
            )
            uses.append([])
            needs.append(set())
            parent = stage_ref(base, index)
            labels.append(dict(labels[parent]) if parent is not None else {})
            envs.append(dict(envs[parent]) if parent is not None else {})
            scope = dict(envs[index])
            use(base, "FROM", line)
            continue
        if not stages:
            raise DockerfileError(f"line {line}: {cmd} before the first FROM")
        if cmd == "ENV":
            for key, val in _pairs(value):
                scope[key] = envs[-1][key] = word(val, scope, line)
        elif cmd == "LABEL":
            for key, val in _pairs(value):
                labels[-1][word(key, scope, line)] = word(val, scope, line)
        elif cmd in ("COPY", "ADD"):
            for ref in _flag(flags, "from"):
                use(word(ref, scope, line), "COPY --from", line)
        elif cmd == "RUN":
            for ref in _mount_froms(flags):
                use(word(ref, scope, line), "RUN --mount", line)
    if not stages:
        raise DockerfileError("no FROM instruction")
    return Dockerfile(
        stages=tuple(stages),
        uses=tuple(tuple(u) for u in uses),
        needs=tuple(frozenset(n) for n in needs),
        stage_labels=tuple(labels),
        escape=escape,
    )


def read_text(path: Path) -> str:
    """The text of Dockerfile ``path``. Raises ConfigError naming it when it is missing, a
    directory, unreadable or not UTF-8."""
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a Dockerfile") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read Dockerfile: {exc.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.start}); Dockerfiles are read as UTF-8"
        ) from None


def load(path: Path, build_args: Mapping[str, str] | None = None) -> Dockerfile:
    """:func:`parse` of the file ``path``. Raises ConfigError naming the file.

    Discovery and the graph both read every Dockerfile; the second read of the same text with
    the same build args is answered from a cache (keyed by the text, so an edited file is
    parsed again), and so is a text an earlier run parsed (:mod:`.dockerfilecache`; the
    caller keeps what it parsed with :func:`.dockerfilecache.save`)."""
    try:
        return _parsed(read_text(path), tuple(sorted((build_args or {}).items())))
    except DockerfileError as exc:
        raise ConfigError(f"{path}: {exc}") from None


@functools.lru_cache(maxsize=1 << 15)
def _parsed(text: str, build_args: tuple[tuple[str, str], ...]) -> Dockerfile:
    from . import dockerfilecache

    args = dict(build_args)
    kept = dockerfilecache.recall(text, args)
    if kept is not None:
        return kept
    parsed = parse(text, args)
    dockerfilecache.remember(text, args, parsed)
    return parsed


def registry_ports_hidden(text: str) -> str:
    """``text`` with every registry port in a ``FROM`` line written ``host-port/`` instead of
    ``host:port/`` (``FROM localhost:5000/acme/base`` -> ``FROM localhost-5000/acme/base``):
    the same length, so every line and column stays where it was. For linters whose parser
    refuses a port in an image reference (hadolint)."""
    lines = text.splitlines(keepends=True)
    try:
        commands = _commands(text)
    except DockerfileError:
        return text
    for c in commands:
        if c.cmd.upper() != "FROM":
            continue
        for i in range(c.start_line - 1, min(c.end_line, len(lines))):
            lines[i] = _PORT_IN_DOMAIN_RE.sub(r"\1-\2/", lines[i])
    return "".join(lines)


__all__ = [
    "Dockerfile",
    "DockerfileError",
    "ImageUse",
    "Stage",
    "escape_character",
    "expand",
    "load",
    "parse",
    "read_text",
    "registry_ports_hidden",
]

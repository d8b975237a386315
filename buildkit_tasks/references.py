"""Image references as Docker reads them, and which of them name the project's own images.

Follows the grammar of ``distribution/reference`` (what ``docker pull`` and BuildKit use):
``[domain[:port]/]path[:tag][@digest]``, where the first path component is a domain only when it
holds a ``.`` or a ``:``, is ``localhost``, or has an upper-case letter; otherwise the domain is
``docker.io``, and a one-component path on ``docker.io`` is under ``library/``. So ``nginx`` is
``docker.io/library/nginx``, ``local-only/base`` is ``docker.io/local-only/base``, and
``localhost:5000/acme/api`` is on the registry ``localhost:5000``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_COMPONENT_RE = re.compile(rf"^{_COMPONENT}$")
_PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_DOMAIN_RE = re.compile(
    r"^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
    r"(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[a-fA-F0-9:]+\])"
    r"(?::[0-9]+)?$"
)
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$")
_IDENTIFIER_RE = re.compile(r"^[a-f0-9]{64}$")
NAME_TOTAL_LENGTH_MAX = 255


class ReferenceError(ValueError):
    """A string that is not a valid image reference; the message says why."""


@dataclass(frozen=True)
class Reference:
    """A normalised image reference: ``domain`` (``docker.io`` when none was written),
    ``path`` (``library/nginx`` for ``nginx``), optional ``tag`` and ``digest``."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """``domain/path``: the fully qualified repository, e.g. ``docker.io/library/nginx``."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_repository(self) -> str:
        """The repository as people write it: ``nginx``, ``local-only/base``,
        ``localhost:5000/acme/api`` (Docker's ``FamiliarName``)."""
        if self.domain != DEFAULT_DOMAIN:
            return self.repository
        path = self.path
        if path.startswith(OFFICIAL_PREFIX) and "/" not in path[len(OFFICIAL_PREFIX) :]:
            return path[len(OFFICIAL_PREFIX) :]
        return path

    @property
    def last_component(self) -> str:
        """The last path component: ``api`` for ``localhost:5000/acme/api:1.0``."""
        return self.path.rsplit("/", 1)[-1]

    def __str__(self) -> str:
        out = self.repository
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def split_domain(name: str) -> tuple[str, str]:
    """``(domain, path)`` of a repository name as Docker splits it (``splitDockerDomain``)."""
    first, slash, rest = name.partition("/")
    if not slash or (
        not any(c in first for c in ".:") and first != "localhost" and first.lower() == first
    ):
        domain, path = DEFAULT_DOMAIN, name
    else:
        domain, path = first, rest
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    return domain, path


def parse(text: str) -> Reference:
    """Parse and normalise ``text`` as Docker does (``ParseNormalizedNamed``).

    Raises ReferenceError for anything Docker would refuse: upper-case repository paths,
    bad tags or digests, a 64-hex image ID, empty text, a name over 255 characters.
    """
    if not text:
        raise ReferenceError("empty image reference")
    if _IDENTIFIER_RE.match(text):
        raise ReferenceError(f"{text!r} is an image ID, not a reference")
    rest, at, digest = text.partition("@")
    if at and not _DIGEST_RE.match(digest):
        raise ReferenceError(f"{text!r}: invalid digest {digest!r}")
    name, tag = rest, None
    colon, slash = rest.rfind(":"), rest.rfind("/")
    if colon > slash:
        name, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG_RE.match(tag):
            raise ReferenceError(f"{text!r}: invalid tag {tag!r}")
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise ReferenceError(f"{text!r}: repository name longer than 255 characters")
    domain, path = split_domain(name)
    if not _DOMAIN_RE.match(domain):
        raise ReferenceError(f"{text!r}: invalid registry {domain!r}")
    if path.lower() != path:
        raise ReferenceError(f"{text!r}: repository name must be lowercase")
    if not _PATH_RE.match(path):
        raise ReferenceError(f"{text!r}: invalid repository name {path!r}")
    return Reference(domain, path, tag, digest or None)


def try_parse(text: str) -> Reference | None:
    """:func:`parse`, or None for text that is not a valid reference."""
    try:
        return parse(text)
    except ReferenceError:
        return None


def valid_component(name: str) -> bool:
    """Whether ``name`` is one valid repository path component (an image name here)."""
    return bool(_COMPONENT_RE.match(name))


def repository_of(registry: str, image_prefix: str, name: str) -> str:
    """The repository a project pushes image ``name`` under: ``<registry>/<image_prefix><name>``,
    or ``<image_prefix><name>`` without a registry."""
    own = f"{image_prefix}{name}"
    return f"{registry}/{own}" if registry else own


def valid_tag(tag: str) -> bool:
    """Whether ``tag`` is a valid image tag (``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``)."""
    return bool(_TAG_RE.match(tag))


def repository_prefix(prefix: str) -> str:
    """The normalised repository prefix a configured ``registry`` or local prefix stands for:
    ``localhost:5000/acme`` -> ``localhost:5000/acme``, ``local-only`` -> ``docker.io/local-only``,
    ``quay.io`` -> ``quay.io``. Raises ReferenceError when ``<prefix>/x`` is not a valid
    reference."""
    probe = parse(f"{prefix.rstrip('/')}/x")
    return probe.repository[: -len("/x")]


class ProjectImages:
    """Decides which image references name one of the project's images.

    A reference names project image ``<name>`` when its normalised repository is
    ``<prefix>/<name>`` for the ``registry`` or one of ``local_prefixes``, or, with
    ``bare_names``, when it is the bare ``<name>`` (``docker.io/library/<name>``). Tags and
    digests do not matter. Built once per graph: each lookup is one parse and one dict lookup.
    Raises ReferenceError for a prefix that cannot start a reference.
    """

    def __init__(
        self,
        names: Iterable[str],
        registry: str = "",
        local_prefixes: Iterable[str] = (),
        bare_names: bool = True,
        image_prefix: str = "",
    ) -> None:
        names = list(names)
        self._local = tuple(repository_prefix(p) + "/" for p in local_prefixes if p)
        self._by_repository: dict[str, str] = {}
        if registry:
            repository_prefix(registry)  # raises for a prefix that cannot start a reference
        for name in names:  # the name the project pushes it under first
            if registry or image_prefix:
                ref = try_parse(repository_of(registry, image_prefix, name))
                if ref is not None:
                    self._by_repository.setdefault(ref.repository, name)
        prefixes = [repository_prefix(p) for p in local_prefixes if p]
        if bare_names:
            prefixes.append(f"{DEFAULT_DOMAIN}/{OFFICIAL_PREFIX.rstrip('/')}")
        for prefix in prefixes:
            for name in names:
                self._by_repository.setdefault(f"{prefix}/{name}", name)

    def match(self, reference: str) -> str | None:
        """The project image ``reference`` names, or None (external, or not a reference)."""
        ref = try_parse(reference)
        return None if ref is None else self._by_repository.get(ref.repository)

    def dangling(self, reference: str) -> bool:
        """Whether ``reference`` is under a local prefix (which only project images use) yet
        names no project image: the engine would look for it in a registry and fail."""
        ref = try_parse(reference)
        return (
            ref is not None
            and ref.repository not in self._by_repository
            and ref.repository.startswith(self._local)
        )


__all__ = [
    "ProjectImages",
    "Reference",
    "ReferenceError",
    "parse",
    "repository_prefix",
    "split_domain",
    "try_parse",
    "valid_component",
]


def registry_host(prefix: str) -> str:
    """The registry host of a repository prefix or OCI target as Docker splits it:
    ``localhost:5000/acme`` -> ``localhost:5000``, ``oci://ghcr.io/acme/charts`` ->
    ``ghcr.io``, a Docker Hub namespace (``acme``) -> ``docker.io``."""
    name = prefix.removeprefix("oci://").strip("/")
    return split_domain(name + "/x" if "/" not in name else name)[0]


def is_loopback(host: str) -> bool:
    """Whether registry ``host`` (with or without a port) is on this machine: ``localhost``,
    ``127.*`` or ``[::1]``. Docker and helm speak plain HTTP to these."""
    import ipaddress

    if host.startswith("["):
        name = host[1:].partition("]")[0]
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def name_and_tag(text: str) -> tuple[str, str | None]:
    """A reference as written split into its name and tag (digest dropped):
    ``localhost:5000/acme/api:1.0`` -> (``localhost:5000/acme/api``, ``1.0``);
    ``localhost:5000/acme/api`` -> (``localhost:5000/acme/api``, None)."""
    name = text.partition("@")[0]
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        return name[:colon], name[colon + 1 :]
    return name, None

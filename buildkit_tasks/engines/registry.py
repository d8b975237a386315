"""A registry's own HTTP API (distribution spec), asked directly where it answers anyone, or
anyone with the Basic credentials Docker's config file holds for it: is there a manifest at
this reference, and what does it hold (digest, platforms, labels)?

Everything else goes through ``docker buildx imagetools inspect`` (credential helpers, token
auth, mirrors, TLS settings: all Docker's), which costs a process of about 0.05-0.3 s. Lookups
ask for every image that is not found locally (or, pushing, for every image), so the common
answers come from here: :func:`surely_absent` (one ``HEAD``) and :func:`read` (a few ``GET``s
to a registry that lets anyone read, such as the loopback registries of CI, or that takes a
password as HTTP Basic auth, as a ``registry`` with ``htpasswd`` does); a registry that wants a
token, or answers anything unexpected, is left to imagetools.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

from ..references import is_loopback, try_parse

if TYPE_CHECKING:
    from .docker import RemoteImage

TIMEOUT = 5.0  # seconds
ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def basic_auth(config_dir: str, host: str) -> str | None:
    """The ``Authorization`` value (``Basic <base64 user:password>``) that Docker's config file
    ``<config_dir>/config.json`` holds for registry ``host`` in its own file store (the
    ``auths`` entry ``docker login`` writes without a credential helper), None when it holds
    none there (a helper keeps it, or no login). Read once per file version (size and mtime).
    Only for hosts spoken to over HTTPS or on loopback (:func:`manifest_url`); the value is
    sent on no redirect (:func:`_get`)."""
    path = os.path.join(config_dir, "config.json")
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _file_auths(path, st.st_size, st.st_mtime_ns).get(host)


@functools.lru_cache(maxsize=8)
def _file_auths(path: str, size: int, mtime_ns: int) -> dict[str, str]:
    """``{host: "Basic ..."}`` from the ``auths`` of Docker's config file ``path`` (keys such
    as ``https://host/v1/`` taken as ``host``); empty when it cannot be read."""
    try:
        with open(path, encoding="utf-8") as fh:
            auths = json.load(fh).get("auths") or {}
    except (OSError, ValueError, AttributeError):
        return {}
    out = {}
    for key, entry in auths.items() if isinstance(auths, dict) else ():
        token = entry.get("auth") if isinstance(entry, dict) else None
        if isinstance(token, str) and token:
            out[config_key_host(key)] = f"Basic {token}"
    return out


def config_key_host(key: str) -> str:
    """The registry host a Docker ``config.json`` credentials key names (``auths``,
    ``credHelpers``; keys may be URLs: ``https://index.docker.io/v1/`` is Docker Hub,
    ``docker.io``)."""
    host = key.split("://", 1)[-1].split("/", 1)[0]
    return "docker.io" if host in ("index.docker.io", "registry-1.docker.io") else host


def manifest_url(reference: str) -> str | None:
    """``<scheme>://<registry>/v2/<path>/manifests/<tag or digest>`` for ``reference``: plain
    HTTP for a loopback registry (as Docker), HTTPS otherwise; None for an invalid reference
    or a Docker Hub one (Hub wants a token even to say no)."""
    ref = try_parse(reference)
    if ref is None or ref.domain == "docker.io":
        return None
    scheme = "http" if is_loopback(ref.domain) else "https"
    return f"{scheme}://{ref.domain}/v2/{ref.path}/manifests/{ref.digest or ref.tag or 'latest'}"


def surely_absent(reference: str, timeout: float = TIMEOUT, auth: str | None = None) -> bool:
    """True only when the registry says it holds no manifest at ``reference`` (404 to a
    ``HEAD``, anonymous or with ``auth``: see :func:`basic_auth`) or refuses the connection
    outright; False for anything else (found, wants a login, other errors, timeouts): then
    ask imagetools."""
    url = manifest_url(reference)
    if url is None:
        return False
    req = _request(url, ACCEPT, auth, method="HEAD")
    try:
        with urllib.request.urlopen(req, timeout=timeout):
            return False
    except urllib.error.HTTPError as exc:
        return exc.code == 404
    except ConnectionRefusedError:
        return True
    except urllib.error.URLError as exc:
        return isinstance(exc.reason, ConnectionRefusedError)
    except OSError:
        return False


class Unanswered(Exception):
    """The registry's answer needs Docker's help (a login, TLS settings, a mirror) or was not
    what the distribution spec says: ask imagetools instead."""


INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
MAX_BYTES = 4 << 20  # a manifest or image config larger than this is not read here


def _request(
    url: str, accept: str, auth: str | None, method: str = "GET"
) -> urllib.request.Request:
    """A request for ``url``; ``auth`` (an ``Authorization`` value) is set unredirected: a
    registry sending a blob to its storage elsewhere (a redirect) must not pass it on."""
    req = urllib.request.Request(url, method=method, headers={"Accept": accept})
    if auth:
        req.add_unredirected_header("Authorization", auth)
    return req


def _get(
    url: str, accept: str, digest: str | None, timeout: float, auth: str | None = None
) -> bytes | None:
    """The body at ``url`` (None for 404 or a refused connection), checked against ``digest``
    when given; raises Unanswered for any other answer."""
    req = _request(url, accept, auth)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            body: bytes = res.read(MAX_BYTES + 1)
            header = res.headers.get("Docker-Content-Digest")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise Unanswered(f"HTTP {exc.code}") from None
    except ConnectionRefusedError:
        return None  # no registry listening: nothing there (as surely_absent says)
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ConnectionRefusedError):
            return None
        raise Unanswered(str(exc.reason)) from None
    except (OSError, ValueError) as exc:
        raise Unanswered(str(exc)) from None
    actual = "sha256:" + hashlib.sha256(body).hexdigest()
    if len(body) > MAX_BYTES or (digest and actual != digest) or (header and header != actual):
        raise Unanswered(f"unexpected content at {url}")
    return body


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        raise Unanswered("not JSON") from None
    if not isinstance(data, dict):
        raise Unanswered("not a JSON object")
    return data


def manifest(
    reference: str, timeout: float = TIMEOUT, auth: str | None = None
) -> tuple[str, dict[str, Any]] | None:
    """``(digest, manifest)``: the manifest list (or manifest) the registry holds at
    ``reference``, read anonymously or with ``auth`` (:func:`basic_auth`), with its digest;
    None when it holds nothing there. Raises Unanswered as :func:`read` does."""
    url = manifest_url(reference)
    if url is None:
        raise Unanswered("no direct reads here")
    want = try_parse(reference)
    body = _get(url, ACCEPT, want.digest if want is not None else None, timeout, auth)
    if body is None:
        return None
    return "sha256:" + hashlib.sha256(body).hexdigest(), _json(body)


def read(reference: str, timeout: float = TIMEOUT, auth: str | None = None) -> RemoteImage | None:
    """What the registry holds at ``reference``, read anonymously or with ``auth`` (an
    ``Authorization`` value, :func:`basic_auth`): the digest of the manifest
    list (or single manifest) there, each platform's manifest digest and image-config labels
    (attestation entries, platform ``unknown/unknown``, left out), as
    :func:`.docker.parse_imagetools` reads them; None when it holds nothing there (404, or
    the connection refused). Every body is checked against its digest. Raises Unanswered for
    Docker Hub, a registry that wants a token or a login not given, or anything unexpected."""
    from .docker import RemoteImage, platform_name

    found = manifest(reference, timeout, auth)
    if found is None:
        return None
    digest, top = found
    base = str(manifest_url(reference)).rsplit("/manifests/", 1)[0]

    def config_of(image_manifest: dict[str, Any]) -> dict[str, Any]:
        config_digest = (image_manifest.get("config") or {}).get("digest")
        if not isinstance(config_digest, str):
            raise Unanswered("a manifest without a config")
        body = _get(f"{base}/blobs/{config_digest}", "*/*", config_digest, timeout, auth)
        if body is None:
            raise Unanswered(f"config {config_digest} missing")
        return _json(body)

    platform_digests: dict[str, str] = {}
    platform_labels: dict[str, dict[str, str]] = {}
    if top.get("mediaType") in INDEX_TYPES or "manifests" in top:
        for entry in top.get("manifests") or []:
            plat = entry.get("platform") or {}
            if plat.get("os") in (None, "unknown"):
                continue
            child_digest = entry.get("digest")
            if not isinstance(child_digest, str):
                raise Unanswered("an index entry without a digest")
            body = _get(f"{base}/manifests/{child_digest}", ACCEPT, child_digest, timeout, auth)
            if body is None:
                raise Unanswered(f"manifest {child_digest} missing")
            config = config_of(_json(body))
            name = platform_name(plat)
            platform_digests[name] = child_digest
            platform_labels[name] = dict((config.get("config") or {}).get("Labels") or {})
    else:
        config = config_of(top)
        name = platform_name(config)
        if name:
            platform_digests[name] = digest
            platform_labels[name] = dict((config.get("config") or {}).get("Labels") or {})
    labels: dict[str, str] = {}
    for each in platform_labels.values():
        labels.update(each)
    return RemoteImage(digest, labels, platform_digests, platform_labels)

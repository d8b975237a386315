"""A registry's own HTTP API (distribution spec), for the one question worth asking it
directly: is there a manifest at this reference at all?

Reading what a registry holds (labels, platforms, digests) goes through
``docker buildx imagetools inspect`` (credentials, token auth, mirrors: all Docker's). That
costs a process of about 0.1 s CPU; a cold build asks for every image, and almost all answers
are "nothing there". :func:`surely_absent` answers that case with one ``HEAD`` request and
leaves every other case to imagetools.
"""

from __future__ import annotations

import urllib.error
import urllib.request

from ..references import is_loopback, try_parse

TIMEOUT = 5.0  # seconds
ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def manifest_url(reference: str) -> str | None:
    """``<scheme>://<registry>/v2/<path>/manifests/<tag or digest>`` for ``reference``: plain
    HTTP for a loopback registry (as Docker), HTTPS otherwise; None for an invalid reference
    or a Docker Hub one (Hub wants a token even to say no)."""
    ref = try_parse(reference)
    if ref is None or ref.domain == "docker.io":
        return None
    scheme = "http" if is_loopback(ref.domain) else "https"
    return f"{scheme}://{ref.domain}/v2/{ref.path}/manifests/{ref.digest or ref.tag or 'latest'}"


def surely_absent(reference: str, timeout: float = TIMEOUT) -> bool:
    """True only when the registry says it holds no manifest at ``reference`` (404 to an
    anonymous ``HEAD``) or refuses the connection outright; False for anything else (found,
    wants a login, other errors, timeouts): then ask imagetools."""
    url = manifest_url(reference)
    if url is None:
        return False
    req = urllib.request.Request(url, method="HEAD", headers={"Accept": ACCEPT})
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

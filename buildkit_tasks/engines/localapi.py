"""Small requests to the local engine's API over its unix socket, with the standard
library's :mod:`http.client`.

An unchanged run asks the engine two things (its platform, one image list to confirm what
containerd says), a small rebuild a few more (a run-unique alias tagged and removed per base);
importing the ``docker`` SDK for them (``requests``, ``urllib3``) takes ~0.2 s of process time,
a fifth of an unchanged run. Only the local engine on its unix socket (see
:func:`.containerd.local_engine`), only requests whose answer is small JSON; everything else,
and any other engine, goes through the SDK.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from collections.abc import Mapping
from typing import Any

SOCKET = "/var/run/docker.sock"
# The lowest API version the supported engines (26+) speak.
API_VERSION = "1.44"
TIMEOUT = 60.0  # seconds: listing a large containerd store takes a while


class APIError(Exception):
    """The engine answered with a non-2xx status (``status``), or not with JSON."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"engine API error {status}: {message}")
        self.status = status


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def request(
    method: str, path: str, query: Mapping[str, str] | None = None, sock: str | None = None
) -> Any:
    """``<method> /v<API_VERSION><path>?<query>`` (no body) to the engine listening on unix
    socket ``sock`` (default :data:`SOCKET`), one connection per call (threads may call at
    once): the decoded JSON answer, None for an empty one. Raises OSError when the socket
    cannot be reached or the exchange breaks (also on :data:`TIMEOUT`), :class:`APIError` on
    a non-2xx status or an answer that is not JSON."""
    url = f"/v{API_VERSION}{path}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    conn = _UnixConnection(sock or SOCKET, TIMEOUT)
    try:
        conn.request(method, url, headers={"Accept": "application/json"})
        res = conn.getresponse()
        body = res.read()
    except http.client.HTTPException as exc:
        raise OSError(f"engine API exchange failed: {exc!r}") from None
    finally:
        conn.close()
    if not 200 <= res.status < 300:
        raise APIError(res.status, body.decode("utf-8", "replace").strip()[:200])
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except ValueError:
        raise APIError(res.status, "the answer is not JSON") from None

"""The stdlib reader of the local engine's API, against an HTTP server on a unix socket that
answers as the engine would (the real engine: tests/integration/test_local_store.py)."""

from __future__ import annotations

import json
import socketserver
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from buildkit_tasks.engines import containerd, docker, localapi


class Handler(BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.seen.append(self.path)
        url = urllib.parse.urlparse(self.path)
        if url.path == "/v1.44/version":
            self.answer(200, json.dumps({"Os": "linux", "Arch": "arm64"}).encode())
        elif url.path == "/v1.44/images/json":
            filters = json.loads(urllib.parse.parse_qs(url.query)["filters"][0])
            self.answer(
                200, json.dumps([{"Id": "sha256:1", "RepoTags": filters["reference"]}]).encode()
            )
        elif url.path == "/v1.44/garbled":
            self.answer(200, b"<html>")
        else:
            self.answer(404, b'{"message":"page not found"}')

    def do_POST(self) -> None:  # noqa: N802
        self.seen.append(f"POST {self.path}")
        self.answer(201, b"")

    def do_DELETE(self) -> None:  # noqa: N802
        self.seen.append(f"DELETE {self.path}")
        if "gone" in self.path:
            self.answer(404, b'{"message":"No such image"}')
        else:
            self.answer(200, b'[{"Untagged":"x"}]')

    def answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):  # type: ignore[no-untyped-def]
        request, _ = super().get_request()
        return request, ("local", 0)  # http.server wants a (host, port) client address


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "docker.sock")
    Handler.seen = []
    server = UnixHTTPServer(path, Handler)
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    yield path
    server.shutdown()
    server.server_close()


def test_reads_json_with_the_api_version_and_query(engine: str) -> None:
    assert localapi.request("GET", "/version", sock=engine) == {"Os": "linux", "Arch": "arm64"}
    refs = ["localhost:5000/p/a:1", "a b:latest"]
    listed = localapi.request(
        "GET", "/images/json", {"filters": json.dumps({"reference": refs})}, engine
    )
    assert listed == [{"Id": "sha256:1", "RepoTags": refs}]
    assert Handler.seen[0] == "/v1.44/version"


def test_an_error_status_or_garbled_answer_is_an_api_error(engine: str) -> None:
    with pytest.raises(localapi.APIError, match="404: .*page not found"):
        localapi.request("GET", "/nope", sock=engine)
    with pytest.raises(localapi.APIError, match="not JSON"):
        localapi.request("GET", "/garbled", sock=engine)


def test_no_engine_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        localapi.request("GET", "/version", sock=str(tmp_path / "missing.sock"))


@pytest.fixture
def local_engine(engine: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The fake engine as the local one: at the default socket, no DOCKER_HOST or context."""
    monkeypatch.setattr(localapi, "SOCKET", engine)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    return engine


def test_the_engine_module_reads_only_from_the_local_engine(
    local_engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert docker._local("GET", "/version") == {"Os": "linux", "Arch": "arm64"}
    assert docker.engine_platform() == "linux/arm64"
    assert docker._local("GET", "/nope") is docker._NO_ANSWER  # the SDK is asked instead
    with docker.engine_at({"DOCKER_HOST": "tcp://127.0.0.1:1"}):
        assert docker._local("GET", "/version") is docker._NO_ANSWER
    monkeypatch.setenv("DOCKER_CONTEXT", "remote")
    assert docker._local("GET", "/version") is docker._NO_ANSWER
    assert len(Handler.seen) == 3


def test_tags_are_made_and_removed_over_the_socket(
    local_engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(docker, "client", lambda: pytest.fail("the SDK was asked"))
    docker.tag("sha256:" + "a" * 64, "localhost:1/buildkit-tasks/base-3.10:run1")
    docker.untag("localhost:1/buildkit-tasks/base-3.10:run1")
    docker.untag("localhost:1/buildkit-tasks/gone:run1")  # not there: done, no SDK asked
    assert Handler.seen[:2] == [
        f"POST /v1.44/images/sha256:{'a' * 64}/tag?repo=localhost%3A1%2Fbuildkit-tasks%2Fbase-3.10"
        "&tag=run1",
        "DELETE /v1.44/images/localhost:1/buildkit-tasks/base-3.10:run1?noprune=1",
    ]
    assert localapi.request("DELETE", "/images/x:1", sock=local_engine) == [{"Untagged": "x"}]
    with pytest.raises(localapi.APIError, match="404"):
        localapi.request("DELETE", "/images/gone:1", sock=local_engine)


def test_the_engine_platform_is_asked_once_per_engine_run(
    local_engine: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BUILDKIT_CACHE_HOME", str(tmp_path / "cache"))
    run = ["/fake/containerd.sock\n4242\n1000\nboot"]
    monkeypatch.setattr(docker, "_containerd_socket", lambda confirmed=False: "/fake.sock")
    monkeypatch.setattr(containerd, "engine_instance", lambda address: run[0])
    assert [docker.engine_platform() for _ in range(3)] == ["linux/arm64"] * 3
    assert len(Handler.seen) == 1  # kept for this engine run
    run[0] = "/fake/containerd.sock\n4343\n2000\nboot"  # the engine was restarted
    assert docker.engine_platform() == "linux/arm64"
    assert len(Handler.seen) == 2
    monkeypatch.setattr(containerd, "engine_instance", lambda address: None)
    docker.engine_platform()  # no engine run to name: asked every time
    docker.engine_platform()
    assert len(Handler.seen) == 4

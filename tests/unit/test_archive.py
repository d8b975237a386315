import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import zstandard

from buildkit_tasks import archive
from buildkit_tasks.errors import BuildkitError, CommandError, ConfigError
from buildkit_tasks.runner import Runner


def docker_save_like() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (
            ("blobs/sha256/aa", b"layer" * 1000),
            ("manifest.json", json.dumps([{"RepoTags": ["r/a:1", "r/b:1"]}]).encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize(
    "name, pack",
    [
        ("images.tar", lambda b: b),
        ("images.tar.zst", lambda b: zstandard.ZstdCompressor().compress(b)),
        ("images.tar.gz", gzip.compress),
    ],
)
def test_verify_archive_reads_every_form(tmp_path: Path, name: str, pack) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / name
    path.write_bytes(pack(docker_save_like()))
    assert archive.verify_archive(path) == ["r/a:1", "r/b:1"]
    path.write_bytes(pack(docker_save_like())[: len(pack(docker_save_like())) // 2])
    with pytest.raises(BuildkitError, match="not a readable image archive"):
        archive.verify_archive(path)


def test_hashing_file_hashes_what_it_writes(tmp_path: Path) -> None:
    with (tmp_path / "f").open("wb") as fh:
        h = archive._HashingFile(fh)
        h.write(b"abc")
        h.write(memoryview(b"def"))
    assert h.size == 6 and h.digest.hexdigest() == hashlib.sha256(b"abcdef").hexdigest()
    assert (tmp_path / "f").read_bytes() == b"abcdef"


def test_compression_choices() -> None:
    assert archive.resolve_compression("gzip") == "gzip"
    assert archive.resolve_compression("none") == "none"
    with pytest.raises(ConfigError, match=r"--compression \(config archive\.compression\)"):
        archive.resolve_compression("bz2")


def test_runner_pipe_streams_and_reports_failures() -> None:
    chunks: list[bytes] = []
    n = Runner().pipe(
        [sys.executable, "-c", "import sys; sys.stdout.write('x' * 300000)"],
        chunks.append,
        chunk=65536,
    )
    assert n == 300000 and b"".join(chunks) == b"x" * 300000
    with pytest.raises(CommandError, match="failed \\(exit 3\\): no such image"):
        Runner().pipe(
            [sys.executable, "-c", "import sys; sys.stderr.write('no such image\\n'); sys.exit(3)"],
            chunks.append,
        )


def test_runner_pipe_stops_the_command_when_the_sink_fails(tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    code = (
        f"import os, sys, time; open({str(marker)!r}, 'w').write(str(os.getpid()));"
        " [sys.stdout.buffer.write(b'x' * 65536) or sys.stdout.flush() for _ in iter(int, 1)]"
    )

    def sink(_: bytes) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        Runner().pipe([sys.executable, "-c", code], sink)
    pid = int(marker.read_text())
    alive = subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode == 0
    assert not alive

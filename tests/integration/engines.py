"""A second, separate Docker engine for tests that need two: its own dockerd with its own data
root, exec root and socket, started inside a network namespace of its own (so it makes its own
``docker0`` there and leaves the first engine's bridge alone; see ../shared/ENVIRONMENT.md).
Its socket is a plain file, so ``DOCKER_HOST=unix://<dir>/docker.sock`` reaches it from
anywhere on this machine (an sshd with ``SetEnv DOCKER_HOST=...`` hands it to a build host's
users).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Engine:
    root: Path
    netns: str
    proc: subprocess.Popen[bytes]

    @property
    def host(self) -> str:
        """Its ``DOCKER_HOST``."""
        return f"unix://{self.root}/docker.sock"

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(
            ["docker", *args],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "DOCKER_HOST": self.host},
        )
        if check and res.returncode != 0:
            raise AssertionError(f"(second engine) docker {' '.join(args)}: {res.stderr}")
        return res

    @property
    def log(self) -> str:
        return (self.root / "dockerd.log").read_text(errors="replace")


def start() -> Engine:
    """Start the engine; raises RuntimeError with its log when it does not answer in 60 s."""
    # Not under pytest's 0700 temp dirs: the build hosts' user must reach the socket.
    root = Path(tempfile.mkdtemp(prefix="bk-engine2-"))
    root.chmod(0o755)
    netns = f"bk-engine2-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
    (root / "daemon.json").write_text('{"features": {"containerd-snapshotter": true}}\n')
    argv = [
        "nsenter",
        f"--net=/var/run/netns/{netns}",
        "dockerd",
        "--config-file", f"{root}/daemon.json",
        "--data-root", f"{root}/data",
        "--exec-root", f"{root}/exec",
        "--pidfile", f"{root}/docker.pid",
        "-H", f"unix://{root}/docker.sock",
    ]  # fmt: skip
    with (root / "dockerd.log").open("wb") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    engine = Engine(root, netns, proc)
    for _ in range(600):
        if proc.poll() is None and engine.docker("info", check=False).returncode == 0:
            return engine
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    stop(engine)
    raise RuntimeError(f"the second dockerd did not start:\n{engine.log[-3000:]}")


def stop(engine: Engine) -> None:
    """Stop the engine, then remove its namespace and files."""
    if engine.proc.poll() is None:
        engine.proc.terminate()
        try:
            engine.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            engine.proc.kill()
            engine.proc.wait(timeout=10)
    subprocess.run(["ip", "netns", "del", engine.netns], check=False)
    shutil.rmtree(engine.root, ignore_errors=True)

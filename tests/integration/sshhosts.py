"""Real sshd build hosts on loopback addresses (127.0.0.2, 127.0.0.3, ...), port 2222.

Each host is its own ``sshd -D`` with its own host key, keys-only login as the ``bkbuild``
account that ``scripts/setup.sh`` creates (in the docker group, so it drives this engine).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

USER = "bkbuild"
PORT = 2222


@dataclass
class SshHost:
    name: str
    address: str
    host_key_pub: str  # "ssh-ed25519 AAAA..."
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def known_hosts_line(self) -> str:
        return f"[{self.address}]:{PORT} {self.host_key_pub}\n"


@dataclass
class SshHosts:
    root: Path
    client_key: Path
    auth_dir: Path | None = None
    hosts: dict[str, SshHost] = field(default_factory=dict)

    def toml(self, names: list[str], platforms: str = '["linux/amd64"]', extra: str = "") -> str:
        """``[[tool.buildkit.hosts]]`` tables for ``names`` (a name may be an unused address
        like 127.0.0.9 given as ``name=address``)."""
        out = []
        for entry in names:
            name, _, addr = entry.partition("=")
            addr = addr or self.hosts[name].address
            out.append(
                "[[tool.buildkit.hosts]]\n"
                f'name = "{name}"\naddress = "{USER}@{addr}:{PORT}"\n'
                f"platforms = {platforms}\n"
                f'workdir = "bk-{name}"\nidentity_file = "{self.client_key}"\n{extra}'
            )
        return "\n".join(out)


def available() -> bool:
    try:
        pwd.getpwnam(USER)
    except KeyError:
        return False
    return os.path.exists("/usr/sbin/sshd") and os.geteuid() == 0


def start(
    root: Path, names: dict[str, str], sftp: bool = True, extra: dict[str, str] | None = None
) -> SshHosts:
    """Start one sshd per ``name -> loopback address``; returns them with a client key.
    ``sftp`` false: the hosts' sshd offers no SFTP subsystem (as some hardened hosts).
    ``extra``: more sshd_config lines per host name (``SetEnv DOCKER_HOST=...`` hands a
    host's users another engine)."""
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    client_key = root / "client_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(client_key)], check=True
    )
    # sshd reads authorized_keys as the user: it may not sit in a 0700 (pytest) directory.
    auth_dir = Path(tempfile.mkdtemp(prefix="bk-sshauth-"))
    auth_dir.chmod(0o755)
    auth = auth_dir / "authorized_keys"
    auth.write_text(Path(f"{client_key}.pub").read_text())
    auth.chmod(0o644)
    out = SshHosts(root, client_key, auth_dir=auth_dir)
    for address in names.values():
        try:
            socket.create_connection((address, PORT), timeout=0.5).close()
        except OSError:
            continue
        raise RuntimeError(f"something already listens on {address}:{PORT}; stop it first")
    for name, address in names.items():
        d = root / name
        d.mkdir()
        key = d / "host_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        config = d / "sshd_config"
        config.write_text(
            f"Port {PORT}\nListenAddress {address}\nHostKey {key}\n"
            f"PidFile {d / 'sshd.pid'}\nAuthorizedKeysFile {auth}\nAllowUsers {USER}\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            "PermitRootLogin no\nStrictModes no\n"
            + ("Subsystem sftp internal-sftp\n" if sftp else "")
            + "LogLevel VERBOSE\n"
            + (extra or {}).get(name, "")
        )
        pub = " ".join(Path(f"{key}.pub").read_text().split()[:2])
        host = SshHost(name, address, pub, log=d / "sshd.log")
        host.proc = subprocess.Popen(
            ["/usr/sbin/sshd", "-D", "-f", str(config), "-E", str(host.log)]
        )
        out.hosts[name] = host
    for host in out.hosts.values():
        _wait_port(host)
    return out


def _wait_port(host: SshHost) -> None:
    for _ in range(100):
        try:
            with socket.create_connection((host.address, PORT), timeout=0.5):
                return
        except OSError:
            if host.proc is not None and host.proc.poll() is not None:
                break
            time.sleep(0.05)
    log = host.log.read_text() if host.log and host.log.exists() else ""
    raise RuntimeError(f"sshd on {host.address}:{PORT} did not start: {log}")


def stop(hosts: SshHosts) -> None:
    for host in hosts.hosts.values():
        if host.proc is not None:
            host.proc.terminate()
            host.proc.wait(timeout=10)
    if hosts.auth_dir is not None:
        shutil.rmtree(hosts.auth_dir, ignore_errors=True)

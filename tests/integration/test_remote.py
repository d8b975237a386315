"""remote.run, remote.hosts and image.build --host against real sshd hosts on loopback."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from buildkit_tasks import config, remote
from buildkit_tasks.errors import HostError
from tests.integration import sshhosts
from tests.integration.conftest import REPO, STATE, Project, docker, with_hosts

HOME = Path("/home") / sshhosts.USER


def _runs(host: str) -> list[str]:
    d = HOME / f"bk-{host}" / "runs"
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def _accepted(hosts: sshhosts.SshHosts, name: str) -> int:
    log = hosts.hosts[name].log
    assert log is not None
    return log.read_text().count("Accepted publickey")


def test_remote_image_build_brings_back_verified_results(
    project: Project, ssh_hosts: sshhosts.SshHosts
) -> None:
    with_hosts(project, ssh_hosts, ["a"])
    runs_before = _runs("a")
    local_version = json.loads(project.inv("version.show", "--format", "json").stdout)
    res = project.inv("remote.run", "--host", "a", "image.build")
    lines = res.stdout.splitlines()
    assert any(re.match(r"\[a\] \d\d:\d\d:\d\d image base: succeeded", line) for line in lines), (
        res.stdout
    )
    assert any(line.startswith("[a] $ inv image.build") for line in lines)
    back = project.path / "dist" / "hosts" / "a"
    remote_report = json.loads((back / "build-report.json").read_text())
    # the host had no git history: it built with this machine's version
    assert remote_report["version"]["version"] == local_version["version"]
    assert remote_report["version"]["commit"] == local_version["commit"]
    statuses = {i["name"]: i["status"] for i in remote_report["images"]}
    assert statuses == {"base": "succeeded", "api": "succeeded", "worker": "succeeded"}
    assert (back / "logs" / "base.log").stat().st_size > 0
    for image in remote_report["images"]:
        docker("image", "inspect", image["references"][0])  # built into the host's engine
    hosts_section = project.report()["hosts"]
    assert hosts_section[0]["host"] == "a" and hosts_section[0]["status"] == "succeeded"
    assert hosts_section[0]["files"] >= 5
    assert _runs("a") == runs_before  # workspace removed


def test_fan_out_build_all_to_two_hosts(project: Project, ssh_hosts: sshhosts.SshHosts) -> None:
    with_hosts(project, ssh_hosts, ["a"])
    # host b copies with tar over SFTP, a with rsync
    pyproject = project.path / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text() + "\n" + ssh_hosts.toml(["b"], extra='transfer = "sftp"\n')
    )
    project.commit("host b")
    runs_before = {n: _runs(n) for n in ("a", "b")}
    res = project.inv("remote.run", "--hosts", "a,b", "build.all", "--keep-workspace")
    assert "[a] copied" in res.stdout and "(rsync)" in res.stdout
    assert "(tar+sftp)" in res.stdout
    for name in ("a", "b"):
        back = project.path / "dist" / "hosts" / name
        check = subprocess.run(
            ["sha256sum", "-c", "SHA256SUMS"], cwd=back, capture_output=True, text=True
        )
        assert check.returncode == 0, check.stdout + check.stderr
        assert "images.tar: OK" in check.stdout
        assert list((back / "charts").glob("acme-*.tgz"))
        kept = [r for r in _runs(name) if r not in runs_before[name]]
        assert len(kept) == 1  # --keep-workspace
        shutil.rmtree(HOME / f"bk-{name}" / "runs" / kept[0])
    assert {h["host"]: h["status"] for h in project.report()["hosts"]} == {
        "a": "succeeded",
        "b": "succeeded",
    }


def test_unknown_host_key_is_rejected_then_accepted_once_trusted(
    project: Project, ssh_hosts: sshhosts.SshHosts
) -> None:
    known = with_hosts(project, ssh_hosts, ["a"], trusted=[])
    before = _accepted(ssh_hosts, "a")
    res = project.inv("remote.run", "--host", "a", "version.stamp", check=False)
    assert res.returncode == 1
    key = ssh_hosts.hosts["a"].log.parent / "host_ed25519.pub"  # type: ignore[union-attr]
    fp = subprocess.run(["ssh-keygen", "-lf", str(key)], capture_output=True, text=True).stdout
    assert "unknown host key" in res.stderr and fp.split()[1] in res.stderr
    assert f"ssh-keyscan -p 2222 127.0.0.2 >> {known}" in res.stderr
    assert "Traceback" not in res.stderr and "[a] copied" not in res.stdout
    assert _accepted(ssh_hosts, "a") == before  # never logged in
    assert not (project.path / "dist" / "hosts").exists()
    # trust it the way the message says
    scan = subprocess.run(
        ["ssh-keyscan", "-p", "2222", "127.0.0.2"], capture_output=True, text=True, check=True
    )
    known.write_text(scan.stdout)
    project.inv("remote.run", "--host", "a", "version.stamp")
    assert (project.path / "dist" / "hosts" / "a" / "version.json").is_file()


def test_accept_new_host_keys_records_the_key(
    project: Project, ssh_hosts: sshhosts.SshHosts
) -> None:
    known = with_hosts(project, ssh_hosts, ["b"], trusted=[], top="accept_new_host_keys = true\n")
    res = project.inv("remote.run", "--host", "b", "version.stamp")
    assert "trusted new host key" in res.stdout
    assert ssh_hosts.hosts["b"].known_hosts_line.strip() in known.read_text()


def test_changed_host_key_is_refused(project: Project, ssh_hosts: sshhosts.SshHosts) -> None:
    known = with_hosts(project, ssh_hosts, ["a"])
    wrong = ssh_hosts.hosts["b"].host_key_pub
    known.write_text(f"[127.0.0.2]:2222 {wrong}\n")
    res = project.inv("remote.run", "--host", "a", "version.stamp", check=False)
    assert res.returncode == 1
    assert "CHANGED" in res.stderr and "ssh-keygen -R" in res.stderr


def test_host_behind_a_gateway(project: Project, ssh_hosts: sshhosts.SshHosts) -> None:
    """b is reached through a (ProxyJump over a's SSH connection); both host keys are checked
    and the copy falls back to tar over SFTP (rsync would need its own jump)."""
    with_hosts(project, ssh_hosts, ["a"])
    pyproject = project.path / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text() + "\n" + ssh_hosts.toml(["b"], extra='gateway = "a"\n')
    )
    project.commit("b behind a")
    before_a, before_b = _accepted(ssh_hosts, "a"), _accepted(ssh_hosts, "b")
    res = project.inv("remote.run", "--host", "b", "version.stamp")
    assert "(tar+sftp)" in res.stdout
    assert (project.path / "dist" / "hosts" / "b" / "version.json").is_file()
    # only b was asked for: a logged in too, as the jump host
    assert _accepted(ssh_hosts, "a") > before_a and _accepted(ssh_hosts, "b") > before_b


def test_down_host_falls_back_to_the_next_host_of_the_platform(
    project: Project, ssh_hosts: sshhosts.SshHosts
) -> None:
    with_hosts(project, ssh_hosts, ["down=127.0.0.9", "b"], top="connect_timeout = 3\n")
    res = project.inv("remote.run", "--platform", "linux/amd64", "version.stamp")
    assert "host down: connection refused at 127.0.0.9:2222" in res.stderr
    assert (project.path / "dist" / "hosts" / "b" / "version.json").is_file()
    [entry] = project.report()["hosts"]
    assert entry["host"] == "b" and entry["tried"] == ["down", "b"]


def test_one_failing_host_keeps_the_others_results(
    project: Project, ssh_hosts: sshhosts.SshHosts
) -> None:
    with_hosts(project, ssh_hosts, ["down=127.0.0.9", "b"])
    res = project.inv("remote.run", "--hosts", "down,b", "version.stamp", check=False)
    assert res.returncode == 1
    assert "1 of 2 hosts did not succeed: down:" in res.stderr
    assert (project.path / "dist" / "hosts" / "b" / "version.json").is_file()
    statuses = {h["host"]: h["status"] for h in project.report()["hosts"]}
    assert statuses == {"down": "unreachable", "b": "succeeded"}


def test_failing_remote_task_is_reported_with_its_output(
    project: Project, ssh_hosts: sshhosts.SshHosts
) -> None:
    with_hosts(project, ssh_hosts, ["a"])
    res = project.inv("remote.run", "--host", "a", "image.build --name nosuch", check=False)
    assert res.returncode == 1
    assert "[a] buildkit:" in res.stderr and "nosuch" in res.stderr
    assert project.report()["hosts"][0]["status"] == "failed"


def test_interrupted_transfer_leaves_no_partial_artifacts(
    project: Project, ssh_hosts: sshhosts.SshHosts
) -> None:
    with_hosts(project, ssh_hosts, ["a"])
    s = config.load(project.path)
    session = remote.HostSession(s, s.host("a"), "interrupt-test")
    session.open()
    try:
        session.sh(
            'mkdir -p "$1/src/dist/sub" && head -c 4000000 /dev/urandom > "$1/src/dist/big.bin"'
            ' && echo x > "$1/src/dist/sub/small.txt"',
            session.run_dir,
            what="fixture",
        )
        sftp = session.sftp()
        real_get = sftp.get

        def cut(remote_path: str, local_path: str) -> None:
            def stop(done: int, total: int) -> None:
                if done > 1_000_000:
                    raise OSError("connection reset (simulated)")

            real_get(remote_path, local_path, callback=stop)

        sftp.get = cut
        dest = project.path / "dist" / "hosts" / "a"
        with pytest.raises(OSError):
            session.fetch("dist", dest)
        assert not dest.exists()
        assert list(dest.parent.iterdir()) == []  # no temporary leftovers either
        sftp.get = real_get
        assert session.fetch("dist", dest) == 2
        assert (dest / "sub" / "small.txt").read_text() == "x\n"
    finally:
        session.close(keep_workspace=False)
    assert "interrupt-test" not in _runs("a")


def test_remote_hosts_table(project: Project, ssh_hosts: sshhosts.SshHosts) -> None:
    with_hosts(project, ssh_hosts, ["a", "down=127.0.0.9"])
    res = project.inv("remote.hosts", check=False)
    assert res.returncode == 1
    table = res.stdout
    assert "a     ok    reachable" in table and "docker engine  26." in table
    assert "a     ok    buildx" in table
    down = [line for line in table.splitlines() if line.startswith("down")]
    assert down and "fail" in down[0] and "start sshd on 127.0.0.9:2222" in down[0]
    assert "checks failed: down reachable" in res.stderr


def test_image_build_on_a_host_engine_over_ssh(
    project: Project, ssh_hosts: sshhosts.SshHosts
) -> None:
    with_hosts(project, ssh_hosts, ["a"])
    before = _accepted(ssh_hosts, "a")
    res = project.inv("image.build", "--host", "a", "--name", "base")
    assert "engine: a over SSH" in res.stdout
    assert _accepted(ssh_hosts, "a") > before  # the engine was reached through sshd
    ref = project.report()["images"][0]["references"][0]
    docker("image", "inspect", ref)


def test_image_build_over_ssh_refuses_an_unknown_host_key(
    project: Project, ssh_hosts: sshhosts.SshHosts
) -> None:
    with_hosts(project, ssh_hosts, ["a"], trusted=[])
    res = project.inv("image.build", "--host", "a", check=False)
    assert res.returncode == 1 and "unknown host key" in res.stderr


def test_host_errors_name_the_host() -> None:
    err = HostError("x", "boom", unreachable=True)
    assert str(err) == "host x: boom" and err.unreachable


def test_driving_a_host_engine_leaves_the_process_environment_alone(
    project: Project, ssh_hosts: sshhosts.SshHosts
) -> None:
    from buildkit_tasks import config, hosts
    from buildkit_tasks.engines import docker as engine

    with_hosts(project, ssh_hosts, ["a"])
    s = config.load(project.path)
    before = dict(os.environ)
    accepted = _accepted(ssh_hosts, "a")
    with hosts.engine_over_ssh(s.host("a"), s) as env:
        assert env["DOCKER_HOST"].startswith("ssh://") and dict(os.environ) == before
        assert engine.client().version()["Version"]  # the SDK answers over our connection
    assert _accepted(ssh_hosts, "a") > accepted
    assert dict(os.environ) == before
    assert engine.client().version()["Version"]  # back on the local engine


@pytest.fixture
def odd_hosts(
    tmp_path_factory: pytest.TempPathFactory, docker_engine: None
) -> Iterator[tuple[sshhosts.SshHosts, sshhosts.SshHosts]]:
    """Two more hosts: "nosftp" (127.0.0.4, its sshd offers no SFTP subsystem) and "doomed"
    (127.0.0.5, killed by the test in the middle of a transfer)."""
    nosftp = sshhosts.start(tmp_path_factory.mktemp("nosftp"), {"nosftp": "127.0.0.4"}, sftp=False)
    try:
        doomed = sshhosts.start(tmp_path_factory.mktemp("doomed"), {"doomed": "127.0.0.5"})
    except BaseException:
        sshhosts.stop(nosftp)
        raise
    try:
        yield nosftp, doomed
    finally:
        for h in (nosftp, doomed):
            with contextlib.suppress(Exception):
                sshhosts.stop(h)


def test_a_host_without_sftp_fails_in_one_clear_line(
    project: Project, odd_hosts: tuple[sshhosts.SshHosts, sshhosts.SshHosts]
) -> None:
    """Was a paramiko traceback ("Channel closed.")."""
    nosftp, _ = odd_hosts
    with_hosts(project, nosftp, ["nosftp"], host_extra='transfer = "sftp"\n')
    res = project.inv("remote.run", "--host", "nosftp", "version.show", check=False)
    assert res.returncode == 1, res.stdout + res.stderr
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in res.stderr, res.stderr
    assert "host nosftp: no SFTP" in err[0] and "Subsystem sftp internal-sftp" in err[0]


def test_a_host_killed_during_the_transfer_fails_clearly(
    project: Project, odd_hosts: tuple[sshhosts.SshHosts, sshhosts.SshHosts]
) -> None:
    """The host's sshd and its sessions are killed (SIGKILL) while the workspace is being
    uploaded: the run ends with one line naming the host and the step, no traceback, and no
    partial results of that host here."""
    _, doomed = odd_hosts
    with_hosts(project, doomed, ["doomed"], host_extra='transfer = "sftp"\n')
    (project.path / "blob.bin").write_bytes(os.urandom(96 * 1024 * 1024))  # a slow upload
    project.commit("a large file")
    runs = HOME / "bk-doomed" / "runs"
    old = set(runs.glob("*/src.tar.gz"))  # left by an earlier run killed the same way

    def uploading() -> bool:
        return bool(set(runs.glob("*/src.tar.gz")) - old)

    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "remote.run", "--host", "doomed", "version.show"],
        cwd=project.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not uploading() and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.02)
        assert uploading(), "the upload never started"
        listener = doomed.hosts["doomed"].proc
        assert listener is not None
        subprocess.run(["pkill", "-KILL", "-P", str(listener.pid)], check=False)  # sessions
        listener.kill()
        listener.wait(timeout=10)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out + err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert (
        len(lines) == 1
        and "host doomed: connection lost during the copy of the workspace" in lines[0]
    ), err
    assert not (project.path / "dist" / "hosts" / "doomed").exists()


def test_remote_run_from_a_wheel_install_ships_itself(
    project: Project, ssh_hosts: sshhosts.SshHosts, tmp_path: Path
) -> None:
    """buildkit-tasks installed from its wheel (no source checkout beside it) runs a task on a
    host: it ships a wheel made from its installed files (the wheelhouse holds only the
    dependencies), and a task that writes no output directory succeeds."""
    wheelhouse = STATE / "wheelhouse"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-index", "--find-links"]
        + [str(wheelhouse), "-q", "-w", str(tmp_path / "w"), str(REPO)],
        check=True,
        capture_output=True,
    )
    (built,) = (tmp_path / "w").glob("buildkit_tasks-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--no-index", "--find-links"]
        + [str(wheelhouse), str(built)],
        check=True,
        capture_output=True,
    )
    assert not any(wheelhouse.glob("buildkit_tasks-*.whl"))  # nothing to pick up there
    with_hosts(project, ssh_hosts, ["a"])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")  # a fresh wheel cache
    res = subprocess.run(
        [str(venv / "bin" / "inv"), "remote.run", "--host", "a", "version.show"],
        cwd=project.path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    shown = json.loads((project.path / "dist" / "build-report.json").read_text())
    assert shown["hosts"][0]["status"] == "succeeded"
    assert re.search(r"\[a\] 2\.3\.", res.stdout), res.stdout
    assert "installing buildkit-tasks" in res.stdout + res.stderr
    # the wheel it shipped was made from the installed files, and is a wheel pip takes
    (shipped,) = (tmp_path / "cache" / "buildkit-tasks" / "wheels").glob("installed-*/*.whl")
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site)]
        + [str(shipped)],
        check=True,
        capture_output=True,
    )
    assert (site / "buildkit_tasks" / "templates" / "version.json.j2").is_file()

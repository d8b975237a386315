import shlex
from pathlib import Path

import pytest

from buildkit_tasks import config, health, hosts
from buildkit_tasks.config import HostSpec
from buildkit_tasks.errors import ConfigError


def load(tmp_path: Path, body: str) -> config.Settings:
    (tmp_path / "pyproject.toml").write_text("[tool.buildkit]\n" + body)
    return config.load(tmp_path)


HOSTS = """
known_hosts = "kh"
[[tool.buildkit.hosts]]
name = "big"
address = "ci@10.0.0.5:2200"
platforms = ["linux/amd64"]
workdir = "/srv/build/"
identity_file = "keys/id"
max_jobs = 8
[[tool.buildkit.hosts]]
name = "arm"
address = "box.example"
platforms = ["linux/arm64"]
gateway = "big"
"""


def test_hosts_are_parsed_with_defaults(tmp_path: Path) -> None:
    s = load(tmp_path, HOSTS)
    big, arm = s.hosts
    assert (big.user, big.hostname, big.port) == ("ci", "10.0.0.5", 2200)
    assert big.workdir == "/srv/build" and big.max_jobs == 8
    assert big.identity_file == tmp_path.resolve() / "keys" / "id"
    assert big.known_hosts_name == "[10.0.0.5]:2200"
    assert arm.port == 22 and arm.known_hosts_name == "box.example" and arm.user
    assert arm.gateway == "big" and arm.workdir == "buildkit-tasks" and arm.transfer == "auto"
    assert s.known_hosts == tmp_path.resolve() / "kh"
    assert not s.accept_new_host_keys
    assert s.host("arm") is arm


@pytest.mark.parametrize(
    "table, message",
    [
        ('name = "a"\naddress = "u@h:99999"', "address: expected a port"),
        ('name = "a"\naddress = "u@h;rm"', "address: expected user@host"),
        ('name = "A B"\naddress = "h"', "name: expected a host name"),
        ('name = "a"\naddress = "h"\nmax_jobs = 0', "max_jobs: expected a positive integer"),
        ('name = "a"\naddress = "h"\ngateway = "nope"', "gateway: expected the name of another"),
        ('name = "a"\naddress = "h"\ntransfer = "ftp"', "transfer: expected one of auto"),
        ('name = "a"\naddress = "h"\nplatforms = ["amd64"]', "platforms: expected platforms"),
    ],
)
def test_bad_host_tables_name_the_key(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, f"[[tool.buildkit.hosts]]\n{table}\n")


def test_duplicate_host_names_and_unknown_host(tmp_path: Path) -> None:
    dup = '[[tool.buildkit.hosts]]\nname = "a"\naddress = "h"\n' * 2
    with pytest.raises(ConfigError, match="a name no other host has"):
        load(tmp_path, dup)
    s = load(tmp_path, HOSTS)
    with pytest.raises(ConfigError, match=r"no host 'x' .*known: big, arm"):
        s.host("x")


def test_remote_commands_quote_every_part() -> None:
    line = hosts.command(
        ["inv", "image.build", "--name", "a; rm -rf ~"], cwd="/w/my dir", env={"K": "v $x"}
    )
    assert line == "cd '/w/my dir' && env 'K=v $x' inv image.build --name 'a; rm -rf ~'"
    assert shlex.split(line.split(" && ", 1)[1]) == [
        "env",
        "K=v $x",
        "inv",
        "image.build",
        "--name",
        "a; rm -rf ~",
    ]


def test_line_writer_emits_whole_prefixed_lines(capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[str] = []
    w = hosts.LineWriter("[a] ", sink=seen.append)
    w.write("one\ntw")
    w.write("o\r\nthr")
    assert seen == ["one", "two"]
    w.close()
    assert seen == ["one", "two", "thr"]
    assert capsys.readouterr().out == "[a] one\n[a] two\n[a] thr\n"


def test_ssh_options_carry_known_hosts_and_strictness(tmp_path: Path) -> None:
    s = load(tmp_path, HOSTS)
    opts = hosts.ssh_options(s.hosts[0], s)
    assert f"UserKnownHostsFile={tmp_path.resolve() / 'kh'}" in opts
    assert "StrictHostKeyChecking=yes" in opts and "BatchMode=yes" in opts
    assert opts[opts.index("-p") + 1] == "2200"
    s2 = load(tmp_path, "accept_new_host_keys = true\n" + HOSTS)
    assert "StrictHostKeyChecking=accept-new" in hosts.ssh_options(s2.hosts[0], s2)


def test_checks_judge_host_facts() -> None:
    spec = HostSpec("h", "x", "u", platforms=("linux/arm64",))
    facts = {
        "arch": "x86_64",
        "cpus": "1",
        "mem_kb": str(1024 * 1024),
        "disk_kb": str(1024 * 1024),
        "engine": "20.10.5",
        "buildx": "",
        "python": "3.11",
    }
    levels = {c.what: c.level for c in health.judge(spec.name, facts, "w", spec.platforms)}
    assert levels == {
        "architecture": "warn",
        "docker engine": "fail",
        "buildx": "fail",
        "free disk": "fail",
        "cpus": "warn",
        "memory": "warn",
        "python": "ok",
    }
    good = {
        **facts,
        "arch": "aarch64",
        "cpus": "8",
        "mem_kb": str(16 * 1024 * 1024),
        "disk_kb": str(50 * 1024 * 1024),
        "engine": "27.1.2",
        "buildx": "0.16.2",
    }
    assert {c.level for c in health.judge("h", good, "w", spec.platforms)} == {"ok"}
    old = {c.what: c for c in health.judge("h", {**good, "engine": "26.1.5+dfsg1"}, "w")}
    assert old["docker engine"].level == "warn" and "buildkit#5106" in old["docker engine"].fix
    fixes = [c.fix for c in health.judge("h", {**good, "engine": ""}, "w")]
    assert any("docker group" in f for f in fixes)


def test_platform_of_uname() -> None:
    assert health.platform_of("x86_64") == "linux/amd64"
    assert health.platform_of("aarch64") == "linux/arm64"

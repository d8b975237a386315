from pathlib import Path

import pytest

from buildkit_tasks import dockerfiles
from buildkit_tasks.dockerfiles import DockerfileError, expand
from buildkit_tasks.errors import ConfigError


def refs(text: str, args: dict[str, str] | None = None, target: str | None = None) -> list[str]:
    return [u.reference for u in dockerfiles.parse(text, args).image_uses(target)]


ENV = {"SET": "v", "EMPTY": ""}


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("$SET", "v"),
        ("${SET}", "v"),
        ("${UNSET}", ""),
        ("${SET:-d}", "v"),
        ("${EMPTY:-d}", "d"),
        ("${UNSET:-d}", "d"),
        ("${EMPTY-d}", ""),
        ("${UNSET-d}", "d"),
        ("${SET:+alt}", "alt"),  # set: the alternative
        ("${UNSET:+alt}", ""),  # unset: nothing (the old reader had these two backwards)
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET:-${SET}}", "v"),
        ("${UNSET:-a${SET}b}", "avb"),
        ('"quoted ${SET}"', "quoted v"),
        ("'single ${SET}'", "single ${SET}"),
        ("\\$SET", "$SET"),
        ("a$", "a$"),
        ("${SET/v/w}", "${SET/v/w}"),  # a modifier we do not model stays as written
    ],
)
def test_expand(word: str, expected: str) -> None:
    assert expand(word, ENV) == expected


def test_expand_trims_and_errors() -> None:
    env = {"V": "base-python-cpu-3.10"}
    assert expand("${V#base-}", env) == "python-cpu-3.10"
    assert expand("${V##*-}", env) == "3.10"
    assert expand("${V%-*}", env) == "base-python-cpu"
    assert expand("${V%%-*}", env) == "base"
    assert expand("`$V", env, escape="`") == "$V"
    with pytest.raises(DockerfileError, match="X: must be set"):
        expand("${X:?must be set}", env)
    with pytest.raises(DockerfileError, match="unterminated"):
        expand('"open', env)


def test_heredoc_bodies_are_not_instructions() -> None:
    text = """\
FROM local-only/base:latest
COPY <<EOF /etc/motd
FROM evil:1
COPY --from=evil2 / /
EOF
RUN <<SCRIPT sh
echo FROM evil3
SCRIPT
"""
    assert refs(text) == ["local-only/base:latest"]


def test_escape_directive_and_continuations() -> None:
    text = (
        "# escape=`\nARG BASE=local-only/win`\nbase\nFROM ${BASE}\nCOPY --from=tool`\n  s /x /y\n"
    )
    df = dockerfiles.parse(text)
    assert df.escape == "`"
    assert refs(text) == ["local-only/winbase", "tool"]


def test_arg_scoping_build_args_and_platform() -> None:
    text = """\
ARG REGISTRY=local-only
ARG BASE=${REGISTRY}/base-python-cpu:latest
ARG TOOLS
FROM --platform=$BUILDPLATFORM ${BASE} AS build
ARG REGISTRY
COPY --from=${REGISTRY}/assets:1 /a /b
FROM ${TOOLS:-scratch}
COPY --from=build /a /b
ARG UNDECLARED_GLOBAL
COPY --from=${BASE:-inside-stage-base-is-unset} /c /d
"""
    assert refs(text) == [
        "local-only/base-python-cpu:latest",
        "local-only/assets:1",
        "inside-stage-base-is-unset",
    ]
    assert refs(text, {"REGISTRY": "localhost:5000/acme", "TOOLS": "tools:2"}) == [
        "localhost:5000/acme/base-python-cpu:latest",
        "localhost:5000/acme/assets:1",
        "tools:2",
        "inside-stage-base-is-unset",
    ]
    df = dockerfiles.parse(text)
    assert df.stages[0].name == "build" and df.stages[0].platform == ""


def test_stages_indexes_mounts_and_targets() -> None:
    text = """\
FROM local-only/base AS Deps
FROM deps AS build
RUN --mount=type=cache,target=/c --mount=type=bind,from=local-only/toolbox,target=/t make
FROM local-only/unused AS docs
FROM scratch AS runtime
COPY --from=1 /out /out
COPY --from=BUILD /more /more
COPY --from=local-only/assets:2 /x /y
"""
    df = dockerfiles.parse(text)
    assert [s.name for s in df.stages] == ["deps", "build", "docs", "runtime"]
    # the unused docs stage is not built for the default (last) target
    assert refs(text) == ["local-only/base", "local-only/toolbox", "local-only/assets:2"]
    assert refs(text, target="docs") == ["local-only/unused"]
    assert refs(text, target="Build") == ["local-only/base", "local-only/toolbox"]
    with pytest.raises(DockerfileError, match="target stage 'nope' not found"):
        df.image_uses("nope")


def test_a_stage_named_like_its_base_image_uses_the_image() -> None:
    text = "FROM nginx:1.29 AS nginx\nFROM nginx\nCOPY --from=nginx / /\n"
    assert refs(text) == ["nginx:1.29"]


def test_labels_of_the_built_stage() -> None:
    text = """\
FROM local-only/base AS builder
LABEL IMAGE="builder-only"
FROM builder AS final
ARG NAME=api
LABEL IMAGE="localhost:5000/acme/${NAME}" "BUILD_IGNORE"='False'
LABEL legacy value with spaces
"""
    df = dockerfiles.parse(text)
    assert df.labels() == {
        "IMAGE": "localhost:5000/acme/api",
        "BUILD_IGNORE": "False",
        "legacy": "value with spaces",
    }
    assert df.labels("builder") == {"IMAGE": "builder-only"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no instructions"),
        ("# only a comment\n", "no instructions"),
        ("RUN true\n", "before the first FROM"),
        ("FROM a\nRUN <<EOF\nnever closed\n", "heredoc"),
        ('FROM "unterminated\n', "unterminated"),
    ],
)
def test_files_buildkit_refuses(text: str, message: str) -> None:
    with pytest.raises(DockerfileError, match=message):
        dockerfiles.parse(text)


def test_load_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_bytes(b"FROM base\nLABEL x=\xff\n")
    with pytest.raises(ConfigError, match=f"{bad}: not UTF-8"):
        dockerfiles.load(bad)
    with pytest.raises(ConfigError, match="is a directory"):
        dockerfiles.load(tmp_path)
    with pytest.raises(ConfigError, match="cannot read Dockerfile"):
        dockerfiles.load(tmp_path / "missing")
    bad.write_text("")
    with pytest.raises(ConfigError, match=f"{bad}: file with no instructions"):
        dockerfiles.load(bad)


def test_registry_ports_hidden_keeps_lines_and_columns() -> None:
    text = (
        "FROM localhost:5000/acme/runtime:latest AS rt\n"
        "RUN echo localhost:5000/keep\n"
        "FROM --platform=linux/amd64 \\\n  registry.example.com:443/x/y:1\n"
    )
    out = dockerfiles.registry_ports_hidden(text)
    assert out == (
        "FROM localhost-5000/acme/runtime:latest AS rt\n"
        "RUN echo localhost:5000/keep\n"
        "FROM --platform=linux/amd64 \\\n  registry.example.com-443/x/y:1\n"
    )
    assert [len(line) for line in out.splitlines()] == [len(x) for x in text.splitlines()]


def test_ctrl_c_inside_the_go_parser_is_an_interrupt_not_a_system_error() -> None:
    """The interrupt soak found it: SIGINT while BuildKit's parser runs made Python report a
    chain of SystemErrors (a traceback) instead of a KeyboardInterrupt. Run in a child process
    of its own: the signal is sent to that process, and a failure is a short message there,
    never a 200,000-link exception chain for pytest to format (which once held a full-suite
    run at 12 GB)."""
    import subprocess
    import sys

    code = """
import os, signal, threading, time
from buildkit_tasks import dockerfiles
text = "FROM scratch\\n" + "RUN echo x\\n" * 200_000
def fire():
    time.sleep(0.05)
    os.kill(os.getpid(), signal.SIGINT)
threading.Thread(target=fire).start()
try:
    for i in range(200):  # each parse ~0.1 s: the signal lands inside one of them
        dockerfiles._commands(text + "#" * i)
    print("no interrupt")
except KeyboardInterrupt:
    print("KeyboardInterrupt")
except BaseException as exc:
    print("wrong:", type(exc).__name__, flush=True)
    os._exit(3)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.stdout.strip() == "KeyboardInterrupt", (
        res.returncode,
        res.stdout,
        res.stderr[-500:],
    )

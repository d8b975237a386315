from pathlib import Path

import pytest

from buildkit_tasks import config, graph
from buildkit_tasks.errors import ConfigError


def test_reads_from_copy_and_mount_refs_with_args_and_stages() -> None:
    text = """\
# syntax=docker/dockerfile:1
ARG BASE=localhost:5000/acme/base:1.0
ARG TOOLS
FROM --platform=$BUILDPLATFORM ${BASE} AS build
RUN --mount=type=cache,target=/c \\
    --mount=type=bind,from=toolbox,target=/t make
FROM build AS test
COPY --from=build /a /b
COPY --from=0 /a /b
COPY --from=assets:2 /x /y
FROM scratch
COPY --from=${TOOLS:-helper} /z /z
"""
    refs = graph.referenced_images(text, {"TOOLS": ""})
    assert refs == ["localhost:5000/acme/base:1.0", "toolbox", "assets:2", "helper"]
    assert graph.referenced_images(text, {"BASE": "other"})[0] == "other"


def test_repository_of_strips_tag_and_digest_not_port() -> None:
    assert graph.repository_of("localhost:5000/acme/base:1.0") == "localhost:5000/acme/base"
    assert graph.repository_of("localhost:5000/acme/base") == "localhost:5000/acme/base"
    assert graph.repository_of("base@sha256:abc") == "base"


def test_match_local() -> None:
    names = ["base", "api"]
    prefixes = ["localhost:5000/acme", "local-only"]
    assert graph.match_local("base", names, prefixes) == "base"
    assert graph.match_local("base:7", names, prefixes) == "base"
    assert graph.match_local("localhost:5000/acme/base:latest", names, prefixes) == "base"
    assert graph.match_local("local-only/api", names, prefixes) == "api"
    assert graph.match_local("docker.io/library/base", names, prefixes) is None
    assert graph.match_local("localhost:5000/other/base", names, prefixes) is None


def write_project(tmp_path: Path, dockerfiles: dict[str, str]) -> config.Settings:
    table = "[tool.buildkit]\nregistry = 'localhost:5000/acme'\n"
    for name, text in dockerfiles.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "Dockerfile").write_text(text)
        table += f"[tool.buildkit.images.{name}]\ncontext = '{name}'\n"
    (tmp_path / "pyproject.toml").write_text(table)
    return config.load(tmp_path)


def test_graph_order_and_selection(tmp_path: Path) -> None:
    s = write_project(
        tmp_path,
        {
            "base": "FROM scratch\n",
            "api": "FROM base AS b\nFROM localhost:5000/acme/base:latest\nCOPY --from=b / /\n",
            "worker": "FROM base\n",
            "tool": "FROM alpine:3\nCOPY --from=worker / /\n",
        },
    )
    g = graph.build_graph(s)
    assert g.nodes["api"].depends_on == ("base",)
    assert dict(g.nodes["api"].local_refs) == {
        "base": "base",
        "localhost:5000/acme/base:latest": "base",
    }
    order = g.order()
    for name, node in g.nodes.items():
        assert all(order.index(d) < order.index(name) for d in node.depends_on)
    assert set(g.select(["tool"]).nodes) == {"tool", "worker", "base"}
    assert g.dependents("base") == {"api", "worker", "tool"}
    with pytest.raises(ConfigError, match="no image 'nope'"):
        g.select(["nope"])


def test_cycle_is_an_error_naming_files(tmp_path: Path) -> None:
    s = write_project(tmp_path, {"a": "FROM b\n", "b": "FROM c\n", "c": "FROM a\n"})
    with pytest.raises(ConfigError) as err:
        graph.build_graph(s)
    assert "cycle" in str(err.value)
    assert str(tmp_path / "a" / "Dockerfile") in str(err.value)


def test_self_reference_is_an_error(tmp_path: Path) -> None:
    s = write_project(tmp_path, {"a": "FROM a:old\n"})
    with pytest.raises(ConfigError, match="builds on itself"):
        graph.build_graph(s)


def test_platforms_for_narrows_and_says_what_it_left_out(tmp_path: Path) -> None:
    from buildkit_tasks.images import platforms_for

    spec = config.ImageSpec("x", tmp_path, tmp_path / "D", platforms=("linux/amd64",))
    assert platforms_for(spec, ["linux/amd64", "linux/arm64"], ()) == (
        ["linux/amd64"],
        ["linux/arm64"],
    )
    assert platforms_for(spec, ["linux/arm64"], ()) == ([], ["linux/arm64"])
    assert platforms_for(spec, [], ["linux/amd64"]) == (["linux/amd64"], [])
    assert platforms_for(spec, [], ()) == (["linux/amd64"], [])
    free = config.ImageSpec("y", tmp_path, tmp_path / "D")
    assert platforms_for(free, [], ()) == ([], [])

from pathlib import Path

import pytest

from buildkit_tasks import config, graph
from buildkit_tasks.errors import ConfigError


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


def test_a_reference_to_the_image_itself_is_its_upstream_base(tmp_path: Path) -> None:
    # the project's nginx rebuilds Docker Hub's nginx; proxy (bare names on) builds on ours
    s = write_project(
        tmp_path,
        {
            "nginx": "FROM nginx:1.29.3\nLABEL IMAGE=nginx\n",
            "proxy": "FROM nginx:1.29.3\n",
            "mirror": "FROM localhost:5000/acme/mirror:previous\n",
        },
    )
    g = graph.build_graph(s)
    assert g.nodes["nginx"].depends_on == ()
    assert g.nodes["mirror"].depends_on == ()
    assert g.nodes["proxy"].depends_on == ("nginx",)


def test_only_the_stages_the_target_needs_make_edges(tmp_path: Path) -> None:
    write_project(
        tmp_path,
        {
            "base": "FROM scratch\n",
            "docs": "FROM scratch\n",
            "api": "FROM docs AS manual\nFROM base AS runtime\nFROM runtime AS test\n",
        },
    )
    table = (tmp_path / "pyproject.toml").read_text() + "target = 'runtime'\n"
    (tmp_path / "pyproject.toml").write_text(table)
    g = graph.build_graph(config.load(tmp_path))
    assert g.nodes["api"].depends_on == ("base",)


def test_a_missing_target_names_the_file(tmp_path: Path) -> None:
    write_project(tmp_path, {"api": "FROM scratch AS runtime\n"})
    (tmp_path / "pyproject.toml").write_text(
        (tmp_path / "pyproject.toml").read_text() + "target = 'nope'\n"
    )
    with pytest.raises(ConfigError, match="api/Dockerfile: target stage 'nope' not found"):
        graph.build_graph(config.load(tmp_path))


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

import time
from pathlib import Path

import pytest

from buildkit_tasks import config, discovery, graph, plans
from buildkit_tasks.errors import ConfigError


def write(root: Path, files: dict[str, str], table: str) -> config.Settings:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "pyproject.toml").write_text(table)
    return config.load(root)


TABLE = """
[tool.buildkit]
registry = "reg:5000/p"
[tool.buildkit.discover]
roots = ["."]
ignore = ["**/templates_and_examples/**"]
name_label = "IMAGE"
local_prefixes = ["local-only"]
"""


def test_finds_names_and_links_dockerfiles(tmp_path: Path) -> None:
    s = write(
        tmp_path,
        {
            "base/Dockerfile": "FROM scratch\n",
            "svc/api/Dockerfile": 'ARG B=local-only/base:9\nFROM ${B}\nLABEL IMAGE="api-server"\n',
            "svc/worker/Dockerfile": "FROM reg:5000/p/base:1\nCOPY --from=api-server / /\n",
            "svc/ext/Dockerfile": "FROM other/base:1\n",
            "x/templates_and_examples/demo/Dockerfile": "FROM base\n",
            ".hidden/Dockerfile": "FROM base\n",
        },
        TABLE,
    )
    images = discovery.all_images(s)
    assert set(images) == {"base", "api-server", "worker", "ext"}
    g = graph.build_graph(s, images)
    assert g.nodes["api-server"].depends_on == ("base",)
    assert set(g.nodes["worker"].depends_on) == {"base", "api-server"}
    assert g.nodes["ext"].depends_on == ()
    data = plans.as_dict(g, s.root)
    assert set(data) == {"images", "order"}
    assert {i["name"]: i["context"] for i in data["images"]}["api-server"] == "svc/api"
    assert all(set(i) == {"name", "context", "dockerfile", "depends_on"} for i in data["images"])
    order = data["order"]
    assert order.index("base") < order.index("api-server") < order.index("worker")


def test_two_dockerfiles_claiming_one_name_is_an_error(tmp_path: Path) -> None:
    s = write(
        tmp_path,
        {"a/web/Dockerfile": "FROM scratch\n", "b/web/Dockerfile": "FROM scratch\n"},
        TABLE,
    )
    with pytest.raises(ConfigError) as err:
        discovery.discover(s)
    assert "claimed by two Dockerfiles" in str(err.value)
    assert "a/web/Dockerfile" in str(err.value) and "b/web/Dockerfile" in str(err.value)


def test_configured_images_win_over_discovered(tmp_path: Path) -> None:
    s = write(
        tmp_path,
        {"web/Dockerfile": "FROM scratch\n", "web/alt.Dockerfile": "FROM x\n"},
        TABLE + "[tool.buildkit.images.web]\ncontext = 'web'\ndockerfile = 'alt.Dockerfile'\n",
    )
    assert discovery.all_images(s)["web"].dockerfile.name == "alt.Dockerfile"


def test_label_forms() -> None:
    assert discovery.label_value('LABEL a=b IMAGE="x y"\n', "IMAGE") == "x y"
    assert discovery.label_value("LABEL IMAGE x\n", "IMAGE") == "x"
    assert discovery.label_value("LABEL OTHER=1\n", "IMAGE") is None


def test_dot_and_text_render(tmp_path: Path) -> None:
    s = write(
        tmp_path, {"base/Dockerfile": "FROM scratch\n", "app/Dockerfile": "FROM base\n"}, TABLE
    )
    g = graph.build_graph(s, discovery.all_images(s))
    dot = plans.render(g, s.root, "dot")
    assert dot.startswith("digraph images {") and '"base" -> "app";' in dot
    text = plans.render(g, s.root, "text")
    assert "2 images, in build order:" in text and "needs: base" in text


def test_discovery_of_200_dockerfiles_is_fast(tmp_path: Path) -> None:
    files = {"base/Dockerfile": "FROM scratch\n"}
    for i in range(199):
        files[f"group{i % 10}/svc{i}/Dockerfile"] = f"FROM base\nRUN echo {i}\n"
    for i in range(300):  # unrelated files in the tree
        files[f"group{i % 10}/svc{i % 199}/src/f{i}.py"] = "x = 1\n"
    s = write(tmp_path, files, TABLE)
    start = time.perf_counter()
    g = graph.build_graph(s, discovery.all_images(s))
    elapsed = time.perf_counter() - start
    assert len(g.nodes) == 200 and len(g.order()) == 200
    print(f"discovered and linked 200 Dockerfiles in {elapsed:.3f}s")

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
            "svc/worker/Dockerfile": (
                "FROM reg:5000/p/base:1\nCOPY --from=local-only/api-server / /\n"
                "COPY --from=api-server / /\n"  # bare: Docker Hub's, since prefixes are set
            ),
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
    assert discovery.label_value('FROM a\nLABEL a=b IMAGE="x y"\n', "IMAGE") == "x y"
    assert discovery.label_value("FROM a\nLABEL IMAGE x\n", "IMAGE") == "x"
    assert discovery.label_value("FROM a\nLABEL OTHER=1\n", "IMAGE") is None
    # a label inside a heredoc body is file content, not a label
    text = 'FROM a\nCOPY <<EOF /x\nLABEL IMAGE="evil"\nEOF\nLABEL IMAGE="good"\n'
    assert discovery.label_value(text, "IMAGE") == "good"


def test_dot_and_text_render(tmp_path: Path) -> None:
    s = write(
        tmp_path,
        {"base/Dockerfile": "FROM scratch\n", "app/Dockerfile": "FROM local-only/base\n"},
        TABLE,
    )
    g = graph.build_graph(s, discovery.all_images(s))
    dot = plans.render(g, s.root, "dot")
    assert dot.startswith("digraph images {") and '"base" -> "app";' in dot
    text = plans.render(g, s.root, "text")
    assert "2 images, in build order:" in text and "needs: base" in text


def test_discovery_of_200_dockerfiles_is_fast(tmp_path: Path) -> None:
    files = {"base/Dockerfile": "FROM scratch\n"}
    for i in range(199):
        files[f"group{i % 10}/svc{i}/Dockerfile"] = f"FROM local-only/base\nRUN echo {i}\n"
    for i in range(300):  # unrelated files in the tree
        files[f"group{i % 10}/svc{i % 199}/src/f{i}.py"] = "x = 1\n"
    s = write(tmp_path, files, TABLE)
    start = time.perf_counter()
    g = graph.build_graph(s, discovery.all_images(s))
    elapsed = time.perf_counter() - start
    assert len(g.nodes) == 200 and len(g.order()) == 200
    assert all(g.nodes[n].depends_on == ("base",) for n in g.nodes if n != "base")
    print(f"discovered and linked 200 Dockerfiles in {elapsed:.3f}s")


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("api", "api"),
        ("localhost:5000/acme/api", "api"),
        ("localhost:5000/acme/api:2.3.0", "api"),
        ("local-only/base-python-cpu:latest", "base-python-cpu"),
        ("quay.io/org/k8s-hub@sha256:" + "a" * 64, "k8s-hub"),
        ("Bad Name", "bad name"),
    ],
)
def test_image_name_from_a_label_keeps_the_last_component(value: str, name: str) -> None:
    assert discovery.image_name(value) == name


CONVENTIONS = """
[tool.buildkit]
registry = "localhost:5000/acme"
[tool.buildkit.discover]
roots = ["."]
name_label = "IMAGE"
local_prefixes = ["local-only"]
skip_label = "BUILD_IGNORE"
local_label = "REGISTRY=local-only"
ignore = ["templates/", "*.tmpl/", "!templates/keep/", "docs/*/draft/"]
"""


def test_discovery_conventions_are_configuration(tmp_path: Path) -> None:
    s = write(
        tmp_path,
        {
            "base/Dockerfile": 'FROM ubuntu:24.04\nLABEL REGISTRY="local-only" IMAGE="base-cpu"\n',
            "svc/Dockerfile": 'FROM local-only/base-cpu:latest\nLABEL IMAGE="svc"\n',
            "off/Dockerfile": 'FROM scratch\nLABEL IMAGE="off" BUILD_IGNORE="True"\n',
            "on/Dockerfile": 'FROM scratch\nLABEL IMAGE="on" BUILD_IGNORE="False"\n',
            "a/templates/x/Dockerfile": "FROM scratch\n",
            "templates/y/Dockerfile": "FROM scratch\n",
            "n/app.tmpl/Dockerfile": "FROM scratch\n",
            "docs/a/draft/Dockerfile": "FROM scratch\n",
            # fnmatch's '*' crossed '/'; in gitignore it does not: docs/a/b/draft stays
            "docs/a/b/draft/Dockerfile": 'FROM scratch\nLABEL IMAGE="deep-draft"\n',
        },
        CONVENTIONS,
    )
    images = discovery.discover(s)
    assert set(images) == {"base-cpu", "svc", "on", "deep-draft"}
    assert images["base-cpu"].push is False
    assert images["svc"].push is True
    g = graph.build_graph(s, images)
    assert g.nodes["svc"].depends_on == ("base-cpu",)


def test_bare_names_can_be_turned_on_beside_prefixes(tmp_path: Path) -> None:
    files = {"base/Dockerfile": "FROM scratch\n", "app/Dockerfile": "FROM base:1\n"}
    s = write(tmp_path, files, TABLE + "bare_names = true\n")
    assert graph.build_graph(s, discovery.all_images(s)).nodes["app"].depends_on == ("base",)
    s = write(tmp_path, files, TABLE)
    assert graph.build_graph(s, discovery.all_images(s)).nodes["app"].depends_on == ()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('local_label = "REGISTRY"\n', 'local_label: expected a "KEY=VALUE" label'),
        ('bare_names = "sometimes"\n', "bare_names: expected true or false"),
        ("skip_label = 3\n", "skip_label: expected a string"),
    ],
)
def test_bad_discover_keys(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        write(tmp_path, {}, TABLE + extra)


def test_an_unreadable_dockerfile_is_named(tmp_path: Path) -> None:
    s = write(tmp_path, {}, TABLE)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "Dockerfile").write_bytes(b"FROM a\nLABEL IMAGE=\xff\n")
    with pytest.raises(ConfigError, match="x/Dockerfile: not UTF-8"):
        discovery.discover(s)


def test_a_local_prefix_reference_to_no_image_is_a_warning(tmp_path: Path) -> None:
    s = write(
        tmp_path,
        {
            "base/Dockerfile": "FROM scratch\n",
            "app/Dockerfile": "FROM local-only/base:latest\nCOPY --from=local-only/gone:1 / /\n",
            "ext/Dockerfile": "FROM nginx:1\nCOPY --from=reg:5000/p/elsewhere / /\n",
        },
        TABLE,
    )
    g = graph.build_graph(s, discovery.all_images(s))
    assert g.nodes["app"].dangling == ("local-only/gone:1",)
    assert g.nodes["ext"].dangling == ()  # upstream and registry images may exist elsewhere
    (line,) = g.warnings()
    assert line.startswith(f"{tmp_path / 'app' / 'Dockerfile'}: local-only/gone:1 names no image")

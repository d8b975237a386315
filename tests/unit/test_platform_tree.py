"""``inv image.graph`` on a tree shaped like a 164-image platform (tests/fixtures/platform.py):
the edges read from 178 Dockerfiles must be exactly the ones the generator wrote into them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures import platform


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> platform.Platform:
    return platform.make(tmp_path_factory.mktemp("platform"))


def inv(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args], cwd=root, capture_output=True, text=True
    )


def test_image_graph_json_is_exact(tree: platform.Platform) -> None:
    start = time.perf_counter()
    res = inv(tree.root, "image.graph", "--format", "json")
    elapsed = time.perf_counter() - start
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""  # every local-only base it names is in the tree: no warnings
    data = json.loads(res.stdout)
    got = {i["name"]: sorted(i["depends_on"]) for i in data["images"]}
    assert len(got) == 164
    assert got == tree.edges()
    for image in data["images"]:
        assert image["context"] == tree.images[image["name"]].folder
        assert image["dockerfile"] == "Dockerfile"
    order = data["order"]
    assert all(order.index(d) < order.index(n) for n, deps in got.items() for d in deps)
    assert not set(tree.left_out) & set(got)
    # upstream images named like project images are no edges
    for name in ("nginx", "postgres", "node"):
        assert got[name] == []
        assert not [n for n, deps in got.items() if name in deps]
    print(f"image.graph on {len(got)} images, process included: {elapsed:.2f}s")


def test_text_form_marks_build_only_bases(tree: platform.Platform) -> None:
    res = inv(tree.root, "image.graph")
    assert res.returncode == 0, res.stderr
    lines = {line.split()[1]: line for line in res.stdout.splitlines()[1:]}
    for name, image in tree.images.items():
        assert ("build-only" in lines[name]) == image.build_only, lines[name]


def test_one_image_and_what_it_needs(tree: platform.Platform) -> None:
    res = inv(tree.root, "image.graph", "--format", "json", "--name", "base-nnunet-v2-ensemble")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["order"] == [
        "base-python-gpu",
        "base-pytorch-gpu",
        "base-nnunet-v2",
        "base-nnunet-v2-fed",
        "base-nnunet-v2-ensemble",
    ]

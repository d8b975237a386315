from pathlib import Path

import pytest

from buildkit_tasks import scaffold
from buildkit_tasks.errors import ConfigError


def test_python_plan_files_and_variables(tmp_path: Path) -> None:
    plan = scaffold.render("python", "demo-app", tmp_path, "localhost:5000/base/py:3.12")
    assert set(plan.files) == {
        "Dockerfile",
        ".dockerignore",
        "tasks.py",
        "pyproject.toml",
        "charts/demo-app/Chart.yaml",
        "charts/demo-app/values.yaml",
        "charts/demo-app/templates/deployment.yaml",
        "src/demo_app/__init__.py",
        "src/demo_app/__main__.py",
        "tests/test_demo_app.py",
    }
    docker = plan.files["Dockerfile"]
    assert "ARG PYTHON_IMAGE=localhost:5000/base/py:3.12" in docker
    assert docker.index("COPY pyproject.toml") < docker.index("COPY src")  # deps layer first
    assert "AS builder" in docker and "USER 10001" in docker
    assert (
        'build_args = { PYTHON_IMAGE = "localhost:5000/base/py:3.12" }'
        in plan.files["pyproject.toml"]
    )
    assert (
        "{{ .Values.image.repository }}" in plan.files["charts/demo-app/templates/deployment.yaml"]
    )
    assert plan.append is None


def test_node_plan(tmp_path: Path) -> None:
    plan = scaffold.render("node", "web", tmp_path)
    assert "ARG NODE_IMAGE=node:22-slim" in plan.files["Dockerfile"]
    assert {"package.json", "package-lock.json", "index.js"} <= set(plan.files)


def test_bad_kind_and_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--kind: expected one of python, node"):
        scaffold.render("go", "x", tmp_path)
    with pytest.raises(ConfigError, match="--name: expected lowercase"):
        scaffold.render("python", "Bad Name", tmp_path)


def test_write_is_all_or_nothing_and_appends_to_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    (tmp_path / "Dockerfile").write_text("FROM mine\n")
    plan = scaffold.render("node", "x", tmp_path)
    assert plan.append is not None and "pyproject.toml" not in plan.files
    with pytest.raises(ConfigError, match="1 files already exist \\(Dockerfile\\)"):
        scaffold.write(tmp_path, plan)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Dockerfile", "pyproject.toml"]
    written = scaffold.write(tmp_path, plan, force=True)
    assert "pyproject.toml (appended [tool.buildkit])" in written
    text = (tmp_path / "pyproject.toml").read_text()
    assert text.startswith('[project]\nname = "x"\n\n[tool.buildkit]\n')
    # the table is there now: a second run leaves pyproject.toml alone, even with --force
    assert scaffold.render("node", "x", tmp_path).append is None
    assert "pyproject.toml" not in scaffold.render("node", "x", tmp_path).files


def test_default_name(tmp_path: Path) -> None:
    d = tmp_path / "My_Project 2"
    d.mkdir()
    assert scaffold.default_name(d) == "my-project-2"

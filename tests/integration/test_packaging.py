"""The wheel carries the templates, the report schema and the console script: built with
``pip wheel`` (build requirements from the setup wheelhouse: no network), installed with pip."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from .conftest import REPO, STATE, require


def test_wheel_ships_templates_and_works_installed(tmp_path: Path) -> None:
    wheelhouse = STATE / "wheelhouse"
    require(wheelhouse.is_dir(), f"the wheelhouse {wheelhouse}")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-index",
            "--find-links",
            str(wheelhouse),
            "-q",
            "-w",
            str(tmp_path / "w"),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "w").glob("buildkit_tasks-*.whl")
    zf = zipfile.ZipFile(wheel)
    names = zf.namelist()
    for name in (
        "buildkit_tasks/templates/version.json.j2",
        "buildkit_tasks/templates/python/Dockerfile.j2",
        "buildkit_tasks/templates/node/Dockerfile.j2",
        "buildkit_tasks/templates/chart/templates/deployment.yaml.j2",
        "buildkit_tasks/templates/common/tasks.py.j2",
        "buildkit_tasks/schema/build-report-v1.schema.json",
        "buildkit_tasks/tasks/image.py",
    ):
        assert name in names, name
    [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "buildkit-tasks = buildkit_tasks.cli:main" in zf.read(entry_points).decode()
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--quiet",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    code = (
        "import buildkit_tasks, buildkit_tasks.templating as t; "
        "print(buildkit_tasks.__file__); print(t.builtin('version.json.j2'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(target)},
    ).stdout
    assert out.splitlines()[0].startswith(str(target))
    assert '"version": {{ version | tojson }}' in out

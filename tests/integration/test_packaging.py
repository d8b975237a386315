"""The wheel carries the templates: built with ``python -m build``, installed with pip."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from .conftest import REPO


def test_wheel_ships_templates_and_works_installed(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path / "w"), str(REPO)],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "w").glob("buildkit_tasks-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "buildkit_tasks/templates/version.json.j2" in names
    assert "buildkit_tasks/tasks/image.py" in names
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
        "import buildkit_tasks, buildkit_tasks.versioning as v; "
        "print(buildkit_tasks.__file__); print(v.builtin_template('version.json.j2'))"
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

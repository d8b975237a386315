"""`inv --list` in a consumer repository: the whole buildkit-tasks collection against a one-task
tasks.py.

    python benchmarks/cli_startup.py [--reps N]

Two throw-away project directories, measured interleaved in the same run: one whose tasks.py
is `from buildkit_tasks import ns`, one whose tasks.py defines a single plain Invoke task.
Prints each median wall time and the ratio (target: at most 1.25).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ONE_TASK = "from invoke import task\n\n\n@task\ndef hello(c):\n    print('hello')\n"
FULL = "from buildkit_tasks import ns  # noqa: F401\n"
PYPROJECT = '[project]\nname = "consumer"\nversion = "0.0.0"\n\n[tool.buildkit]\n'


def make(root: Path, tasks: str) -> Path:
    root.mkdir()
    (root / "tasks.py").write_text(tasks)
    (root / "pyproject.toml").write_text(PYPROJECT)
    return root


def once(root: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "invoke", "--list"], cwd=root, check=True, capture_output=True
    )
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=21)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        full = make(Path(tmp) / "full", FULL)
        one = make(Path(tmp) / "one", ONE_TASK)
        listing = subprocess.run(
            [sys.executable, "-m", "invoke", "--list"], cwd=full, capture_output=True, text=True
        ).stdout
        assert "image.build" in listing and "remote.run" in listing, listing
        once(full), once(one)  # warm the file cache and .pyc files
        t_full, t_one = [], []
        for _ in range(args.reps):
            t_full.append(once(full))
            t_one.append(once(one))
    m_full, m_one = statistics.median(t_full), statistics.median(t_one)
    print(f"inv --list, {args.reps} runs each (median):")
    print(f"  one-task tasks.py          {m_one * 1000:7.1f} ms")
    print(f"  full buildkit-tasks ns     {m_full * 1000:7.1f} ms")
    print(f"  ratio full / one-task      {m_full / m_one:7.2f}   (target <= 1.25)")


if __name__ == "__main__":
    main()

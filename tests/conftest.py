"""Shared test helpers: a git repository maker used by unit and integration tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

GIT = [
    "git",
    "-c",
    "user.name=buildkit-tests",
    "-c",
    "user.email=tests@example.invalid",
    "-c",
    "init.defaultBranch=main",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "tag.gpgsign=false",
]


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo``; returns stdout. Raises CalledProcessError."""
    return subprocess.run(
        [*GIT, *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


def commit_all(repo: Path, message: str = "commit") -> str:
    if not (repo / ".git").exists():
        git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")

"""Shared test helpers: a git repository maker used by unit and integration tests."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path


def pytest_configure() -> None:
    """Let Ctrl-C reach the processes the tests start. A suite run as a background job of a
    non-interactive shell (``bash .ci/run &``, many CI runners) inherits SIGINT *ignored*;
    Python then installs no KeyboardInterrupt handler and every child inherits the ignore, so
    the tests that send SIGINT to ``inv`` (or to themselves) saw it vanish: builds ran on,
    and the Go-parser test parsed forever (12 GB). A Python-level handler is reset to the
    default in children on exec, so restoring ours here restores theirs."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


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

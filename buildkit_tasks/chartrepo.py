"""Publishing packaged charts to a classic chart repository kept in a git branch, as
chartpress's ``--publish-chart`` does (a ``gh-pages`` branch served by GitHub Pages or any web
server): fetch the branch, refuse a chart version its ``index.yaml`` already lists (unless
forced), add the ``.tgz``, ``helm repo index --merge`` so existing entries keep their times,
commit with a message naming the versions, push once.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .charts import ChartResult, load_yaml
from .config import ChartPublish
from .engines import git, helm
from .errors import BuildkitError
from .runner import Runner

INDEX = "index.yaml"


@dataclass(frozen=True)
class Published:
    """One chart added to the repository: its ``url`` in the index."""

    name: str
    version: str
    url: str


def message(results: Sequence[ChartResult], extra: str = "") -> str:
    """chartpress's commit message: ``[<chart>] Automatic update for commit <version>`` (one
    line per chart), then ``extra`` (``--extra-message``) after a blank line."""
    lines = [f"[{ch.name}] Automatic update for commit {ch.version}" for ch in results]
    return "\n".join(lines) + (f"\n\n{extra}" if extra else "")


def listed(index: Path, name: str, version: str) -> bool:
    """Whether ``index`` (an ``index.yaml``) lists chart ``name`` at ``version``."""
    if not index.is_file():
        return False
    entries = load_yaml(index).get("entries") or {}
    return any(str(e.get("version")) == version for e in entries.get(name) or [])


def publish(
    target: ChartPublish,
    results: Sequence[ChartResult],
    runner: Runner,
    force: bool = False,
    extra_message: str = "",
) -> list[Published]:
    """Add the packaged charts ``results`` to the branch ``target.branch`` of ``target.git``
    (made as an orphan branch when it does not exist yet) and push it. Raises BuildkitError
    naming the chart when the index already lists its version and not ``force``;
    CommandError when git or helm fails (nothing is pushed then). With ``--dry`` prints the
    commands and changes nothing."""
    with tempfile.TemporaryDirectory(prefix="buildkit-chartrepo-") as tmp:
        checkout, fresh = Path(tmp) / "repo", Path(tmp) / "new"
        runner.run(
            ["git", "clone", "-q", "--no-checkout", target.git, str(checkout)],
            what=f"git clone of {target.git}",
        )
        has_branch = runner.run(
            ["git", "-C", str(checkout), "checkout", "-q", target.branch],
            check=False,
            capture=True,
            stderr_to_devnull=True,
        ).ok
        if not has_branch:
            runner.run(
                ["git", "-C", str(checkout), "switch", "-q", "--orphan", target.branch],
                what=f"git switch --orphan {target.branch}",
            )
        index = checkout / INDEX
        for ch in results:
            if not runner.dry and listed(index, ch.name, ch.version) and not force:
                raise BuildkitError(
                    f"helm.publish: {ch.name} {ch.version} is already in {target.git} "
                    f"({target.branch}: {INDEX}); a chart version is immutable: bump the "
                    "version, or --force to replace it"
                )
        fresh.mkdir()
        for ch in results:
            if not runner.dry:
                shutil.copy2(ch.path, fresh / ch.path.name)
        merge = index if (runner.dry or index.is_file()) else None
        runner.run(helm.repo_index_argv(fresh, target.url, merge), what="helm repo index")
        if not runner.dry:
            for item in fresh.iterdir():
                shutil.copy2(item, checkout / item.name)
        runner.run(
            ["git", "-C", str(checkout), "add", "--", INDEX, *(ch.path.name for ch in results)],
            what="git add",
        )
        runner.run(git.commit_argv(checkout, message(results, extra_message)), what="git commit")
        runner.run(
            ["git", "-C", str(checkout), "push", "-q", "origin", target.branch],
            what=f"git push to {target.git} ({target.branch})",
        )
    return [Published(ch.name, ch.version, f"{target.url}/{ch.path.name}") for ch in results]

"""``image.verify --rebuild``: rebuild the report's version from a clean checkout and compare
every image with what the registry holds.

The checkout is a ``git clone`` of the project's repository at the report's commit (plus the
git-ignored files config ``remote_include`` names, as remote runs copy them), built in
reproducible mode without any cache (:mod:`.images`, OCI layouts kept), never pushed. BuildKit's
``rewrite-timestamp`` clamps: a file newer than the commit gets the commit's time, an older one
keeps its own. A fresh checkout (CI's, this one's) has only newer files; a build from a work
tree whose files predate the commit can therefore differ, and this check says so. Each
platform's manifest digest is compared with the registry's for the image's pushed digest;
the manifest list's own digest too when ``provenance = "off"`` (a provenance attestation
records its build's own times, so with provenance only the per-platform images can match).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Settings
from .engines import docker, git
from .errors import BuildkitError
from .references import name_and_tag
from .runner import Runner


@dataclass(frozen=True)
class Compared:
    """One image rebuilt: ``identical`` when every compared digest matched, else ``difference``
    says the first platform that differs and its first differing layer (or config)."""

    name: str
    reference: str
    identical: bool
    difference: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


def checkout(settings: Settings, commit: str, dest: Path) -> Path:
    """A clean checkout of ``commit`` of the repository holding the project, in ``dest``,
    with the git-ignored files ``remote_include`` names copied from the work tree; returns
    the project root inside it. Raises BuildkitError without git or the commit."""
    top = git.line(settings.root, "rev-parse", "--show-toplevel")
    if top is None:
        raise BuildkitError(f"image.verify --rebuild: {settings.root} is not in a git repository")
    res = subprocess.run(
        ["git", "clone", "--quiet", "--no-checkout", "--no-hardlinks", top, str(dest)],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0 or not git.ok(dest, "checkout", "--quiet", commit):
        raise BuildkitError(f"image.verify --rebuild: cannot check out commit {commit} of {top}")
    root = dest / settings.root.resolve().relative_to(Path(top).resolve())
    for pattern in settings.remote_include:
        for src in settings.root.glob(pattern):
            if src.is_file():
                target = root / src.relative_to(settings.root)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target)  # its time too: rewriting only clamps newer times
    return root


def layout_manifests(layout: Path) -> tuple[str, dict[str, dict[str, Any]]]:
    """``(index digest, {platform: image manifest})`` of an OCI layout archive (attestation
    manifests left out)."""
    with tarfile.open(layout) as tar:

        def blob(digest: str) -> Any:
            member = tar.extractfile("blobs/" + digest.replace(":", "/"))
            return json.loads(member.read() if member else b"{}")

        top = json.loads((tar.extractfile("index.json") or b"").read())  # type: ignore[union-attr]
        digest = top["manifests"][0]["digest"]
        out = {}
        for m in blob(digest).get("manifests") or [blob(digest)]:
            p = m.get("platform") or {}
            if p.get("os") and p.get("os") != "unknown":
                out[docker.platform_name(p)] = {**blob(m["digest"]), "digest": m["digest"]}
    return digest, out


def first_difference(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> str:
    """Where two image manifests differ: the first layer (``layer 2 of 3: sha256:... here,
    sha256:... in the registry``), else the config (labels, history, dates), else layer count."""
    a, b = ours.get("layers") or [], theirs.get("layers") or []
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x.get("digest") != y.get("digest"):
            return (
                f"layer {i + 1} of {len(b)}: {x.get('digest')} rebuilt, {y.get('digest')} in "
                "the registry"
            )
    if len(a) != len(b):
        return f"{len(a)} layers rebuilt, {len(b)} in the registry"
    return "same layers, different image config (labels, history or dates)"


def compare(runner: Runner, name: str, reference: str, layout: Path, whole_index: bool) -> Compared:
    """Compare the rebuilt ``layout`` of ``name`` with what the registry's ``reference`` (the
    version tag users pull, or ``repository@digest``) names now."""
    rebuilt_digest, rebuilt = layout_manifests(layout)
    digest, platforms, _ = docker.registry_index(runner, reference)
    repository, _ = name_and_tag(reference)
    for platform, manifest_digest in sorted(platforms.items()):
        mine = rebuilt.get(platform)
        if mine is None:
            return Compared(name, reference, False, f"{platform}: not rebuilt")
        if mine["digest"] != manifest_digest:
            res = runner.run(
                [docker.DOCKER, "buildx", "imagetools", "inspect", "--raw",
                 f"{repository}@{manifest_digest}"],
                capture=True, query=True, what=f"reading {repository}@{manifest_digest}",
            )  # fmt: skip
            why = first_difference(mine, json.loads(res.stdout))
            return Compared(name, reference, False, f"{platform}: {why}")
    if set(rebuilt) - set(platforms):
        extra = ", ".join(sorted(set(rebuilt) - set(platforms)))
        return Compared(name, reference, False, f"rebuilt for {extra}, not in the registry")
    if whole_index and rebuilt_digest != digest:
        return Compared(
            name, reference, False, f"manifest list {rebuilt_digest} rebuilt, {digest} pushed"
        )
    return Compared(name, reference, True)


def rebuild(
    settings: Settings, runner: Runner, report: Mapping[str, Any], pushed: list[tuple[str, str]]
) -> list[Compared]:
    """Rebuild the report's version from a clean checkout (reproducible, no cache, not pushed)
    and compare each of ``pushed`` (``(name, repository@digest)``) with what its version tag
    in the registry names now (what users pull: a tag re-pointed behind the report's back is
    caught too). Raises BuildkitError when the report has no commit, was built from a dirty
    tree, or the checkout's version differs."""
    from . import buildplan, config, images

    version = report.get("version") or {}
    commit = version.get("commit")
    if not commit:
        raise BuildkitError("image.verify --rebuild: the build report names no git commit")
    if version.get("dirty"):
        raise BuildkitError(
            f"image.verify --rebuild: version {version.get('version')} was built from a work "
            "tree with uncommitted changes; a clean checkout cannot reproduce it"
        )
    platforms = sorted(
        {p for i in report.get("images") or [] for p in (i.get("platform_digests") or {})}
    )
    with tempfile.TemporaryDirectory(prefix="buildkit-verify-") as tmp:
        root = checkout(settings, commit, Path(tmp) / "src")
        s = config.load(root, {"registry": settings.registry})
        s = dataclasses.replace(
            s,
            reproducible=True,
            source=images.source_of(settings),
            output_dir=Path(tmp) / "out",
        )
        plan = buildplan.make(s, [n for n, _ in pushed])
        built = plan.version.version
        if built != version.get("version"):
            raise BuildkitError(
                f"image.verify --rebuild: the checkout is version {built}, the report "
                f"{version.get('version')}"
            )
        layouts = Path(tmp) / "layouts"
        layouts.mkdir()
        results = images.build_images(
            s, plan, runner, platforms=platforms, force=True, layouts=layouts
        )
        failed = [r for r in results if r.status not in ("succeeded", "cached")]
        if failed:
            raise BuildkitError(
                "image.verify --rebuild: the rebuild failed: "
                + ", ".join(f"{r.name} ({r.error or r.status})" for r in failed)
            )
        whole = settings.provenance == "off"
        tags = {
            str(i["name"]): (i.get("references") or [None])[0] for i in report.get("images") or []
        }
        return [
            compare(runner, name, tags.get(name) or ref, layouts / f"{name}.oci.tar", whole)
            for name, ref in pushed
        ]

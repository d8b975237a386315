"""What image.sign signs and attests (signing.py), with a recording runner in place of cosign
and syft; the real ones run in tests/integration/test_supply_chain.py."""

import json
from pathlib import Path
from typing import Any

import pytest

from buildkit_tasks import config, signing
from buildkit_tasks.engines import cosign
from buildkit_tasks.runner import Result

A, B, C = ("sha256:" + ch * 64 for ch in "abc")


def pushed(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "status": "succeeded", "references": [f"r:5000/p/{name}:1"], **fields}


def test_platform_manifests_one_per_pushed_platform() -> None:
    report = {
        "images": [
            pushed("api", digest=A, platform_digests={"linux/arm64": C, "linux/amd64": B}),
            pushed("one", digest=B, platforms=["linux/amd64"]),  # a plain manifest, no list
            pushed("local", platforms=["linux/amd64"]),  # built, never pushed
            {**pushed("bad", digest=C), "status": "failed"},
        ]
    }
    assert signing.platform_manifests(report) == [
        ("api", "linux/amd64", f"r:5000/p/api@{B}"),
        ("api", "linux/arm64", f"r:5000/p/api@{C}"),
        ("one", "linux/amd64", f"r:5000/p/one@{B}"),
    ]


def test_sbom_generator_prefers_syft_and_is_none_without_either(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def installed(*names: str) -> None:
        monkeypatch.setattr(signing, "find_tool", lambda n: f"/bin/{n}" if n in names else None)

    installed("trivy", "syft")
    assert signing.sbom_generator() == ("syft", "/bin/syft")
    installed("trivy")
    assert signing.sbom_generator() == ("trivy", "/bin/trivy")
    installed()
    assert signing.sbom_generator() is None


class Recorder:
    """Runs nothing: records argv, and writes what a generator would to its output file."""

    dry = False

    def __init__(self, spdx: str) -> None:
        self.spdx, self.calls = spdx, []  # type: tuple[str, list[list[str]]]

    def run(self, argv: list[str], **kw: Any) -> Result:
        self.calls.append(list(argv))
        if argv[1] == "scan":  # syft: --output spdx-json=<file>
            Path(argv[argv.index("--output") + 1].split("=", 1)[1]).write_text(self.spdx)
        return Result(0)


SPDX = json.dumps(
    {"spdxVersion": "SPDX-2.3", "packages": [{"name": "busybox", "versionInfo": "1.35.0"}]}
)


def settings(tmp_path: Path) -> config.Settings:
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.buildkit]\ncosign_key = "k.key"\n[tool.buildkit.images.api]\ncontext = "img"\n'
    )
    (tmp_path / "k.key").write_text("not read here")
    return config.load(tmp_path)


@pytest.mark.parametrize("document, ok", [(SPDX, True), ('{"bomFormat": "CycloneDX"}', False)])
def test_attach_sboms_writes_the_document_then_attests_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, document: str, ok: bool
) -> None:
    monkeypatch.setattr(cosign, "require", lambda: None)
    s = settings(tmp_path)
    report = {"images": [pushed("api", digest=A, platform_digests={"linux/arm64": C})]}
    runner = Recorder(document)
    (done,) = signing.attach_sboms(s, runner, report, ("syft", "/bin/syft"))  # type: ignore[arg-type]
    dest = s.output_dir / "sbom" / "api.linux-arm64.spdx.json"
    assert done.ok is ok and done.reference == f"r:5000/p/api@{C}"
    assert runner.calls[0][:3] == ["/bin/syft", "scan", f"registry:r:5000/p/api@{C}"]
    if ok:
        assert done.path == "sbom/api.linux-arm64.spdx.json" and done.packages == 1
        assert dest.read_text() == SPDX
        attest = runner.calls[1]
        assert attest[:2] == ["cosign", "attest"] and attest[-1] == f"r:5000/p/api@{C}"
        assert attest[attest.index("--predicate") + 1] == str(dest)
        assert attest[attest.index("--key") + 1] == str(tmp_path / "k.key")
    else:  # not SPDX: not attested, and no half-made document is left behind
        assert "expected an SPDX JSON document" in (done.error or "")
        assert len(runner.calls) == 1
        assert not dest.exists() and list((s.output_dir / "sbom").iterdir()) == []

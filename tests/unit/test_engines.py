import dataclasses
import io
import json
import re
import tarfile
from pathlib import Path

import pytest

from buildkit_tasks.engines import containerd, docker, helm, oras
from buildkit_tasks.errors import BuildkitError


def test_buildx_argv_has_every_option_as_its_own_argument() -> None:
    req = docker.BuildRequest(
        context=Path("/p/api"),
        dockerfile=Path("/p/api/Dockerfile"),
        tags=["r/api:1", "r/api:latest"],
        labels={"org.opencontainers.image.title": "api; rm -rf /"},
        build_args={"B": "2", "A": "$(x)"},
        target="runtime",
        platforms=["linux/amd64", "linux/arm64"],
        contexts={"base": "docker-image://r/base:1"},
        push=True,
        iidfile=Path("/tmp/iid"),
    )
    assert docker.build_argv(req) == [
        "docker",
        "buildx",
        "build",
        "--progress=plain",
        "--file",
        "/p/api/Dockerfile",
        "--tag",
        "r/api:1",
        "--tag",
        "r/api:latest",
        "--label",
        "org.opencontainers.image.title=api; rm -rf /",
        "--build-arg",
        "A=$(x)",
        "--build-arg",
        "B=2",
        "--target",
        "runtime",
        "--platform",
        "linux/amd64,linux/arm64",
        "--build-context",
        "base=docker-image://r/base:1",
        "--output",
        "type=registry",
        "--iidfile",
        "/tmp/iid",
        "/p/api",
    ]


def test_buildx_argv_loads_by_default() -> None:
    argv = docker.build_argv(docker.BuildRequest(Path("c"), Path("c/D"), ["x:1"]))
    assert argv[argv.index("--output") + 1] == "type=docker"
    assert argv.count("--output") == 1 and "--platform" not in argv


def test_buildx_argv_for_a_push_by_digest_loads_and_writes_an_oci_layout() -> None:
    req = docker.BuildRequest(Path("c"), Path("c/D"), ["x:1"], oci_dest=Path("/t/x.tar"))
    argv = docker.build_argv(req)
    specs = [argv[i + 1] for i, a in enumerate(argv) if a == "--output"]
    assert specs == ["type=oci,dest=/t/x.tar", "type=docker"]
    assert docker.bake_definition({"x": req})["target"]["x"]["output"] == specs


def test_oras_copies_a_layout_by_digest_over_plain_http_only_to_loopback() -> None:
    d = "sha256:" + "a" * 64
    local = oras.copy_argv(Path("/t/api.oci"), d, "localhost:5000/acme/api")
    assert local == [
        "oras", "cp", "--no-tty", "--from-oci-layout", f"/t/api.oci@{d}",
        "localhost:5000/acme/api", "--to-plain-http",
    ]  # fmt: skip
    assert "--to-plain-http" not in oras.copy_argv(Path("/t/a"), d, "ghcr.io/acme/api")


def test_oras_reads_the_digest_of_the_one_image_in_a_layout(tmp_path: Path) -> None:
    d = "sha256:" + "b" * 64

    def layout(index: dict, blobs: list[str]) -> Path:
        archive = tmp_path / "x.oci.tar"
        with tarfile.open(archive, "w") as tar:
            for name, data in [("index.json", json.dumps(index).encode())] + [
                (f"blobs/sha256/{b}", b"{}") for b in blobs
            ]:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return archive

    assert oras.layout_digest(layout({"manifests": [{"digest": d}]}, ["b" * 64])) == d
    two_tags = {"manifests": [{"digest": d}, {"digest": d}]}  # one entry per tag
    assert oras.layout_digest(layout(two_tags, ["b" * 64])) == d
    with pytest.raises(BuildkitError, match="x.oci.tar: expected the OCI layout of one image"):
        oras.layout_digest(layout({"manifests": []}, []))
    # what BuildKit 0.13 did to tar=false layouts: an index.json naming a blob it never wrote
    with pytest.raises(BuildkitError, match=f"index.json names {d}, which it does not hold"):
        oras.layout_digest(layout({"manifests": [{"digest": d}]}, ["c" * 64]))


def test_helm_argv() -> None:
    assert helm.package_argv(Path("/c"), Path("/d")) == [
        "helm",
        "package",
        "/c",
        "--destination",
        "/d",
    ]
    assert helm.dependency_build_argv(Path("/c"), plain_http=True)[-1] == "--plain-http"
    assert helm.package_argv(Path("/c"), Path("/d"), "1.0.0", "1.0.0") == [
        "helm",
        "package",
        "/c",
        "--version",
        "1.0.0",
        "--app-version",
        "1.0.0",
        "--destination",
        "/d",
    ]
    assert helm.lint_argv(Path("/c"), strict=True) == ["helm", "lint", "--strict", "/c"]


def test_bake_definition_and_argv() -> None:
    reqs = {
        "base": docker.BuildRequest(Path("/p/base"), Path("/p/base/Dockerfile"), ["r/base:1"]),
        "api": docker.BuildRequest(
            Path("/p/api"),
            Path("/p/api/D"),
            ["r/api:1", "r/api:latest"],
            labels={"k": "v"},
            build_args={"A": "1"},
            target="rt",
            platforms=["linux/arm64"],
            contexts={"base": "target:base", "r/base": "target:base", "x": "docker-image://x"},
        ),
    }
    d = docker.bake_definition(reqs)
    assert d["group"] == {"default": {"targets": ["base", "api"]}}
    assert d["target"]["base"] == {
        "context": "/p/base",
        "dockerfile": "/p/base/Dockerfile",
        "tags": ["r/base:1"],
        "labels": {},
        "args": {},
        "output": ["type=docker"],
    }
    # a second key for the same target goes to a cache-only twin of it
    assert d["target"]["api"]["contexts"] == {
        "base": "target:base",
        "r/base": "target:base--ctx1",
        "x": "docker-image://x",
    }
    assert d["target"]["base--ctx1"] == {
        "inherits": ["base"],
        "tags": [],
        "output": ["type=cacheonly"],
    }
    assert d["target"]["api"]["platforms"] == ["linux/arm64"]
    assert d["target"]["api"]["target"] == "rt"
    # a build-only base is loaded while the image built on it is pushed
    pushed = {**reqs, "api": dataclasses.replace(reqs["api"], push=True)}
    outputs = {n: t.get("output") for n, t in docker.bake_definition(pushed)["target"].items()}
    assert outputs["api"] == ["type=registry"] and outputs["base"] == ["type=docker"]
    assert docker.bake_argv(Path("/t/m.json")) == [
        "docker",
        "buildx",
        "bake",
        "--file",
        "-",
        "--progress=plain",
        "--metadata-file",
        "/t/m.json",
    ]


def test_bake_keys_are_valid_distinct_and_stable() -> None:
    names = ["base-python-cpu-3.10", "base-python-cpu-3_10", "tools/seg.v2", "api", "a.b", "a_b"]
    keys = docker.bake_keys(names)
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]+", k) for k in keys.values())
    assert len(set(keys.values())) == len(names)  # no two names share a key
    # valid names are their own keys; the dotted twin of a valid name gets a hash suffix
    assert (
        keys["api"] == "api"
        and keys["a_b"] == "a_b"
        and keys["base-python-cpu-3_10"] == ("base-python-cpu-3_10")
    )
    assert re.fullmatch(r"a_b-[0-9a-f]{8}", keys["a.b"])
    assert keys["tools/seg.v2"] == "tools_seg_v2"
    assert docker.bake_keys(reversed(names)) == keys


def test_bake_definition_keys_dotted_names_and_their_target_contexts() -> None:
    reqs = {
        "base-python-cpu-3.10": docker.BuildRequest(Path("/p/b"), Path("/p/b/D"), ["r/b:1"]),
        "seg.v2": docker.BuildRequest(
            Path("/p/s"),
            Path("/p/s/D"),
            ["r/s:1"],
            contexts={"local-only/base-python-cpu-3.10": "target:base-python-cpu-3.10"},
        ),
    }
    d = docker.bake_definition(reqs)
    assert d["group"]["default"]["targets"] == ["base-python-cpu-3_10", "seg_v2"]
    assert d["target"]["seg_v2"]["contexts"] == {
        "local-only/base-python-cpu-3.10": "target:base-python-cpu-3_10"
    }


def test_bake_results_and_logs_are_found_under_sanitised_keys(tmp_path: Path) -> None:
    meta = tmp_path / "m.json"
    meta.write_text('{"seg_v2": {"containerimage.digest": "sha256:aa"}}')
    assert docker.bake_digests(meta, ["seg.v2", "x"]) == {"seg.v2": "sha256:aa", "x": ""}
    log = tmp_path / "bake.log"
    log.write_text("#3 [seg_v2 1/2] RUN make\n#3 DONE 0.1s\n")
    out = {"seg.v2": tmp_path / "seg.v2.log"}
    docker.split_bake_log(log, out)
    assert "#3 DONE 0.1s" in out["seg.v2"].read_text()


def test_split_bake_log_files_steps_by_target(tmp_path: Path) -> None:
    log = tmp_path / "bake.log"
    log.write_text(
        "#0 building with default\n\n"
        "#1 [internal] load local bake definitions\n#1 DONE 0.0s\n\n"
        "#2 [base internal] load build definition from Dockerfile\n#2 DONE 0.0s\n\n"
        "#3 [api 1/2] RUN make\n#3 0.5 compiling\n"
        "#4 [base 1/1] COPY x /x\n#4 DONE 0.1s\n"
        "#3 ERROR: process did not complete successfully: exit code: 2\n"
    )
    out = {"base": tmp_path / "base.log", "api": tmp_path / "api.log"}
    docker.split_bake_log(log, out)
    api = out["api"].read_text()
    assert "#3 0.5 compiling" in api and "exit code: 2" in api and "#4" not in api
    base = out["base"].read_text()
    assert "#2 [base internal]" in base and "#4 DONE 0.1s" in base and "#3" not in base


def test_builder_platforms_are_parsed() -> None:
    out = "Name: default\nPlatforms:        linux/amd64, linux/amd64/v2, linux/arm64*\nX: y\n"
    assert docker.parse_builder_platforms(out) == ["linux/amd64", "linux/amd64/v2", "linux/arm64"]
    assert docker.parse_builder_platforms("no such line") == []


def test_an_oras_panic_on_concurrent_failures_counts_as_temporary() -> None:
    from buildkit_tasks.images import is_transient

    panic = "panic: sync/atomic: compare and swap of inconsistently typed value into Value\n"
    assert is_transient(oras.failure_summary(panic + "goroutine 7 [running]:\n"))
    refused = "Error: failed to copy: unexpected status code 401 Unauthorized\n"
    assert oras.failure_summary(refused).startswith("Error: failed to copy")
    assert not is_transient(oras.failure_summary(refused))


def test_the_engine_chosen_for_a_block_is_this_threads_and_follows_work_handed_on() -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from buildkit_tasks.scheduler import run_graph

    seen: dict[str, dict[str, str]] = {}

    def probe(where: str) -> None:
        seen[where] = dict(docker._ENGINE.get()[0])

    other = {"DOCKER_HOST": "unix:///run/other/docker.sock"}
    with docker.engine_at(other):
        t = threading.Thread(target=probe, args=("another thread",))
        t.start()
        t.join()
        with ThreadPoolExecutor(1) as pool:
            pool.submit(docker.in_context(probe), "handed to a pool").result()
        run_graph({"x": set()}, lambda name: probe("scheduler job"), workers=1)
        probe("inside")
    probe("after")
    assert seen == {
        "another thread": {},
        "handed to a pool": other,
        "scheduler job": other,
        "inside": other,
        "after": {},
    }


def test_manifest_url_speaks_http_to_loopback_registries_only() -> None:
    from buildkit_tasks.engines import registry

    assert registry.manifest_url("localhost:5000/acme/api:1.0") == (
        "http://localhost:5000/v2/acme/api/manifests/1.0"
    )
    assert registry.manifest_url("127.0.0.1:5000/a/b@sha256:" + "0" * 64) == (
        "http://127.0.0.1:5000/v2/a/b/manifests/sha256:" + "0" * 64
    )
    assert registry.manifest_url("ghcr.io/acme/api") == (
        "https://ghcr.io/v2/acme/api/manifests/latest"
    )
    assert registry.manifest_url("acme/api:1") is None  # Docker Hub: left to imagetools
    assert registry.manifest_url("Not A Reference") is None


def test_surely_absent_only_for_a_404_or_a_refused_connection() -> None:
    import http.server
    import socket
    import threading

    from buildkit_tasks.engines import registry

    class Registry(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:  # noqa: N802
            code = {"/v2/a/here/manifests/1": 200, "/v2/a/private/manifests/1": 401}
            self.send_response(code.get(self.path, 404))
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{server.server_address[1]}"
    try:
        assert registry.surely_absent(f"{host}/a/gone:1")
        assert not registry.surely_absent(f"{host}/a/here:1")
        assert not registry.surely_absent(f"{host}/a/private:1")  # a login may show it
    finally:
        server.shutdown()
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    assert registry.surely_absent(f"127.0.0.1:{closed}/a/b:1")


def test_a_basic_auth_registry_is_read_with_dockers_file_login(tmp_path: Path) -> None:
    """The login ``docker login`` wrote into a config file is sent as Basic auth to that
    registry only, and never passed on to where a registry redirects a blob."""
    import base64
    import hashlib
    import http.server
    import threading

    from buildkit_tasks.engines import registry

    token = base64.b64encode(b"ci:s3cret").decode()
    config = json.dumps({"config": {"Labels": {"k": "v"}}, "os": "linux", "architecture": "arm64"})
    config_digest = "sha256:" + hashlib.sha256(config.encode()).hexdigest()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"digest": config_digest, "size": len(config)},
            "layers": [],
        }
    )
    storage_saw: list[str | None] = []

    class Storage(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            storage_saw.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(config.encode())

        def log_message(self, *args: object) -> None:
            pass

    storage = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Storage)

    class Registry(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            if self.headers.get("Authorization") != f"Basic {token}":
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="test"')
                self.end_headers()
                return
            if self.path == "/v2/a/api/manifests/1":
                self.send_response(200)
                self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                self.end_headers()
                self.wfile.write(manifest.encode())
            elif self.path == f"/v2/a/api/blobs/{config_digest}":  # kept elsewhere
                self.send_response(307)
                self.send_header("Location", f"http://127.0.0.1:{storage.server_address[1]}/b")
                self.end_headers()
            else:
                self.send_response(404)
                self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    for srv in (server, storage):
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{server.server_address[1]}"
    cfg = tmp_path / "docker"
    cfg.mkdir()
    (cfg / "config.json").write_text(
        json.dumps({"auths": {f"https://{host}/v1/": {"auth": token}, "other.io": {}}})
    )
    try:
        auth = registry.basic_auth(str(cfg), host)
        assert auth == f"Basic {token}"
        assert registry.basic_auth(str(cfg), "other.io") is None  # a helper holds that one
        with pytest.raises(registry.Unanswered):  # anonymous: left to imagetools
            registry.read(f"{host}/a/api:1")
        found = registry.read(f"{host}/a/api:1", auth=auth)
        assert found is not None and found.platform_labels == {"linux/arm64": {"k": "v"}}
        assert storage_saw == [None]  # the redirect went without the login
        assert registry.read(f"{host}/a/api:2", auth=auth) is None
        # a later login (the file rewritten) is read again
        (cfg / "config.json").write_text(json.dumps({"auths": {}}))
        assert registry.basic_auth(str(cfg), host) is None
    finally:
        server.shutdown()
        storage.shutdown()
    assert registry.basic_auth(str(tmp_path / "missing"), host) is None


def test_imagetools_output_gives_each_platforms_manifest_and_labels() -> None:
    key = "dev.buildkit-tasks.input-key"
    listed = {
        "manifest": {
            "digest": "sha256:list",
            "manifests": [
                {"digest": "sha256:amd", "platform": {"os": "linux", "architecture": "amd64"}},
                {
                    "digest": "sha256:armv7",
                    "platform": {"os": "linux", "architecture": "arm", "variant": "v7"},
                },
                {"digest": "sha256:att", "platform": {"os": "unknown", "architecture": "unknown"}},
            ],
        },
        "image": {
            "linux/amd64": {"config": {"Labels": {key: "k1"}}},
            "linux/arm/v7": {"config": {"Labels": {key: "k2", "x": "1"}}},
        },
    }
    got = docker.parse_imagetools(listed)
    assert got.digest == "sha256:list"
    assert got.platform_digests == {"linux/amd64": "sha256:amd", "linux/arm/v7": "sha256:armv7"}
    assert got.platform_labels["linux/amd64"] == {key: "k1"}
    assert got.platform_labels["linux/arm/v7"][key] == "k2" and got.labels["x"] == "1"

    single = {
        "manifest": {"digest": "sha256:one"},
        "image": {"os": "linux", "architecture": "arm64", "config": {"Labels": {key: "k"}}},
    }
    got = docker.parse_imagetools(single)
    assert got.platform_digests == {"linux/arm64": "sha256:one"}
    assert got.labels == {key: "k"} and got.platform_labels == {"linux/arm64": {key: "k"}}


def test_local_images_asks_in_a_few_calls_keeping_each_images_tags_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[list[str]] = []
    TAGS = ("1", "1.0", "latest")  # 3 references per image: call sizes would cut between them

    class Api:
        def images(self, filters: dict[str, list[str]]) -> list[dict[str, object]]:
            refs = filters["reference"]
            asked.append(refs)
            names = sorted({r.rsplit(":", 1)[0] for r in refs})
            return [{"Id": f"sha256:{n}", "RepoTags": [f"{n}:{t}" for t in TAGS]} for n in names]

    class Client:
        api = Api()

    monkeypatch.setattr(docker, "client", lambda: Client())
    monkeypatch.setattr(containerd, "engine_socket", lambda: None)  # the engine lists them
    for count in (3, 163, 1200):
        asked.clear()
        refs = [f"localhost:5000/p/img-{i:04d}:{t}" for i in range(count) for t in TAGS]
        index = docker.local_images(reversed(refs), label="k")
        assert sorted(r for call in asked for r in call) == sorted(refs)  # each asked once
        assert len(asked) == (1 if count == 3 else 4 if count == 163 else 8)  # 3600 refs / 500
        for call in asked:  # no image's tags split over two calls (it would be listed twice)
            assert all(f"{r.rsplit(':', 1)[0]}:latest" in call for r in call)
        assert set(index) == set(refs)
        assert docker.find_local(index, refs[-1]) == index[refs[-3]]


def test_a_reproducible_request_writes_only_a_rewritten_layout_without_cache(
    tmp_path: Path,
) -> None:
    req = docker.BuildRequest(
        context=tmp_path, dockerfile=tmp_path / "Dockerfile", tags=["r/x:1", "r/x:latest"],
        build_args={"A": "1"}, iidfile=tmp_path / "x.iid", oci_dest=tmp_path / "x.oci.tar",
        source_date_epoch=1700000000, provenance="min", secrets=["NPM_TOKEN"],
        no_cache=True,
    )  # fmt: skip
    argv = docker.build_argv(req)
    assert argv.count("--output") == 1
    assert f"type=oci,dest={tmp_path / 'x.oci.tar'},rewrite-timestamp=true" in argv
    assert "SOURCE_DATE_EPOCH=1700000000" in argv and "A=1" in argv
    assert "--no-cache" in argv and "--provenance=mode=min" in argv
    assert argv[argv.index("--secret") + 1] == "id=NPM_TOKEN,env=NPM_TOKEN"
    assert "--iidfile" not in argv  # the image ID is the layout's digest once loaded
    off = docker.build_argv(dataclasses.replace(req, provenance="off", source_date_epoch=None))
    assert "--provenance=false" in off and "SOURCE_DATE_EPOCH=1700000000" not in " ".join(off)
    target = docker.bake_definition({"x": req})["target"]["x"]
    assert target["attest"] == ["type=provenance,mode=min"]
    assert target["secret"] == ["id=NPM_TOKEN,env=NPM_TOKEN"] and target["no-cache"] is True
    assert target["args"]["SOURCE_DATE_EPOCH"] == "1700000000"


def test_registry_index_pairs_each_platform_with_its_attestation() -> None:
    from buildkit_tasks.runner import Result

    index = {
        "digest": "sha256:" + "0" * 64,
        "manifests": [
            {"digest": "sha256:" + "a" * 64, "platform": {"os": "linux", "architecture": "amd64"}},
            {"digest": "sha256:" + "b" * 64, "platform": {"os": "linux", "architecture": "arm64"}},
            {
                "digest": "sha256:" + "c" * 64,
                "platform": {"os": "unknown", "architecture": "unknown"},
                "annotations": {
                    "vnd.docker.reference.type": "attestation-manifest",
                    "vnd.docker.reference.digest": "sha256:" + "a" * 64,
                },
            },
        ],
    }

    class Runner:
        dry = False
        env: dict[str, str] = {}

        def run(self, argv: list[str], **kw: object) -> Result:
            return Result(0, json.dumps(index))

    digest, platforms, attested = docker.registry_index(Runner(), "r/x:1")  # type: ignore[arg-type]
    assert platforms == {"linux/amd64": "sha256:" + "a" * 64, "linux/arm64": "sha256:" + "b" * 64}
    assert attested == {"linux/amd64": "sha256:" + "c" * 64}  # arm64 has none here


def test_cosign_argv_keeps_keys_and_passwords_out() -> None:
    from buildkit_tasks.engines import cosign

    assert cosign.key_argument(None) == "env://BUILDKIT_COSIGN_KEY"
    argv = cosign.sign_argv("env://BUILDKIT_COSIGN_KEY", "r/x@sha256:" + "a" * 64, False)
    assert argv[-1].endswith("@sha256:" + "a" * 64) and "--tlog-upload=false" in argv
    v = cosign.verify_argv(Path("k.pub"), "r/x@sha256:" + "a" * 64, False)
    assert "--insecure-ignore-tlog=true" in v
    out = json.dumps([{"critical": {"image": {"docker-manifest-digest": "sha256:" + "a" * 64}}}])
    assert cosign.verified_digests(out) == {"sha256:" + "a" * 64}
    assert cosign.verified_digests("not json") == set()


def test_sbom_argv_reads_the_registry_by_digest_for_one_platform(tmp_path: Path) -> None:
    from buildkit_tasks.engines import sbom

    ref, out = "r:5000/x@sha256:" + "a" * 64, tmp_path / "x.spdx.json"
    syft = sbom.argv("syft", "/v/syft", ref, "linux/arm64", out)
    assert syft[:3] == ["/v/syft", "scan", f"registry:{ref}"]
    assert syft[syft.index("--platform") + 1] == "linux/arm64"
    assert f"spdx-json={out}" in syft
    trivy = sbom.argv("trivy", "trivy", ref, "linux/amd64", out)
    assert trivy[-1] == ref and trivy[trivy.index("--format") + 1] == "spdx-json"
    assert trivy[trivy.index("--image-src") + 1] == "remote"  # never the engine's copy
    assert sbom.environment("syft") == {"SYFT_CHECK_FOR_APP_UPDATE": "false"}
    with pytest.raises(ValueError, match="unknown SBOM generator 'grype'"):
        sbom.argv("grype", "grype", ref, "linux/amd64", out)


def test_sbom_packages_reads_spdx_and_refuses_anything_else(tmp_path: Path) -> None:
    from buildkit_tasks.engines import sbom

    doc = tmp_path / "d.json"
    doc.write_text(json.dumps({"spdxVersion": "SPDX-2.3", "packages": [{"name": "busybox"}]}))
    assert sbom.packages(doc) == ["busybox@"]
    for text in ('{"bomFormat": "CycloneDX"}', "not json", '{"spdxVersion": "2.3"}'):
        doc.write_text(text)
        with pytest.raises(BuildkitError, match="d.json: expected an SPDX JSON document"):
            sbom.packages(doc)


def test_cosign_attestation_and_blob_argv_and_subjects() -> None:
    import base64

    from buildkit_tasks.engines import cosign

    ref = "r/x@sha256:" + "a" * 64
    attest = cosign.attest_argv("k.key", ref, Path("s.json"), "spdxjson", False)
    assert attest[:2] == ["cosign", "attest"] and attest[-1] == ref
    assert attest[attest.index("--type") + 1] == "spdxjson" and "--tlog-upload=false" in attest
    check = cosign.verify_attestation_argv(Path("k.pub"), ref, "spdxjson", False)
    assert check[1] == "verify-attestation" and "--insecure-ignore-tlog=true" in check
    blob = cosign.sign_blob_argv("k.key", Path("SUMS"), Path("SUMS.sig"), True)
    assert blob[-1] == "SUMS" and blob[blob.index("--output-signature") + 1] == "SUMS.sig"
    assert "--tlog-upload=true" in blob
    vblob = cosign.verify_blob_argv(Path("k.pub"), Path("SUMS"), Path("SUMS.sig"), True)
    assert "--insecure-ignore-tlog=true" not in vblob and vblob[-1] == "SUMS"

    def envelope(predicate_type: str, digest: str) -> str:
        statement = {"predicateType": predicate_type, "subject": [{"digest": {"sha256": digest}}]}
        return json.dumps({"payload": base64.b64encode(json.dumps(statement).encode()).decode()})

    out = "\n".join(
        [envelope("https://spdx.dev/Document", "a" * 64), envelope("other", "b" * 64), "junk"]
    )
    assert cosign.attested_subjects(out, "https://spdx.dev/Document") == {"sha256:" + "a" * 64}


def test_registry_reads_check_every_body_and_leave_logins_to_imagetools() -> None:
    import hashlib
    import http.server
    import threading

    from buildkit_tasks.engines import registry

    def digest(body: bytes) -> str:
        return "sha256:" + hashlib.sha256(body).hexdigest()

    config = json.dumps(
        {"os": "linux", "architecture": "arm64", "config": {"Labels": {"k": "v"}}}
    ).encode()
    image = json.dumps({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "config": {"digest": digest(config)}, "layers": []}).encode()  # fmt: skip
    index = json.dumps({"mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"digest": digest(image), "platform": {"os": "linux", "architecture": "arm64"}},
        {"digest": "sha256:" + "0" * 64, "platform": {"os": "unknown", "architecture": "unknown"}},
    ]}).encode()  # fmt: skip
    paths = {
        "/v2/a/x/manifests/1": index,
        f"/v2/a/x/manifests/{digest(image)}": image,
        f"/v2/a/x/blobs/{digest(config)}": config,
        "/v2/a/lies/manifests/1": index,
        f"/v2/a/lies/manifests/{digest(image)}": image + b" ",  # not what its digest says
    }

    class Registry(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            if self.path.startswith("/v2/private/"):
                self.send_response(401)
                self.end_headers()
                return
            body = paths.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{server.server_address[1]}"
    try:
        got = registry.read(f"{host}/a/x:1")
        assert got == docker.RemoteImage(
            digest(index), {"k": "v"}, {"linux/arm64": digest(image)}, {"linux/arm64": {"k": "v"}}
        )  # the attestation entry (unknown/unknown) left out
        assert registry.read(f"{host}/a/x:2") is None
        with pytest.raises(registry.Unanswered):
            registry.read(f"{host}/a/lies:1")
        with pytest.raises(registry.Unanswered):  # a login: Docker's credentials
            registry.read(f"{host}/private/x:1")
        with pytest.raises(registry.Unanswered):  # Docker Hub wants a token even to say no
            registry.read("acme/x:1")
    finally:
        server.shutdown()


def test_a_bake_log_holds_that_bake_only(tmp_path: Path) -> None:
    log, started = tmp_path / "bake.log", []
    log.write_text("#1 [internal] load local bake definitions\n" * 1000)  # an earlier bake

    class Runner:
        dry = False

        def start(self, argv: list[str], **kwargs: object) -> str:
            started.append((argv, kwargs))
            return "started"

    assert docker.start_bake(Runner(), log, tmp_path / "m.json") == "started"  # type: ignore[arg-type]
    assert log.read_text() == ""
    argv, kwargs = started[0]
    assert argv[:5] == ["docker", "buildx", "bake", "--file", "-"]
    assert str(tmp_path / "m.json") in argv
    assert kwargs["log"] == log and kwargs["stdin"] is True


def _plugin(folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "docker-buildx"
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


def test_docker_buildx_runs_as_the_plugin_binary_the_cli_would_pick(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system = tmp_path / "usr-libexec"
    monkeypatch.setattr(docker, "PLUGIN_DIRS", (str(tmp_path / "none"), str(system)))
    docker.buildx_binary.cache_clear()
    on_system = _plugin(system)
    config = tmp_path / "cfg"
    cli = tmp_path / "bin"
    Path(_plugin(cli)).replace(cli / "docker")  # a docker CLI on PATH
    env = {"DOCKER_CONFIG": str(config), "PATH": str(cli)}
    argv = ["docker", "buildx", "bake", "--file", "-"]
    assert docker.plugin_argv(argv, env) == [on_system, "bake", "--file", "-"]
    # the config directory's own plugin comes first, as for the docker CLI
    docker.buildx_binary.cache_clear()
    own = _plugin(config / "cli-plugins")
    assert docker.plugin_argv(argv, env)[0] == own
    # other commands, and plugins elsewhere (cliPluginsExtraDirs) are left to the CLI
    assert docker.plugin_argv(["docker", "load"], env) == ["docker", "load"]
    (config / "config.json").write_text('{"cliPluginsExtraDirs": ["/opt/plugins"]}')
    docker.buildx_binary.cache_clear()
    assert docker.plugin_argv(argv, env) == argv
    # no plugin anywhere, or no docker CLI on PATH: docker buildx as written (the CLI, or
    # the missing program, says what is missing)
    docker.buildx_binary.cache_clear()
    empty = {"DOCKER_CONFIG": str(tmp_path / "empty"), "PATH": str(cli)}
    assert docker.plugin_argv(argv, empty) == [on_system, "bake", "--file", "-"]
    assert docker.plugin_argv(argv, {**empty, "PATH": str(tmp_path / "none")}) == argv
    monkeypatch.setattr(docker, "PLUGIN_DIRS", ())
    docker.buildx_binary.cache_clear()
    assert docker.plugin_argv(argv, empty) == argv
    docker.buildx_binary.cache_clear()

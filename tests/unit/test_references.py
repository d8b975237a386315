import pytest

from buildkit_tasks import references
from buildkit_tasks.references import ProjectImages, ReferenceError

# (reference, normalised repository, familiar repository, tag, digest) as Docker reads them.
D = "sha256:" + "a" * 64
NORMALISE = [
    ("nginx", "docker.io/library/nginx", "nginx", None, None),
    ("nginx:1.29.3", "docker.io/library/nginx", "nginx", "1.29.3", None),
    ("library/nginx", "docker.io/library/nginx", "nginx", None, None),
    ("docker.io/nginx", "docker.io/library/nginx", "nginx", None, None),
    ("docker.io/library/nginx:latest", "docker.io/library/nginx", "nginx", "latest", None),
    ("index.docker.io/library/nginx", "docker.io/library/nginx", "nginx", None, None),
    ("docker.io/node:lts-alpine3.16", "docker.io/library/node", "node", "lts-alpine3.16", None),
    (
        "local-only/base-python-cpu:latest",
        "docker.io/local-only/base-python-cpu",
        "local-only/base-python-cpu",
        "latest",
        None,
    ),
    ("local-only/base", "docker.io/local-only/base", "local-only/base", None, None),
    ("localhost/api", "localhost/api", "localhost/api", None, None),
    (
        "localhost:5000/acme/api:2.3.0",
        "localhost:5000/acme/api",
        "localhost:5000/acme/api",
        "2.3.0",
        None,
    ),
    ("127.0.0.1:5000/x/y", "127.0.0.1:5000/x/y", "127.0.0.1:5000/x/y", None, None),
    (
        "quay.io/jupyterhub/k8s-hub:4.0.0-beta.1",
        "quay.io/jupyterhub/k8s-hub",
        "quay.io/jupyterhub/k8s-hub",
        "4.0.0-beta.1",
        None,
    ),
    (
        "registry.example.com:443/a/b/c/d:v1",
        "registry.example.com:443/a/b/c/d",
        "registry.example.com:443/a/b/c/d",
        "v1",
        None,
    ),
    (
        "ghcr.io/org/base-python-cpu-3.10:1",
        "ghcr.io/org/base-python-cpu-3.10",
        "ghcr.io/org/base-python-cpu-3.10",
        "1",
        None,
    ),
    (f"postgres@{D}", "docker.io/library/postgres", "postgres", None, D),
    (f"postgres:16@{D}", "docker.io/library/postgres", "postgres", "16", D),
    (
        f"localhost:5000/acme/api:1@{D}",
        "localhost:5000/acme/api",
        "localhost:5000/acme/api",
        "1",
        D,
    ),
    ("Upper/name", "Upper/name", "Upper/name", None, None),  # an upper-case first part: a domain
    ("a__b/c--d/e.f_g", "docker.io/a__b/c--d/e.f_g", "a__b/c--d/e.f_g", None, None),
    ("[::1]:5000/x", "[::1]:5000/x", "[::1]:5000/x", None, None),
    ("my-registry:5000/x", "my-registry:5000/x", "my-registry:5000/x", None, None),
]


@pytest.mark.parametrize(("text", "repository", "familiar", "tag", "digest"), NORMALISE)
def test_normalises_as_docker_does(
    text: str, repository: str, familiar: str, tag: str | None, digest: str | None
) -> None:
    ref = references.parse(text)
    assert (ref.repository, ref.familiar_repository, ref.tag, ref.digest) == (
        repository,
        familiar,
        tag,
        digest,
    )


INVALID = [
    "",
    "UPPER",
    "docker.io/Library/nginx",
    "nginx:",
    "nginx:-bad",
    "nginx@sha256:short",
    "a" * 64,  # an image ID
    "-leading/x",
    "x//y",
    "x/",
    "${RUNTIME}",
    "local-only/base:lat est",
]


@pytest.mark.parametrize("text", INVALID)
def test_refuses_what_docker_refuses(text: str) -> None:
    with pytest.raises(ReferenceError):
        references.parse(text)
    assert references.try_parse(text) is None


# (reference, image it names or None) for a project with registry localhost:5000/acme,
# local prefix local-only, and images nginx, postgres, base-python-cpu, api, node.
NAMES = ["nginx", "postgres", "base-python-cpu", "api", "node", "base-python-cpu-3.10"]
PREFIXED = [
    ("localhost:5000/acme/api", "api"),
    ("localhost:5000/acme/api:2.3.0", "api"),
    (f"localhost:5000/acme/api@{D}", "api"),
    ("localhost:5000/acme/api:latest", "api"),
    ("local-only/base-python-cpu:latest", "base-python-cpu"),
    ("docker.io/local-only/base-python-cpu", "base-python-cpu"),
    ("local-only/base-python-cpu-3.10:latest", "base-python-cpu-3.10"),
    ("nginx:1.29.3", None),  # Docker Hub's nginx, not ours: bare names are off with prefixes
    ("docker.io/library/nginx", None),
    ("postgres:16", None),
    ("docker.io/node:lts-alpine3.16", None),
    ("localhost:5000/other/api", None),
    ("localhost:5001/acme/api", None),
    ("local-only/unknown:1", None),
    ("local-only/api/extra", None),
    ("localhost:5000/acme", None),
    ("quay.io/acme/api", None),
    ("${BASE}", None),
    ("", None),
]


@pytest.mark.parametrize(("text", "name"), PREFIXED)
def test_project_images_with_local_prefixes(text: str, name: str | None) -> None:
    project = ProjectImages(NAMES, "localhost:5000/acme", ["local-only"], bare_names=False)
    assert project.match(text) == name


BARE = [
    ("api", "api"),
    ("api:7", "api"),
    ("docker.io/library/api", "api"),
    ("library/nginx:1", "nginx"),
    ("localhost:5000/acme/api:1", "api"),
    ("acme/api", None),
    ("localhost/api", None),
]


@pytest.mark.parametrize(("text", "name"), BARE)
def test_project_images_with_bare_names(text: str, name: str | None) -> None:
    project = ProjectImages(NAMES, "localhost:5000/acme", (), bare_names=True)
    assert project.match(text) == name


def test_registry_and_prefix_forms() -> None:
    assert references.repository_prefix("localhost:5000/acme/") == "localhost:5000/acme"
    assert references.repository_prefix("local-only") == "docker.io/local-only"
    assert references.repository_prefix("quay.io") == "quay.io"
    # a Docker Hub organisation as the registry
    assert ProjectImages(["api"], "acme", bare_names=False).match("docker.io/acme/api:1") == "api"
    with pytest.raises(ReferenceError):
        references.repository_prefix("Bad Prefix")


@pytest.mark.parametrize(
    ("prefix", "host", "loopback"),
    [
        ("localhost:5000/acme", "localhost:5000", True),
        ("oci://127.0.0.1:5001/charts", "127.0.0.1:5001", True),
        ("[::1]:5000/acme", "[::1]:5000", True),
        ("ghcr.io/acme", "ghcr.io", False),
        ("acme", "docker.io", False),
        ("oci://registry.example/charts/", "registry.example", False),
        ("127.example.com/acme", "127.example.com", False),
    ],
)
def test_registry_host_and_loopback(prefix: str, host: str, loopback: bool) -> None:
    assert references.registry_host(prefix) == host
    assert references.is_loopback(host) is loopback


def test_name_and_tag_keeps_registry_ports() -> None:
    assert references.name_and_tag("localhost:5000/acme/api:1.0") == (
        "localhost:5000/acme/api",
        "1.0",
    )
    assert references.name_and_tag("localhost:5000/acme/api") == ("localhost:5000/acme/api", None)
    assert references.name_and_tag("r/a:1@sha256:" + "a" * 64) == ("r/a", "1")

import hashlib
import io
import re
import tarfile
from pathlib import Path

import pytest

from buildkit_tasks import charts
from buildkit_tasks.errors import ConfigError

REFS = {"api": ("reg/acme/api", "1.2.3"), "worker": ("reg/acme/worker", "1.2.3")}


def values(text: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    p = tmp_path / "values.yaml"
    p.write_text(text)
    return charts.load_yaml(p), p


def test_image_values_set_repository_and_tag_or_the_whole_reference(tmp_path: Path) -> None:
    data, path = values(
        "# top comment\napi:\n  image:\n    repository: acme/api  # placeholder\n"
        '    tag: ""\n  replicas: 2\nworkerImage: "x"\n',
        tmp_path,
    )
    charts.set_image_values(data, {"api.image": REFS["api"], "workerImage": REFS["worker"]}, "w")
    charts.dump_yaml(data, path)
    text = path.read_text()
    assert "# top comment" in text and "# placeholder" in text  # comments survive
    again = charts.load_yaml(path)
    assert again["api"]["image"]["repository"] == "reg/acme/api"
    assert again["api"]["image"]["tag"] == "1.2.3" and again["api"]["replicas"] == 2
    assert again["workerImage"] == "reg/acme/worker:1.2.3"
    assert "name" not in again["api"]["image"]  # only the keys the chart has


def test_image_values_like_chartpress_name_key_list_indexes_and_layout(tmp_path: Path) -> None:
    # shaped like zero-to-jupyterhub: `name` (its schema forbids `repository`), a list of
    # profiles indexed by number, sequences indented by 4 with an offset of 2
    text = (
        "hub:\n  image:\n    name: quay.io/jupyterhub/k8s-hub  # hub\n"
        '    tag: "set-by-chartpress"\n'
        "singleuser:\n  profileList:\n    - display_name: default\n"
        "      kubespawner_override:\n"
        '        image: "quay.io/jupyterhub/k8s-singleuser-sample:set-by-chartpress"\n'
    )
    data, path = values(text, tmp_path)
    charts.set_image_values(
        data,
        {
            "hub.image": ("reg/k8s-hub", "4.0.0-0.dev.git.7.habc1234"),
            "singleuser.profileList.0.kubespawner_override.image": ("reg/k8s-s", "1.0"),
        },
        "values.yaml",
    )
    charts.dump_yaml(data, path)
    one_space = re.compile(r" +#")  # ruamel keeps a comment's column
    assert one_space.sub(" #", path.read_text()) == text.replace(
        "name: quay.io/jupyterhub/k8s-hub  # hub", "name: reg/k8s-hub # hub"
    ).replace('"set-by-chartpress"\n', '"4.0.0-0.dev.git.7.habc1234"\n', 1).replace(
        "quay.io/jupyterhub/k8s-singleuser-sample:set-by-chartpress", "reg/k8s-s:1.0"
    )


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        ("api: 3\n", "api.image", "'api.image': no 'image' under api"),
        ("api: 3\n", "api", "'api' holds int"),
        ("api:\n  image: {}\n", "api.imag", "'api.imag': no 'imag' under api"),  # a typo
        ("api:\n  image:\n    tag: x\n", "api.image", "neither name nor repository"),
        ("l:\n  - a\n", "l.3", "'l.3': no '3' under l"),
        ("l:\n  - a\n", "l.x", "no 'x' under l"),
        ("api: null\n", "api", "holds NoneType"),
    ],
)
def test_image_values_errors_name_the_file_and_path(
    tmp_path: Path, text: str, path: str, message: str
) -> None:
    data, _ = values(text, tmp_path)
    before = dict(data)
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        charts.set_image_values(data, {path: REFS["api"]}, "charts/x/values.yaml")
    assert str(err.value).startswith("charts/x/values.yaml: ")
    assert dict(data) == before  # nothing added


def test_reproducible_archive_ignores_times_owners_and_order(tmp_path: Path) -> None:
    def helm_like(order: list[str], mtime: int, uid: int) -> Path:
        path = tmp_path / f"in-{mtime}.tgz"
        with tarfile.open(path, "w:gz") as tar:
            for name in order:
                info = tarfile.TarInfo(name)
                data = name.encode()
                info.size, info.mtime, info.uid, info.uname = len(data), mtime, uid, "someone"
                info.mode = 0o664
                tar.addfile(info, io.BytesIO(data))
        return path

    a, b = tmp_path / "a.tgz", tmp_path / "b.tgz"
    charts.reproducible(helm_like(["c/Chart.yaml", "c/values.yaml"], 1000, 1), a, 1700000000)
    charts.reproducible(helm_like(["c/values.yaml", "c/Chart.yaml"], 2000, 7), b, 1700000000)
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
    with tarfile.open(a) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["c/Chart.yaml", "c/values.yaml"]
    assert {(m.mtime, m.uid, m.uname, m.mode) for m in members} == {(1700000000, 0, "", 0o644)}


def test_oci_target_and_plain_http() -> None:
    from buildkit_tasks.config import Settings

    s = Settings(root=Path("/p"), registry="localhost:5000/acme")
    assert charts.oci_target(s) == "oci://localhost:5000/acme/charts"
    assert charts.plain_http("oci://localhost:5000/acme/charts")
    assert charts.plain_http("oci://127.0.0.1:5001/x")
    assert not charts.plain_http("oci://ghcr.io/acme")
    with pytest.raises(ConfigError, match="set \\[tool.buildkit\\] registry"):
        charts.oci_target(Settings(root=Path("/p")))

"""Issue-3 behaviour against the real engine: cached rebuilds, failure isolation in deep
chains, the plan as JSON, Ctrl-C."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import commit_all
from tests.fixtures import buildable_platform

from .conftest import Project, boot_seconds, docker, run_steps_left

REG = "localhost:5000/acme"


def statuses(project: Project) -> dict[str, str]:
    return {i["name"]: i["status"] for i in project.report()["images"]}


def test_unchanged_images_are_cached_and_changes_rebuild_what_they_touch(
    project: Project,
) -> None:
    project.inv("image.build")
    assert set(statuses(project).values()) == {"succeeded"}
    first_ids = {i["name"]: i["image_id"] for i in project.report()["images"]}

    res = project.inv("image.build")
    assert statuses(project) == {"base": "cached", "api": "cached", "worker": "cached"}
    assert "image base: cached" in res.stdout
    assert {i["name"]: i["image_id"] for i in project.report()["images"]} == first_ids

    (project.path / "images" / "worker" / "work.sh").write_text("#!/bin/sh\necho changed\n")
    project.inv("image.build")
    assert statuses(project) == {"base": "cached", "api": "cached", "worker": "succeeded"}

    # two images changed, not their base: both rebuilt (one bake), the base reused as it is
    (project.path / "images" / "worker" / "work.sh").write_text("#!/bin/sh\necho twice\n")
    page = project.path / "images" / "api" / "page.html.in"
    page.write_text(page.read_text() + "<p>more</p>\n")
    project.inv("image.build")
    assert statuses(project) == {"base": "cached", "api": "succeeded", "worker": "succeeded"}
    refs = {i["name"]: i["references"][0] for i in project.report()["images"]}
    assert docker("run", "--rm", refs["worker"]).stdout.strip() == "twice"
    assert "<p>more</p>" in docker("run", "--rm", refs["api"]).stdout
    assert (
        docker("image", "inspect", refs["base"], "--format", "{{.Id}}").stdout.strip()
        == (first_ids["base"])
    )

    # a file the base's .dockerignore leaves out changes nothing
    (project.path / "images" / "base" / "README").write_text("not in the build context\n")
    project.inv("image.build")
    assert set(statuses(project).values()) == {"cached"}

    # a build arg of the base changes the base and everything built on it
    dockerfile = project.path / "images" / "base" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "LABEL extra=1\n")
    project.inv("image.build")
    assert set(statuses(project).values()) == {"succeeded"}

    project.inv("image.build", "--force")
    assert set(statuses(project).values()) == {"succeeded"}


def test_a_new_commit_reuses_images_under_the_new_version(project: Project) -> None:
    project.inv("image.build")
    first = project.report()
    before = {i["name"]: i["image_id"] for i in first["images"]}
    (project.path / "NEWS").write_text("docs only\n")
    project.commit("docs only")
    res = project.inv("image.build")
    report = project.report()
    tag = report["version"]["docker_tag"]
    assert tag.startswith("2.3.1.dev1-")
    assert set(statuses(project).values()) == {"cached"}, (res.stdout, first, report)
    for name, image_id in before.items():
        inspect = json.loads(docker("image", "inspect", f"{REG}/{name}:{tag}").stdout)[0]
        assert inspect["Id"] == image_id
        latest = json.loads(docker("image", "inspect", f"{REG}/{name}:latest").stdout)[0]
        assert latest["Id"] == image_id


def test_image_graph_json_is_the_plan_and_nothing_else(project: Project) -> None:
    out = project.inv("image.graph", "--format", "json").stdout
    data = json.loads(out)
    assert data == {
        "images": [
            {
                "name": "base",
                "context": "images/base",
                "dockerfile": "Dockerfile",
                "depends_on": [],
            },
            {
                "name": "api",
                "context": "images/api",
                "dockerfile": "Dockerfile",
                "depends_on": ["base"],
            },
            {
                "name": "worker",
                "context": "images/worker",
                "dockerfile": "Dockerfile",
                "depends_on": ["base"],
            },
        ],
        "order": ["base", "api", "worker"],
    }
    assert not (project.path / "dist").exists()
    dot = project.inv("image.graph", "--format", "dot").stdout
    assert '"base" -> "api";' in dot and '"base" -> "worker";' in dot


def chain_project(tmp_path: Path, busybox: dict[str, Path], base_run: str) -> Project:
    """base <- l1 <- l2 <- l3 <- l4 (4 deep), two leaves on l1, and an independent island."""
    root = tmp_path / "chain"
    run_id = uuid.uuid4().hex
    images = {
        "base": f"FROM scratch\nCOPY busybox /bin/busybox\n"
        f'RUN ["/bin/busybox", "sh", "-c", "{base_run}"]\n',
        "island": "FROM scratch\nCOPY busybox /bin/busybox\n",
        "l1": "FROM base\n",
        "l2": "FROM l1\n",
        "l3": "FROM l2\n",
        "l4": "FROM l3\n",
        "leaf1": "FROM l1\n",
        "leaf2": "FROM l1\n",
    }
    table = '[tool.buildkit]\nregistry = "localhost:5000/chain"\n'
    for name, text in images.items():
        (root / name).mkdir(parents=True)
        (root / name / "Dockerfile").write_text(text + f"LABEL run={run_id}\n")
        if "COPY busybox" in text:
            shutil.copy2(busybox["amd64"], root / name / "busybox")
        table += f'[tool.buildkit.images.{name}]\ncontext = "{name}"\n'
    (root / "pyproject.toml").write_text(table)
    (root / "tasks.py").write_text("from buildkit_tasks import ns  # noqa: F401\n")
    commit_all(root, "chain")
    return Project(root)


@pytest.mark.parametrize(
    "flags",
    [
        ["--parallel", "1"],
        ["--parallel", "4"],
        ["--no-batch", "--parallel", "1"],
        ["--no-batch", "--parallel", "2"],
        ["--no-batch", "--parallel", "4"],
    ],
    ids=lambda f: " ".join(f),
)
def test_failed_base_under_a_deep_chain_reports_every_status(
    tmp_path: Path, docker_engine: None, busybox: dict[str, Path], flags: list[str]
) -> None:
    p = chain_project(tmp_path, busybox, "exit 3")
    res = p.inv("image.build", *flags, check=False)
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    got = statuses(p)
    assert got["base"] == "failed" and got["island"] == "succeeded"
    for name in ("l1", "l2", "l3", "l4", "leaf1", "leaf2"):
        assert got[name] == "skipped", name
    report = {i["name"]: i for i in p.report()["images"]}
    assert report["l4"]["error"] == "base failed"  # the reason names the image that failed
    assert report["l1"]["error"] == "base failed"
    assert "exit code: 3" in report["base"]["log_tail"]
    assert "images:" in res.stdout and "skipped" in res.stdout  # the console summary
    assert "exit code: 3" in res.stderr  # the failure's last log lines


def test_fail_fast_starts_nothing_new(
    tmp_path: Path, docker_engine: None, busybox: dict[str, Path]
) -> None:
    p = chain_project(tmp_path, busybox, "exit 3")
    res = p.inv("image.build", "--no-batch", "--parallel", "1", "--fail-fast", check=False)
    assert res.returncode == 1
    got = statuses(p)
    assert got["base"] == "failed"
    # base has the longest remaining path, so it ran first; nothing started after it failed
    assert got["island"] == "skipped"
    island = {i["name"]: i for i in p.report()["images"]}["island"]
    assert "--fail-fast" in island["error"]


@pytest.mark.parametrize("batch", ["--batch", "--no-batch"])
def test_ctrl_c_stops_builds_and_exits_130(
    tmp_path: Path, docker_engine: None, busybox: dict[str, Path], batch: str
) -> None:
    marker = uuid.uuid4().hex[:12]
    p = chain_project(tmp_path, busybox, f"sleep 120; echo {marker}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "image.build", batch],
        cwd=p.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = p.path / "dist" / "logs" / ("bake.log" if batch == "--batch" else "base.log")
    # Ctrl-C while the RUN step runs: wait for its process, not just for the log line (an
    # engine without moby/buildkit#5106 misses a cancellation that comes while the step is
    # starting; run_steps_left tells that race apart)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _running(marker):
        time.sleep(0.1)
    assert "sleep 120" in log.read_text(), "the base build never reached its RUN step"
    assert _running(marker), "the RUN step never started"
    started = time.monotonic()
    signalled = boot_seconds()
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # say what was still running, then clean up
        tree = subprocess.run(["ps", "-eo", "pid,ppid,stat,args"], capture_output=True, text=True)
        proc.kill()
        pytest.fail(f"still running 60 s after SIGINT:\n{tree.stdout}", pytrace=False)
    assert proc.returncode == 130, (out, err)
    assert time.monotonic() - started < 30
    assert "Traceback" not in err and "interrupted" in err
    # the build was stopped: no buildx client and no RUN step of it is left
    assert run_steps_left(marker, signalled) == []
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(p.path) not in ps
    # nothing half-made: no image, no report, no temporary files
    assert docker(
        "image", "inspect", "localhost:5000/chain/base:latest", check=False
    ).returncode != 0 or _not_from_this_run(p)
    assert not (p.path / "dist" / "build-report.json").exists()
    assert not [f for f in (p.path / "dist").rglob("*") if f.name.endswith(".tmp")]


def _running(marker: str) -> bool:
    ps = subprocess.run(["ps", "-eo", "args="], capture_output=True, text=True).stdout
    return any(marker in ln and ln.startswith("/bin/busybox") for ln in ps.splitlines())


def _not_from_this_run(p: Project) -> bool:
    labels = json.loads(docker("image", "inspect", "localhost:5000/chain/base:latest").stdout)[0][
        "Config"
    ]["Labels"]
    run = (p.path / "base" / "Dockerfile").read_text().split("LABEL run=")[1].strip()
    return labels.get("run") != run


def test_push_twice_is_cached_the_second_time(project: Project, registry: str) -> None:
    project.inv("image.push", "--name", "worker")
    assert statuses(project) == {"base": "succeeded", "worker": "succeeded"}
    project.inv("image.push", "--name", "worker")
    assert statuses(project) == {"base": "cached", "worker": "cached"}


def aliases_in(project: str) -> set[str]:
    """The aliases in the engine of ``project`` (its ID in the alias references)."""
    left = docker(
        "images", "--format", "{{.Repository}}:{{.Tag}}", f"localhost:1/buildkit-tasks/{project}/*"
    )
    return set(left.stdout.split())


def test_a_platform_shaped_graph_builds_in_batches_under_sanitised_keys(
    tmp_path: Path, docker_engine: None, busybox: dict[str, Path]
) -> None:
    """Dotted and long names (``base-python-cpu-3.8``, ``service.00-...``, ``plugin-00.v2``),
    ``COPY --from`` edges and chains four deep, cut into batches of 5: every image is built
    by a bake (none falls back to a build of its own), dependents across batches build on
    what the earlier batch made."""
    g = buildable_platform.make(
        tmp_path / "platform", uuid.uuid4().hex, roots=4, services=4, plugins=3, jobs=2
    )
    commit_all(g.root, "platform")
    p = Project(g.root)
    p.configure("batch_size = 5")
    res = p.inv("image.build")
    assert "one by one" not in res.stderr and "retrying" not in res.stderr, res.stderr
    images = {i["name"]: i for i in p.report()["images"]}
    assert set(images) == set(g.order)
    assert {i["status"] for i in images.values()} == {"succeeded"}
    assert all(i.get("batch") for i in images.values()), images
    logs = sorted(f.name for f in (g.root / "dist" / "logs").glob("bake*.log"))
    assert logs == ["bake-2.log", "bake-3.log", "bake.log"]  # 13 images: 5 + 5 + 3
    # a job four deep carries its whole chain, and a COPY --from edge its file
    job = g.levels[3][0]
    ref = images[job]["references"][0]
    text = docker("run", "--rm", ref, "/bin/busybox", "cat", "/id", "/from-3").stdout
    chain = [job]
    while g.deps[chain[-1]]:
        chain.append(g.deps[chain[-1]][0])
    assert all(name in text for name in chain), (chain, text)
    assert g.deps[job][1] in text  # /from-3 is the other plugin's /id
    # batches keep chains together, and exactly what a later batch builds on was named for
    # it by the bake that made it (no tag call), under an alias of this project kept for
    # the next run
    batch_of, named = {}, set()
    for i, log in enumerate(logs):
        text = (g.root / "dist" / "logs" / log).read_text()
        for name in re.findall(r"naming to localhost:5000/platform/([^:\s]+):", text):
            batch_of[name] = i
        named |= set(re.findall(r"naming to (localhost:1/buildkit-tasks/[^:\s]+:\w+)", text))
    assert set(batch_of) == set(g.order)
    crossing = {d for n in g.order for d in g.deps[n] if batch_of[d] != batch_of[n]}
    assert len(crossing) < len({d for n in g.order for d in g.deps[n]}) / 2, batch_of
    assert {r.rpartition(":")[0].rpartition("/")[2] for r in named} == crossing, named
    (project,) = {r.split("/")[2] for r in named}
    assert aliases_in(project) == named
    # with nothing changed, nothing is built again, and the aliases stay
    p.inv("image.build")
    assert {i["status"] for i in p.report()["images"]} == {"cached"}
    assert aliases_in(project) == named
    # an edit of a base named across batches: it builds again, its alias for the old input
    # key is removed (it held the old image), and no image keeps two aliases
    edited = sorted(crossing)[0]
    old = {r for r in named if r.rpartition(":")[0].endswith(f"/{edited}")}
    dockerfile = g.root / "images" / edited / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + 'LABEL test.edited="1"\n')
    p.inv("image.build")
    assert statuses(p)[edited] == "succeeded"
    now = aliases_in(project)
    assert old and not old & now, (old, now)
    names = [r.rpartition(":")[0] for r in now]
    assert len(names) == len(set(names)), now

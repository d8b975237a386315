import io
import re
from pathlib import Path

import pytest

from buildkit_tasks import progress
from buildkit_tasks.images import ImageResult

BAKE = """#1 [internal] load local bake definitions
#2 [base internal] load build definition from Dockerfile
#9 [base 1/2] COPY busybox-amd64 /bin/busybox
#10 [api build 1/3] COPY page.html.in /src/page.html.in
#10 DONE 0.1s
#11 [worker 2/3] RUN make
"""


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_choose_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    assert progress.choose(stream=Tty()) == "live"
    assert progress.choose(stream=io.StringIO()) == "plain"
    assert progress.choose(quiet=True, stream=Tty()) == "quiet"
    assert progress.choose(verbose=True, stream=Tty()) == "verbose"
    monkeypatch.setenv("CI", "true")
    assert progress.choose(stream=Tty()) == "plain"


def test_log_tail_follows_bake_and_image_logs(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "bake.log").write_text(BAKE)
    (logs / "other.log").write_text("#3 [1/1] RUN true\n")  # not an image of this run
    tail = progress.LogTail(logs, ["base", "api", "worker"])
    assert tail.poll() == [
        ("base", "[1/2] COPY busybox-amd64 /bin/busybox"),
        ("api", "[build 1/3] COPY page.html.in /src/page.html.in"),
        ("worker", "[2/3] RUN make"),
    ]
    assert tail.poll() == []  # nothing new
    with (logs / "bake.log").open("a") as fh:
        fh.write("#12 [api 2/3] RUN ./configure\n#13 [api 3/3] RU")  # a partial line waits
    assert tail.poll() == [("api", "[2/3] RUN ./configure")]
    (logs / "api.log").write_text("#5 [stage-1 2/2] COPY --from=build /x /y\n")
    assert tail.poll() == [("api", "[stage-1 2/2] COPY --from=build /x /y")]
    assert tail.step["api"] == "[stage-1 2/2] COPY --from=build /x /y"
    # the next bake empties its log: read from its start again
    (logs / "bake.log").write_text("#2 [worker 3/3] RUN ./install\n")
    assert tail.poll() == [("worker", "[3/3] RUN ./install")]


def test_plain_lines_are_timestamped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with progress.Progress("plain", ["base"], tmp_path) as view:
        view.on_start("base")
        view.on_done(ImageResult("base", "succeeded", ["r/base:1"], seconds=1.25))
        view.on_done(ImageResult("api", "failed", error="boom"))
    out, err = capsys.readouterr()
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d image base: building\n"
        r"\d\d:\d\d:\d\d image base: succeeded in 1\.2s -> r/base:1\n",
        out,
    )
    assert re.fullmatch(r"\d\d:\d\d:\d\d image api: failed: boom\n", err)


def test_quiet_prints_only_failures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with progress.Progress("quiet", ["base"], tmp_path) as view:
        view.on_start("base")
        view.on_done(ImageResult("base", "succeeded", ["r/base:1"]))
        view.on_done(ImageResult("api", "failed", error="boom"))
    out, err = capsys.readouterr()
    assert out == "" and "api: failed: boom" in err


def test_live_table_rows(tmp_path: Path) -> None:
    from rich.console import Console

    (tmp_path / "base.log").write_text("#4 [2/2] RUN make all\n")
    (tmp_path / "bake.log").write_text(
        "#9 [api build 1/3] COPY x /y\n#10 [api] exporting to image\n"
    )
    view = progress.Progress("plain", ["base", "api"], tmp_path)
    view.on_start("base")
    view.on_start("api")
    view.tail.poll()
    console = Console(record=True, width=100)
    console.print(view.render())
    text = console.export_text()
    assert re.search(r"base\s+building\s+\d+\.\ds\s+\[2/2\] RUN make all", text), text
    assert re.search(r"api\s+building\s+\d+\.\ds\s+exporting to image", text), text
    view.tail.step.pop("api")
    (tmp_path / "bake.log").write_text("#9 [api build 1/3] COPY x /y\n")
    view.tail._pos.clear()
    view.tail.poll()
    console = Console(record=True, width=100)
    console.print(view.render())
    assert "[build 1/3] COPY x /y" in console.export_text()  # brackets are text, not markup

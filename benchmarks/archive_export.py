"""archive.export against `docker save` and `docker save | gzip`, on at least 1 GB of images.

    python benchmarks/archive_export.py [--images N] [--mb-per-image M] [--reps R]

Builds N images FROM scratch, each one layer of M MiB of random bytes (default 4 x 288 MiB,
about 1.2 GB; made locally, nothing pulled), then measures, interleaved in the same run:
`docker save -o` (the floor), buildkit-tasks' export with compression auto (which includes its
sha256) and zstd, and `docker save | gzip`. Prints medians and the ratios ours / docker save
(target <= 1.15) and ours / docker save | gzip. Removes its images at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from buildkit_tasks import archive  # noqa: E402
from buildkit_tasks.config import Settings  # noqa: E402
from buildkit_tasks.runner import Runner  # noqa: E402


def make_images(work: Path, count: int, mb: int) -> list[str]:
    refs = []
    tag = uuid.uuid4().hex[:8]
    for i in range(count):
        ctx = work / f"img{i}"
        ctx.mkdir()
        with (ctx / "blob").open("wb") as fh:
            for _ in range(mb):
                fh.write(os.urandom(1 << 20))
        (ctx / "Dockerfile").write_text("FROM scratch\nCOPY blob /blob\n")
        ref = f"localhost:5000/bench/archive{i}:{tag}"
        subprocess.run(
            ["docker", "buildx", "build", "--load", "-q", "-t", ref, str(ctx)],
            check=True,
            capture_output=True,
        )
        shutil.rmtree(ctx)
        refs.append(ref)
    return refs


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--mb-per-image", type=int, default=288)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-archive-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        print(f"making {args.images} images of {args.mb_per_image} MiB random data ...", flush=True)
        refs = make_images(work, args.images, args.mb_per_image)
        out = work / "out"
        out.mkdir()
        settings = Settings(root=work, output_dir=out)
        runner = Runner()

        def save() -> None:
            subprocess.run(["docker", "save", "-o", str(work / "save.tar"), *refs], check=True)

        def save_gzip() -> None:
            with (work / "save.tar.gz").open("wb") as fh:
                p1 = subprocess.Popen(["docker", "save", *refs], stdout=subprocess.PIPE)
                p2 = subprocess.run(["gzip", "-c"], stdin=p1.stdout, stdout=fh, check=True)
                assert p1.stdout is not None
                p1.stdout.close()
                assert p1.wait() == 0 and p2.returncode == 0

        results: dict[str, list[float]] = {}
        try:
            save()  # warm the engine's caches once
            size = (work / "save.tar").stat().st_size
            print(f"docker save output: {size / 1e9:.2f} GB", flush=True)
            for _ in range(args.reps):
                for name, fn in (
                    ("docker save", save),
                    ("ours (auto)", lambda: archive.export(settings, refs, runner, "auto")),
                    ("ours (zstd)", lambda: archive.export(settings, refs, runner, "zstd")),
                    ("docker save | gzip", save_gzip),
                ):
                    results.setdefault(name, []).append(timed(fn))
                    print(f"  {name:<20} {results[name][-1]:6.2f} s", flush=True)
            auto = archive.export(settings, refs, runner, "auto")
        finally:
            subprocess.run(["docker", "rmi", "-f", *refs], capture_output=True)
    med = {k: statistics.median(v) for k, v in results.items()}
    print(
        f"\nmedians over {args.reps} runs ({size / 1e9:.2f} GB saved; "
        f"auto chose {auto.compression}):"
    )
    for k, v in med.items():
        print(f"  {k:<20} {v:6.2f} s")
    base, gz = med["docker save"], med["docker save | gzip"]
    print(
        f"  ratio ours (auto) / docker save        {med['ours (auto)'] / base:5.2f}"
        "  (target <= 1.15)"
    )
    print(f"  ratio ours (zstd) / docker save        {med['ours (zstd)'] / base:5.2f}")
    print(f"  ratio ours (auto) / docker save | gzip {med['ours (auto)'] / gz:5.2f}")


if __name__ == "__main__":
    main()

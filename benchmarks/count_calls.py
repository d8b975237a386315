"""Run ``inv ARGS...`` in this process and count what it asks the engine, as a real run does
(the engine on its default socket, so the containerd path is taken where it applies):

- Docker Engine API requests made through the docker SDK or, for reads from the local
  engine, the standard library (``buildkit_tasks.engines.localapi``): ``api``, of which image
  lists (``GET /images/json``: ``image_lists``),
- commands started whose program is ``docker`` or the buildx plugin run by itself
  (``docker-buildx``; the CLI and buildx ask the engine too),
- ``ctr`` commands (containerd's image list).

    python benchmarks/count_calls.py image.build

Prints invoke's own output, then one last line ``calls {"api": N, "image_lists": N,
"docker": N, "ctr": N}`` on stderr; exits with invoke's exit code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from typing import Any


def main() -> int:
    counts: Counter[str] = Counter(api=0, image_lists=0, docker=0, ctr=0)

    from docker.api.client import APIClient

    send = APIClient.send

    def counted_send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        counts["api"] += 1
        if request.method == "GET" and "/images/json" in request.url:
            counts["image_lists"] += 1
        return send(self, request, *args, **kwargs)

    APIClient.send = counted_send  # type: ignore[method-assign]
    from buildkit_tasks.engines import localapi

    request = localapi.request

    def counted_request(method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        counts["api"] += 1
        if method == "GET" and path == "/images/json":
            counts["image_lists"] += 1
        return request(method, path, *args, **kwargs)

    localapi.request = counted_request  # type: ignore[assignment]
    popen_init = subprocess.Popen.__init__

    def counted_init(self: Any, args: Any, *rest: Any, **kwargs: Any) -> None:
        program = os.path.basename(str(args[0] if isinstance(args, list | tuple) else args))
        if program in ("docker", "ctr"):
            counts[program] += 1
        elif program == "docker-buildx":  # ``docker buildx ...`` run as the plugin itself
            counts["docker"] += 1
        popen_init(self, args, *rest, **kwargs)

    subprocess.Popen.__init__ = counted_init  # type: ignore[method-assign]

    from invoke.main import program

    code = 0
    try:
        program.run(["inv", *sys.argv[1:]])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    print("calls " + json.dumps(dict(counts)), file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())

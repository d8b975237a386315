from __future__ import annotations

from pathlib import Path

import pytest

from buildkit_tasks.engines import localapi


@pytest.fixture(autouse=True)
def no_local_engine_socket(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Unit tests never reach this machine's engine: the stdlib reader of its socket
    (:mod:`buildkit_tasks.engines.localapi`) points nowhere, so reads fall back to the SDK
    client each test fakes."""
    monkeypatch.setattr(localapi, "SOCKET", str(tmp_path / "no-engine.sock"))

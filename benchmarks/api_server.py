"""A fresh REST API server on a free loopback port, for the benchmarks that load it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.helpers import free_port, stop_process, wait_for

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def api_server(work: Path, settings_env: dict[str, str]
               ) -> Iterator[tuple[str, subprocess.Popen[Any]]]:
    """``ctnode serve`` with ``work`` as its work folder and ``settings_env``
    (``CTNODE_...`` variables; the caller's own are dropped so that each run is alike),
    answering ``/health``; yields (base URL, process) and stops it by PID."""
    import httpx

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTNODE_")}
    env.update({"PYTHONPATH": str(REPO), "CTNODE_NODE__WORK_DIR": str(work),
                "CTNODE_LOG_LEVEL": "WARNING", **settings_env})
    server = subprocess.Popen([sys.executable, "-c", "from ctnode.cli import main; main()",
                               "serve", "--port", str(port)], env=env, cwd=work,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        def healthy() -> bool:
            try:
                return httpx.get(f"{url}/health", timeout=2).is_success
            except httpx.HTTPError:
                return False

        wait_for(healthy, 180, "the API")
        yield url, server
    finally:
        stop_process(server)

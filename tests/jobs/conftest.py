"""Fixtures of the job-queue tests: a real redis-server for the Celery back end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.jobs.redis_server import REDIS_SERVER, RedisServer


@pytest.fixture()
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server with AOF on a free 127.0.0.1 port, stopped by PID."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server not installed (bootstrap.sh test installs it)")
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()

"""A throw-away ``redis-server`` for tests and ``benchmarks/scale.py``.

Binds 127.0.0.1 on a free port, persists with AOF (``appendfsync always``:
every acknowledged write is on disk, so a killed server loses nothing), is
stopped by PID. Restarting it on the same folder replays the AOF.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import redis

from tests.helpers import free_port, kill_process, stop_process, wait_for

REDIS_SERVER = shutil.which("redis-server")


class RedisServer:
    """One redis-server process on a data folder; ``restart`` keeps folder and port."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        if REDIS_SERVER is None:
            raise RuntimeError("redis-server is not installed (Debian package redis-server)")
        self.data_dir = data_dir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        data_dir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        assert REDIS_SERVER is not None
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(self.port),
             "--dir", str(self.data_dir), "--appendonly", "yes", "--appendfsync", "always",
             "--save", "", "--protected-mode", "yes", "--daemonize", "no",
             "--logfile", str(self.data_dir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)

        def answers() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        try:
            wait_for(answers, 20, "redis-server to answer PING", every=0.05)
            # After a restart, wait until the AOF is replayed.
            wait_for(lambda: client.info("persistence").get("loading") == 0, 20,
                     "redis-server to load its AOF", every=0.05)
        finally:
            client.close()
        return self

    def kill(self) -> None:
        """SIGKILL: a crash, no chance to write anything more."""
        if self.proc is not None:
            kill_process(self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

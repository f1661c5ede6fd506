"""Limits before bodies (issue 15): key, size, admission (503 + Retry-After), read timeout.

Most tests drive the ASGI app directly with a ``receive`` that counts what
the app asked for, so "the body was never read" is observed, not inferred.
One test runs the real server and talks raw HTTP to it.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import api.app as app_module
from api.app import create_app
from ctnode.settings import Settings
from tests.api.test_app import _post, assert_failure_shape
from tests.helpers import free_port, stop_process, wait_for

CHUNK = 64 * 1024
PART_HEAD = (b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.zip"\r\n'
             b"Content-Type: application/zip\r\n\r\n")


class Body:
    """An ASGI ``receive`` that serves ``chunks`` chunks of 64 KB (then stalls if told)."""

    def __init__(self, chunks: int, stall: bool = False) -> None:
        self.chunks = chunks
        self.stall = stall
        self.calls = 0

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        if self.calls > self.chunks:
            if self.stall:
                await asyncio.sleep(3600)
            return {"type": "http.request", "body": b"", "more_body": False}
        head = PART_HEAD if self.calls == 1 else b""
        return {"type": "http.request", "body": head + b"\0" * CHUNK, "more_body": True}


def call(app: Any, path: str, headers: dict[str, str], body: Body) -> tuple[int, dict[str, str],
                                                                           bytes]:
    """One request through the ASGI app; returns status, headers and body of the answer."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "path": path, "raw_path": path.encode(), "query_string": b"",
             "scheme": "http", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 5000),
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, body, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    data = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return (start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, data)


FORM = {"content-type": "multipart/form-data; boundary=xyz"}


@pytest.fixture
def keyed(settings: Settings) -> Settings:
    settings.api.api_key = "s3cret"  # type: ignore[assignment]
    return settings


def test_key_is_checked_before_the_body_is_read(keyed: Settings) -> None:
    """Was: the whole body went to disk before the 401."""
    body = Body(chunks=10_000)
    status, _, _ = call(create_app(keyed), "/predict", {**FORM, "content-length": "655360000"},
                        body)
    assert status == 401
    assert body.calls == 0


def test_declared_size_above_the_limit_is_413_unread(settings: Settings) -> None:
    settings.api.max_upload_mb = 1
    body = Body(chunks=5000)
    status, _, data = call(create_app(settings), "/predict",
                           {**FORM, "content-length": str(300_000_000)}, body)
    assert status == 413
    assert body.calls == 0
    assert b'"upload_too_large"' in data


def test_undeclared_size_is_cut_at_the_limit(settings: Settings, tmp_path: Path) -> None:
    """A chunked body (no Content-Length) is read only up to the limit."""
    settings.api.max_upload_mb = 1
    settings.node.temp_dir = tmp_path / "temp"
    body = Body(chunks=5000)
    with TestClient(create_app(settings)):  # runs the start-up (temp folder)
        pass
    status, _, _ = call(create_app(settings), "/predict", FORM, body)
    assert status == 413
    assert body.calls * CHUNK <= 1_000_000 + 64 * 1024 + 2 * CHUNK
    assert list((tmp_path / "temp").iterdir()) == []


def test_stalled_body_times_out(settings: Settings) -> None:
    settings.api.body_read_timeout_s = 0.3
    body = Body(chunks=2, stall=True)
    t0 = time.monotonic()
    status, _, data = call(create_app(settings), "/predict", FORM, body)
    assert status == 408
    assert b'"body_timeout"' in data
    assert time.monotonic() - t0 < 5


def test_metrics_need_the_key_when_one_is_set(keyed: Settings) -> None:
    with TestClient(create_app(keyed)) as c:
        assert c.get("/health").status_code == 200
        assert c.get("/openapi.json").status_code == 200
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"X-API-Key": "s3cret"}).status_code == 200
        assert c.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_truncated_zip_is_a_malformed_upload(client: TestClient, small_study: Any,
                                             tmp_path: Path) -> None:
    """README: 400 for a malformed upload (was 422 'neither a ZIP ...')."""
    from tests.helpers import zip_folder

    data = zip_folder(small_study.root, tmp_path / "s.zip").read_bytes()
    r = _post(client, "/predict", "s.zip", data[: len(data) // 2])
    assert r.status_code == 400
    assert_failure_shape(r.json(), "corrupt_upload")


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def test_busy_node_sheds_load_with_503_and_retry_after(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """One study analysed, none waiting: the next request is answered at once, not queued."""
    settings.api.max_concurrent_jobs = 1
    settings.api.max_waiting_requests = 0
    entered, release = threading.Event(), threading.Event()
    real = app_module.run_pipeline

    def slow_pipeline(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(app_module, "run_pipeline", slow_pipeline)
    with TestClient(create_app(settings)) as c:
        first: list[Any] = []
        worker = threading.Thread(target=lambda: first.append(
            _post(c, "/predict", "a.zip", b"PK\x05\x06" + b"\0" * 18)))
        worker.start()
        try:
            assert entered.wait(30)
            t0 = time.monotonic()
            r = _post(c, "/predict", "b.zip", b"PK\x05\x06" + b"\0" * 18)
            assert time.monotonic() - t0 < 5
            assert r.status_code == 503
            assert int(r.headers["retry-after"]) >= 1
            assert_failure_shape(r.json(), "busy")
            assert c.get("/health").status_code == 200  # only predict requests are shed
        finally:
            release.set()
            worker.join(60)
        assert first and first[0].status_code == 400  # an empty archive, analysed in turn
        assert c.app.state.admission.admitted == 0  # type: ignore[attr-defined]


def _raw(port: int, head: bytes, body: bytes = b"", wait: float = 10.0) -> bytes:
    """Send ``head`` (+ ``body``) and return what the server answered before closing."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(head + body)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return out


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """``ctnode serve`` with a 1 MB upload limit, a key and a 1 s body timeout."""
    import os

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTNODE_")}
    env.update({"CTNODE_NODE__WORK_DIR": str(tmp_path / "var"),
                "CTNODE_API__MAX_UPLOAD_MB": "1", "CTNODE_API__API_KEY": "k",
                "CTNODE_API__BODY_READ_TIMEOUT_S": "1", "CTNODE_LOG_LEVEL": "WARNING"})
    proc = subprocess.Popen([sys.executable, "-c", "from ctnode.cli import main; main()",
                             "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def healthy() -> bool:
            if proc.poll() is not None:
                pytest.fail("the server exited")
            try:
                return _raw(port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close"
                                  b"\r\n\r\n", wait=2).startswith(b"HTTP/1.1 200")
            except OSError:
                return False

        wait_for(healthy, 60, "the API to answer /health", 0.5)
        yield port, tmp_path / "var" / "tmp"
    finally:
        stop_process(proc)


def test_real_server_answers_before_the_body(server: tuple[int, Path]) -> None:
    port, temp = server
    head = (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
            b"boundary=xyz\r\nContent-Length: 300000000\r\n")
    t0 = time.monotonic()
    assert _raw(port, head + b"\r\n", b"\0" * 1000).startswith(b"HTTP/1.1 401")
    assert _raw(port, head + b"X-API-Key: k\r\n\r\n", b"\0" * 1000).startswith(b"HTTP/1.1 413")
    assert time.monotonic() - t0 < 20  # answered without waiting for 300 MB
    slow = (b"POST /predict HTTP/1.1\r\nHost: x\r\nX-API-Key: k\r\nContent-Type: "
            b"multipart/form-data; boundary=xyz\r\nContent-Length: 5000\r\n\r\n")
    t0 = time.monotonic()
    answer = _raw(port, slow, b"--xyz\r\n", wait=15)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert time.monotonic() - t0 < 10  # closed after the 1 s read timeout
    assert [p for p in temp.iterdir()] == []

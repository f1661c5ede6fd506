"""Limits applied before a request body is read: key, size, admission, read timeout.

``RequestGuard`` is pure ASGI middleware (as production FastAPI services put
such checks): it answers from the request line and headers alone, so a
client without the key, with a body declared too large, or arriving when
the node is full is refused before one byte of its body is received.

* **Key**: when ``api.api_key`` is set, every route except ``GET /health``
  and the documentation needs ``X-API-Key`` (or ``Authorization: Bearer``,
  which Prometheus scrapers send): 401.
* **Size**: a ``Content-Length`` above ``api.max_upload_mb`` (plus room for
  the multipart framing) is 413 at once; bytes beyond it are never read,
  whatever the header said (chunked bodies included): 413.
* **Admission** (``/predict*``): at most ``max_concurrent_jobs`` studies are
  analysed and ``max_waiting_requests`` more admitted; a request beyond that
  is shed with 503 and ``Retry-After`` instead of waiting without bound.
* **Read timeout**: a body that stalls for ``api.body_read_timeout_s`` is
  408 and the connection is closed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
import threading
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ctnode.settings import ApiSettings

logger = logging.getLogger(__name__)

PREDICT_PATHS = frozenset({"/predict", "/predict_nifti"})
OPEN_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/redoc",
                        "/openapi.json"})
#: Multipart framing around the file: boundaries, part headers, a file name.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
_DEFAULT_STUDY_SECONDS = 30.0

FailureBody = Callable[[str, str, Scope], dict[str, Any]]  # (message, code, scope) -> body


class BodyRejected(Exception):
    """Raised from ``receive`` when the body breaks a limit; the guard answers it."""

    def __init__(self, message: str, code: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def _body_rejected(exc: BaseException) -> BodyRejected | None:
    """The BodyRejected in ``exc``, also inside exception groups (task-group middleware)."""
    if isinstance(exc, BodyRejected):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := _body_rejected(inner)) is not None:
                return found
    return None


class Admission:
    """Counts admitted predict requests and estimates when a shed one should come back."""

    def __init__(self, concurrent: int, waiting: int) -> None:
        self.concurrent = concurrent
        self.capacity = concurrent + waiting
        self.admitted = 0
        self.study_seconds = _DEFAULT_STUDY_SECONDS
        self._lock = threading.Lock()

    def try_enter(self) -> bool:
        with self._lock:
            if self.admitted >= self.capacity:
                return False
            self.admitted += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.admitted = max(0, self.admitted - 1)

    def observe(self, seconds: float) -> None:
        """A study's processing time: an exponential moving average for Retry-After."""
        with self._lock:
            self.study_seconds = 0.8 * self.study_seconds + 0.2 * max(0.0, seconds)

    def retry_after(self) -> int:
        """Seconds until the queue has room: its length over the workers, times a study."""
        with self._lock:
            turns = self.admitted / self.concurrent
            return max(1, min(3600, math.ceil(turns * self.study_seconds)))


class RequestGuard:
    """The checks above, in front of the app (inside the metrics middleware)."""

    def __init__(self, app: ASGIApp, limits: ApiSettings, admission: Admission,
                 failure_body: FailureBody) -> None:
        self.app = app
        self.limits = limits
        self.admission = admission
        self.failure_body = failure_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        if path not in OPEN_PATHS and not self._key_ok(headers):
            await self._answer(send, scope, 401, "missing or wrong X-API-Key", "http_401")
            return
        max_body = int(self.limits.max_upload_mb * 1e6) + MULTIPART_OVERHEAD_BYTES
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                await self._answer(send, scope, 400, "malformed Content-Length", "bad_request")
                return
            if int(declared) > max_body:
                await self._answer(send, scope, 413, self._too_large(), "upload_too_large")
                return
        admitted = False
        if path in PREDICT_PATHS and scope.get("method") == "POST":
            if not self.admission.try_enter():
                wait = self.admission.retry_after()
                logger.warning("predict request shed: %d admitted already",
                               self.admission.admitted)
                await self._answer(
                    send, scope, 503, f"the node is busy; retry in about {wait} s",
                    "busy", [(b"retry-after", str(wait).encode())])
                return
            admitted = True
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, self._bounded(receive, max_body), tracked_send)
        except Exception as exc:  # a body limit met outside the upload code (any route)
            rejected = _body_rejected(exc)
            if rejected is None:
                raise
            logger.info("request body refused: %s", rejected.code)
            if not started:
                await self._answer(send, scope, rejected.status, str(rejected), rejected.code,
                                   [(b"connection", b"close")])
        finally:
            if admitted:
                self.admission.leave()

    def _too_large(self) -> str:
        return f"the upload exceeds the limit of {self.limits.max_upload_mb:.0f} MB"

    def _key_ok(self, headers: dict[str, str]) -> bool:
        expected = self.limits.api_key
        if expected is None:
            return True
        given = headers.get("x-api-key", "")
        auth = headers.get("authorization", "")
        if not given and auth[:7].lower() == "bearer ":
            given = auth[7:].strip()
        return secrets.compare_digest(given.encode("utf-8", "replace"),
                                      expected.get_secret_value().encode())

    def _bounded(self, receive: Receive, max_body: int) -> Receive:
        timeout = self.limits.body_read_timeout_s
        seen = 0

        async def bounded_receive() -> Message:
            nonlocal seen
            try:
                message = await asyncio.wait_for(receive(), timeout)
            except TimeoutError:
                raise BodyRejected(f"no data received for {timeout:g} s: the request body "
                                   "timed out", "body_timeout", 408) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_body:
                    raise BodyRejected(self._too_large(), "upload_too_large", 413)
            return message

        return bounded_receive

    async def _answer(self, send: Send, scope: Scope, status: int, message: str, code: str,
                      extra: list[tuple[bytes, bytes]] | None = None) -> None:
        if scope.get("path", "") in PREDICT_PATHS:
            body = self.failure_body(message, code, scope)
        else:
            body = {"detail": message}
        data = json.dumps(body).encode()
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(data)).encode()), *(extra or [])]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})

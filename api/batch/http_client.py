"""Sending one file to the node's REST API, with a time limit and retries.

Retried: network errors (refused, reset, DNS), timeouts, and HTTP 5xx (an
internal fault of the node, often transient: out of memory, a restart).
Not retried: HTTP 4xx, the node's verdict on the input, which a second try
would not change. After the last attempt the file gets a client-made Failure
row (``error_code`` ``client_*``) so that a resumed run sends it again.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Mapping
from typing import Any

import httpx

from api.batch.types import CLIENT_ERROR_PREFIX, FileResult, InputFile, InputKind

logger = logging.getLogger(__name__)

_ENDPOINTS = {InputKind.ZIP: "/predict", InputKind.NIFTI: "/predict_nifti"}
_CONTENT_TYPES = {InputKind.ZIP: "application/zip", InputKind.NIFTI: "application/octet-stream"}
_MAX_BACKOFF_S = 60.0


def client_failure(error: str, code: str, seconds: float = 0.0) -> dict[str, Any]:
    """A Failure body in the REST contract's shape, made by the client itself."""
    if not code.startswith(CLIENT_ERROR_PREFIX):
        raise ValueError(f"client error codes start with {CLIENT_ERROR_PREFIX!r}")
    return {
        "study_uid": "",
        "series_uid": "",
        "probability_of_pathology": None,
        "pathology": None,
        "top_pathologies": [],
        "most_dangerous_pathology_type": None,
        "processing_status": "Failure",
        "time_of_processing": round(seconds, 3),
        "error": error,
        "error_code": code,
    }


def backoff_delay(attempt: int, base_s: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): base*2^(n-1), +-25% jitter.

    Jitter spreads the retries of parallel workers that failed together.
    """
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    delay = min(_MAX_BACKOFF_S, base_s * 2 ** (attempt - 1))
    return delay * (0.75 + 0.5 * (rng or random).random())


class ApiClient:
    """Posts files to ``/predict`` or ``/predict_nifti``; thread-safe (one httpx pool)."""

    def __init__(
        self,
        api_url: str,
        *,
        timeout_s: float,
        retries: int,
        backoff_s: float,
        api_key: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.retries = retries
        self.backoff_s = backoff_s
        self._stop = threading.Event()
        headers = {"X-API-Key": api_key} if api_key else {}
        self._client = httpx.Client(
            base_url=self.api_url,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            headers=headers,
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def stop(self) -> None:
        """Stop retrying (Ctrl-C): a waiting retry gives up at once."""
        self._stop.set()

    def health(self) -> Mapping[str, Any]:
        """GET /health; raises httpx errors (the caller says the node is not reachable)."""
        response = self._client.get("/health", timeout=10.0)
        response.raise_for_status()
        body = response.json()
        if not isinstance(body, dict):
            raise ValueError("/health did not answer a JSON object")
        return body

    def __call__(self, item: InputFile) -> FileResult:
        """Send one file; always returns a FileResult (never raises for transport faults)."""
        endpoint = _ENDPOINTS[item.kind]
        start = time.perf_counter()
        attempt = 0
        last_error = ""
        last_code = "client_unreachable"
        status: int | None = None
        while True:
            attempt += 1
            try:
                with item.path.open("rb") as fh:
                    response = self._client.post(
                        endpoint,
                        files={"file": (item.path.name, fh, _CONTENT_TYPES[item.kind])},
                    )
            except httpx.TimeoutException as exc:
                last_error = f"no answer within the time limit ({type(exc).__name__})"
                last_code = "client_timeout"
                status = None
            except httpx.TransportError as exc:
                last_error = f"could not reach the API ({type(exc).__name__}: {exc})"
                last_code = "client_unreachable"
                status = None
            except OSError as exc:  # the input file itself vanished or is unreadable
                return self._result(item, client_failure(
                    f"cannot read the file: {exc.strerror or exc}", "client_unreadable_file",
                ), None, attempt, start)
            else:
                status = response.status_code
                body = _json_object(response)
                if status < 500 and body is not None and "processing_status" in body:
                    return self._result(item, body, status, attempt, start)
                if status < 500:
                    # 401/403/404/413 from a proxy or a wrong URL: not the contract's body.
                    return self._result(item, client_failure(
                        f"API answered HTTP {status} without a result body: "
                        f"{_short(response.text)}", "client_bad_response",
                    ), status, attempt, start)
                detail = (body or {}).get("error") or _short(response.text)
                last_error = f"API answered HTTP {status}: {detail}"
                last_code = "client_server_error"
            if attempt > self.retries or self._stop.is_set():
                break
            delay = backoff_delay(attempt, self.backoff_s)
            logger.warning("%s: attempt %d failed (%s); retrying in %.1f s", item.name, attempt,
                           last_error, delay)
            if self._stop.wait(delay):
                break
        error = f"{last_error}; gave up after {attempt} attempt(s) to {self.api_url}{endpoint}"
        logger.error("%s: %s", item.name, error)
        return self._result(item, client_failure(error, last_code), status, attempt, start)

    @staticmethod
    def _result(item: InputFile, body: Mapping[str, Any], status: int | None, attempts: int,
                start: float) -> FileResult:
        return FileResult(name=item.name, body=body, http_status=status, attempts=attempts,
                          client_seconds=time.perf_counter() - start)


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"

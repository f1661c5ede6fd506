"""A small client for the Orthanc REST API, used by the worker (not by the plugin).

Runs in the project's virtualenv (httpx). Only the calls the worker needs:
read the index, download instances, upload our objects, forward them to a
modality. Transport errors and 5xx answers become :class:`OrthancRestError`
with ``status`` set, so the caller can tell "Orthanc down" (None, 5xx) from
"no such study" (404).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from orthanc_plugin.errors import OrthancRestError

logger = logging.getLogger(__name__)


class OrthancClient:
    """Talks to one Orthanc over HTTP with Basic authentication (when given)."""

    def __init__(
        self,
        base_url: str,
        username: str | None = None,
        password: str | None = None,
        timeout_seconds: float = 60.0,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"Orthanc URL must start with http:// or https://: {base_url!r}")
        auth = httpx.BasicAuth(username, password) if username and password else None
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, auth=auth, timeout=timeout_seconds)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OrthancClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise OrthancRestError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            detail = response.text[:500].replace("\n", " ")
            raise OrthancRestError(
                f"{method} {path}: HTTP {response.status_code}: {detail}",
                status=response.status_code,
            )
        return response

    def get_json(self, path: str) -> Any:
        """GET a JSON resource, e.g. ``/studies/{id}``."""
        return self._request("GET", path).json()

    def post_json(self, path: str, body: Any, timeout: float | None = None) -> Any:
        """POST a JSON body and return the JSON answer."""
        kwargs: dict[str, Any] = {"json": body}
        if timeout is not None:
            kwargs["timeout"] = timeout
        response = self._request("POST", path, **kwargs)
        return response.json() if response.content else None

    def download_instance(self, instance_id: str, dest: Path) -> Path:
        """Write one instance's DICOM file (as received) to ``dest``, atomically."""
        path = f"/instances/{instance_id}/file"
        tmp = dest.with_name(dest.name + ".part")
        try:
            with self._http.stream("GET", path) as response:
                if response.status_code >= 400:
                    raise OrthancRestError(
                        f"GET {path}: HTTP {response.status_code}", status=response.status_code
                    )
                with tmp.open("wb") as fh:
                    for chunk in response.iter_bytes():
                        fh.write(chunk)
        except httpx.HTTPError as exc:  # connection lost mid-file: "Orthanc down", like _request
            tmp.unlink(missing_ok=True)
            raise OrthancRestError(f"GET {path}: {type(exc).__name__}: {exc}") from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        tmp.replace(dest)
        return dest

    def upload_instance(self, dicom_bytes: bytes) -> str:
        """POST /instances; returns the Orthanc instance ID (also when already stored)."""
        answer = self._request(
            "POST", "/instances", content=dicom_bytes,
            headers={"Content-Type": "application/dicom"},
        ).json()
        if not isinstance(answer, dict) or "ID" not in answer:
            raise OrthancRestError(f"POST /instances: unexpected answer {answer!r}")
        return str(answer["ID"])

    def store_to_modality(
        self, modality: str, resource_ids: Sequence[str], timeout: float | None = None
    ) -> Any:
        """C-STORE resources to a configured modality (``/modalities/{id}/store``), waiting."""
        return self.post_json(
            f"/modalities/{modality}/store",
            {"Resources": list(resource_ids), "Synchronous": True},
            timeout=timeout,
        )

    def system(self) -> Any:
        """``/system``: also a cheap check that Orthanc answers and credentials work."""
        return self.get_json("/system")

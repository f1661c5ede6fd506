"""``--local``: run the pipeline in this process instead of calling a server.

The same door as the API, without HTTP: ``run_pipeline`` in, ``to_json`` out.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from api.batch.http_client import client_failure
from api.batch.types import FileResult, InputFile

if TYPE_CHECKING:
    from ctnode.settings import Settings

logger = logging.getLogger(__name__)


class LocalProcessor:
    """Calls ``inference.pipeline.run_pipeline(path, settings)`` for each file."""

    def __init__(self, settings: Settings) -> None:
        # Imported here: the HTTP-only client must not pay for loading the models.
        from inference.pipeline import run_pipeline

        self._run = run_pipeline
        self._settings = settings

    def __call__(self, item: InputFile) -> FileResult:
        start = time.perf_counter()
        try:
            result = self._run(item.path, self._settings)
            body = result.to_json()
        except Exception as exc:  # noqa: BLE001 - the door catches once (STYLE 25)
            logger.exception("%s: the pipeline raised", item.name)
            body = client_failure(
                f"internal fault of the local pipeline ({type(exc).__name__}); see the log",
                "client_local_fault", time.perf_counter() - start,
            )
        return FileResult(name=item.name, body=body, http_status=None, attempts=1,
                          client_seconds=time.perf_counter() - start)

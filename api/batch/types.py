"""Types that cross the batch client's modules: input files, per-file results, run totals."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLIENT_ERROR_PREFIX = "client_"
"""``error_code`` prefix of failures the batch client made itself (no usable answer).

Rows with such a code are not final: a resumed run sends those files again.
"""


class InputKind(enum.Enum):
    """What a file is, which decides the endpoint it goes to."""

    ZIP = "zip"
    NIFTI = "nifti"


@dataclass(frozen=True, slots=True)
class InputFile:
    """One file to analyse. ``name`` (POSIX path relative to the input folder) keys its row."""

    path: Path
    name: str
    kind: InputKind
    size_bytes: int

    def __post_init__(self) -> None:
        if not isinstance(self.kind, InputKind):
            raise TypeError("InputFile.kind must be an InputKind")
        if not self.name:
            raise ValueError("InputFile.name must not be empty")
        if self.size_bytes < 0:
            raise ValueError("InputFile.size_bytes must be >= 0")


@dataclass(frozen=True, slots=True)
class FileResult:
    """The outcome for one file: the API's JSON body (or a client-made Failure body).

    ``body`` has the REST contract's keys (``StudyResult.to_json``).
    ``http_status`` is None in ``--local`` mode and when no answer came.
    """

    name: str
    body: Mapping[str, Any]
    http_status: int | None
    attempts: int
    client_seconds: float

    def __post_init__(self) -> None:
        if self.body.get("processing_status") not in ("Success", "Failure"):
            raise ValueError("FileResult.body needs processing_status 'Success' or 'Failure'")
        if self.attempts < 0:
            raise ValueError("FileResult.attempts must be >= 0")
        if not math.isfinite(self.client_seconds) or self.client_seconds < 0:
            raise ValueError("FileResult.client_seconds must be a finite number >= 0")

    @property
    def ok(self) -> bool:
        return self.body.get("processing_status") == "Success"

    @property
    def final(self) -> bool:
        """False when the client got no usable answer: a resumed run tries again."""
        code = self.body.get("error_code") or ""
        return not str(code).startswith(CLIENT_ERROR_PREFIX)


@dataclass(frozen=True, slots=True)
class RunInfo:
    """How a run went, for the summary sheet and the console."""

    input_dir: str
    target: str  # API URL, or "local (in-process pipeline)"
    started_utc: str
    finished_utc: str
    wall_seconds: float
    discovered: int
    skipped: int  # already in the output (resume)
    processed: int  # answered in this run
    interrupted: bool
    concurrency: int

    @property
    def pending(self) -> int:
        """Files neither skipped nor processed (left over after Ctrl-C)."""
        return max(0, self.discovered - self.skipped - self.processed)

"""The columns of the results table, shared by the spreadsheet and the CSV writer.

One row per input file. The seed's keys keep their names (scripts read them);
the per-finding probability columns are headed by the vocabulary's display
names, in the vocabulary's fixed order (``inference.findings``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from api.batch.types import CLIENT_ERROR_PREFIX, FileResult
from inference.findings import FINDING_KEYS, FINDINGS

CellValue = str | int | float | None
Row = dict[str, CellValue]
"""One table row by column id."""

PROBABILITY_FORMAT = "0.000"
SECONDS_FORMAT = "0.00"


@dataclass(frozen=True, slots=True)
class Column:
    """One column: ``id`` keys the row dict, ``header`` is written in the file."""

    id: str
    header: str
    kind: type
    width: float
    number_format: str | None = None
    finding: bool = False

    def __post_init__(self) -> None:
        if self.kind not in (str, int, float):
            raise TypeError(f"Column {self.id}: kind must be str, int or float")


FILE = "file"
STATUS = "processing_status"
PROBABILITY = "probability_of_pathology"
PATHOLOGY = "pathology"
TIME = "time_of_processing"
ERROR_CODE = "error_code"
CLIENT_SECONDS = "client_seconds"

_BASE_COLUMNS: tuple[Column, ...] = (
    Column(FILE, "file", str, 32),
    Column("study_uid", "study_uid", str, 30),
    Column("series_uid", "series_uid", str, 30),
    Column(PROBABILITY, PROBABILITY, float, 14, PROBABILITY_FORMAT),
    Column(PATHOLOGY, PATHOLOGY, int, 10),
    Column("top_pathologies", "top_pathologies", str, 40),
    Column(STATUS, STATUS, str, 12),
    Column(TIME, TIME, float, 12, SECONDS_FORMAT),
    Column("error", "error", str, 50),
    Column("most_dangerous_pathology_type", "most_dangerous_pathology_type", str, 24),
    Column(ERROR_CODE, ERROR_CODE, str, 18),
    Column("http_status", "http_status", int, 8),
    Column("attempts", "attempts", int, 8),
    Column(CLIENT_SECONDS, CLIENT_SECONDS, float, 10, SECONDS_FORMAT),
    Column("request_id", "request_id", str, 20),
)

FINDING_COLUMNS: tuple[Column, ...] = tuple(
    Column(key, FINDINGS[key].display_name, float, max(10.0, len(FINDINGS[key].display_name) * 0.9),
           PROBABILITY_FORMAT, finding=True)
    for key in FINDING_KEYS
)

COLUMNS: tuple[Column, ...] = _BASE_COLUMNS + FINDING_COLUMNS
HEADERS: tuple[str, ...] = tuple(c.header for c in COLUMNS)
_BY_HEADER: Mapping[str, Column] = {c.header: c for c in COLUMNS}
_BY_FINDING: Mapping[str, Column] = {c.id: c for c in FINDING_COLUMNS}

TOP_SEPARATOR = "; "


def result_to_row(result: FileResult) -> Row:
    """The row of one file: the body's seed keys, client facts, per-finding probabilities."""
    body = result.body
    row: Row = {c.id: None for c in COLUMNS}
    for column in _BASE_COLUMNS:
        if column.id in body:
            row[column.id] = _coerce(column, body[column.id])
    row[FILE] = result.name
    top = body.get("top_pathologies") or []
    row["top_pathologies"] = TOP_SEPARATOR.join(str(t) for t in top) if top else None
    row["http_status"] = result.http_status
    row["attempts"] = result.attempts
    row[CLIENT_SECONDS] = round(result.client_seconds, 3)
    findings = body.get("findings") or {}
    if isinstance(findings, Mapping):
        for key in FINDING_KEYS:
            entry = findings.get(key)
            if isinstance(entry, Mapping):
                row[key] = _coerce(_BY_FINDING[key], entry.get("probability"))
    return row


def row_from_cells(headers: list[Any], values: list[Any]) -> Row:
    """A row read back from a file (xlsx cells or CSV strings), typed by column.

    Unknown headers are ignored (a user may add a column); missing ones are None.
    """
    row: Row = {c.id: None for c in COLUMNS}
    for header, value in zip(headers, values, strict=False):
        column = _BY_HEADER.get(str(header)) if header is not None else None
        if column is not None:
            row[column.id] = _coerce(column, value)
    return row


def is_final(row: Row) -> bool:
    """A row whose file need not be sent again on resume (see ``FileResult.final``)."""
    return row[FILE] is not None and not str(row[ERROR_CODE] or "").startswith(
        CLIENT_ERROR_PREFIX)


def _coerce(column: Column, value: Any) -> CellValue:
    """Type a cell; a value that does not fit its column is kept as text, never dropped."""
    if value is None or value == "":
        return None
    if column.kind is str:
        return str(value)
    if isinstance(value, bool):
        return int(value)
    try:
        if column.kind is int:
            number = float(value)
            return int(number) if number.is_integer() else str(value)
        return float(value)
    except (TypeError, ValueError):
        return str(value)

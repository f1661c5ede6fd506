"""``--csv``: the same table as the spreadsheet's Results sheet, as UTF-8 CSV.

The summary is not written into the CSV (it would break the table for
readers); the console prints it.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from api.batch.atomic import write_atomically
from api.batch.columns import COLUMNS, HEADERS, Row, row_from_cells
from api.batch.errors import OutputFileError


def read_csv_rows(path: Path) -> list[Row]:
    """Rows of an earlier run's CSV (for resume); OutputFileError if it is not ours."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            headers = next(reader, [])
            if "file" not in headers:
                raise OutputFileError(
                    f"{path} has no 'file' column: it was not written by this client; "
                    "pick another --output")
            rows = [row_from_cells(headers, values) for values in reader]
    except (UnicodeDecodeError, csv.Error, OSError) as exc:
        raise OutputFileError(f"{path} exists but is not a readable CSV ({exc})") from exc
    return [r for r in rows if r["file"] is not None]


def write_csv(path: Path, rows: Sequence[Row]) -> None:
    """Write the table atomically; numbers in Python's repr, empty cells for None."""

    def _write(tmp: Path) -> None:
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(HEADERS)
            for row in rows:
                writer.writerow(["" if row[c.id] is None else row[c.id] for c in COLUMNS])

    write_atomically(path, _write)

"""The results spreadsheet (openpyxl): a Results sheet, a Summary sheet and a chart.

Results: one row per file, header styled, frozen and filterable, widths set,
probabilities formatted. Summary: run facts, counts by status, failures by
code, pathology rate, time percentiles, and the probability distribution
with a bar chart. Values are written, never formulas, so any reader (and
the resume step) sees numbers without a spreadsheet engine.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Sequence
from pathlib import Path

from openpyxl import Workbook, load_workbook
from openpyxl.chart import BarChart, Reference
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from api.batch.atomic import write_atomically
from api.batch.columns import COLUMNS, HEADERS, Row, row_from_cells
from api.batch.errors import OutputFileError
from api.batch.summary import Summary
from api.batch.types import RunInfo

logger = logging.getLogger(__name__)

RESULTS_SHEET = "Results"
SUMMARY_SHEET = "Summary"
DISCLAIMER = "Decision support only, not a diagnosis: a radiologist must read each study."

_HEADER_FONT = Font(bold=True, color="FFFFFF")
_HEADER_FILL = PatternFill("solid", fgColor="1F4E78")
_SECTION_FONT = Font(bold=True, size=12)
_FAILURE_FONT = Font(color="9C0006")


def read_xlsx_rows(path: Path) -> list[Row]:
    """The rows of an earlier run's Results sheet (for resume).

    Raises OutputFileError when the file is not a workbook of ours, rather
    than overwriting something the user wanted.
    """
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, OSError, KeyError, ValueError) as exc:
        raise OutputFileError(
            f"{path} exists but is not a readable .xlsx ({exc}); move it away or pick "
            "another --output") from exc
    try:
        if RESULTS_SHEET not in workbook.sheetnames:
            raise OutputFileError(
                f"{path} has no '{RESULTS_SHEET}' sheet: it was not written by this client; "
                "pick another --output")
        rows_iter = workbook[RESULTS_SHEET].iter_rows(values_only=True)
        headers = list(next(rows_iter, ()))
        if "file" not in headers:
            raise OutputFileError(f"{path}: the '{RESULTS_SHEET}' sheet has no 'file' column")
        rows = [row_from_cells(headers, list(values)) for values in rows_iter]
    finally:
        workbook.close()
    return [r for r in rows if r["file"] is not None]


def write_xlsx(path: Path, rows: Sequence[Row], summary: Summary, info: RunInfo) -> None:
    """Write the whole workbook atomically (see ``write_atomically``)."""
    workbook = Workbook()
    results = workbook.active
    assert results is not None
    results.title = RESULTS_SHEET
    _write_results(results, rows)
    _write_summary(workbook.create_sheet(SUMMARY_SHEET), summary, info)
    write_atomically(path, lambda tmp: workbook.save(tmp))


def _write_results(sheet: Worksheet, rows: Sequence[Row]) -> None:
    sheet.append(list(HEADERS))
    for cell in sheet[1]:
        cell.font = _HEADER_FONT
        cell.fill = _HEADER_FILL
        cell.alignment = Alignment(vertical="center", wrap_text=True)
    for row in rows:
        sheet.append([row[c.id] for c in COLUMNS])
    for index, column in enumerate(COLUMNS, start=1):
        letter = get_column_letter(index)
        sheet.column_dimensions[letter].width = column.width
        if column.number_format:
            for (cell,) in sheet.iter_rows(min_row=2, min_col=index, max_col=index):
                cell.number_format = column.number_format
    status_col = HEADERS.index("processing_status") + 1
    for (cell,) in sheet.iter_rows(min_row=2, min_col=status_col, max_col=status_col):
        if cell.value == "Failure":
            cell.font = _FAILURE_FONT
    sheet.row_dimensions[1].height = 30
    sheet.freeze_panes = "B2"  # header row and file column stay visible
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(COLUMNS))}{max(1, len(rows)) + 1}"


def _write_summary(sheet: Worksheet, summary: Summary, info: RunInfo) -> None:
    sheet.column_dimensions["A"].width = 34
    sheet.column_dimensions["B"].width = 44
    sheet.append(["Batch summary"])
    sheet["A1"].font = Font(bold=True, size=14)
    sheet.append([DISCLAIMER])
    _section(sheet, "Run")
    for label, value in (
        ("input folder", info.input_dir),
        ("analysed by", info.target),
        ("started (UTC)", info.started_utc),
        ("finished (UTC)", info.finished_utc),
        ("wall time (s)", round(info.wall_seconds, 2)),
        ("concurrency", info.concurrency),
        ("files found", info.discovered),
        ("skipped (already in output)", info.skipped),
        ("processed in this run", info.processed),
        ("not processed (interrupted)", info.pending),
        ("interrupted", "yes" if info.interrupted else "no"),
        ("studies per minute (this run)",
         round(60 * info.processed / info.wall_seconds, 2) if info.wall_seconds > 0 else None),
    ):
        sheet.append([label, value])
    _section(sheet, "Results in this file")
    for label, count in (
        ("files", summary.files),
        ("Success", summary.success),
        ("Failure (answered)", summary.failure),
        ("Failure (no answer; retried on resume)", summary.no_answer),
        ("pathology = 1", summary.positives),
    ):
        sheet.append([label, count])
    sheet.append(["pathology rate (of Success)", summary.pathology_rate])
    sheet.cell(sheet.max_row, 2).number_format = "0.0%"
    _section(sheet, "Failures by error_code")
    if not summary.failures_by_code:
        sheet.append(["(none)", 0])
    for code, count in summary.failures_by_code:
        sheet.append([code, count])
    _section(sheet, "time_of_processing of Success rows (s)")
    for name, value in summary.processing_seconds or (("(no Success rows)", None),):
        sheet.append([name, value])
    _section(sheet, "client round trip, answered rows (s)")
    for name, value in summary.client_seconds or (("(no answered rows)", None),):
        sheet.append([name, value])
    _section(sheet, "probability_of_pathology distribution (Success rows)")
    sheet.append(["bin", "studies"])
    first = sheet.max_row + 1
    for label, count in summary.probability_histogram:
        sheet.append([label, count])
    last = sheet.max_row
    chart = BarChart()
    chart.type = "col"
    chart.title = "probability_of_pathology"
    chart.x_axis.title = "probability bin"
    chart.y_axis.title = "studies"
    chart.legend = None
    chart.add_data(Reference(sheet, min_col=2, min_row=first - 1, max_row=last),
                   titles_from_data=True)
    chart.set_categories(Reference(sheet, min_col=1, min_row=first, max_row=last))
    chart.height, chart.width = 7.5, 16
    sheet.add_chart(chart, "D3")


def _section(sheet: Worksheet, title: str) -> None:
    sheet.append([])
    sheet.append([title])
    sheet.cell(sheet.max_row, 1).font = _SECTION_FONT

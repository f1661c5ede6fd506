"""The batch client: a folder of studies in, one results row per file out (issue 9).

Layers: ``discover`` (which files) → a processor (``ApiClient`` over HTTP or
``LocalProcessor`` in-process) → ``runner`` (concurrency, resume, Ctrl-C) →
``columns`` → ``xlsx_writer`` / ``csv_writer`` (+ ``summary``).
"""

from api.batch.columns import COLUMNS, HEADERS, Row
from api.batch.discover import discover_inputs
from api.batch.errors import BatchError, InputDirError, OutputFileError
from api.batch.http_client import ApiClient
from api.batch.local import LocalProcessor
from api.batch.progress import RichReporter, print_summary
from api.batch.runner import BatchOutcome, OutputFormat, load_rows, output_format, run_batch
from api.batch.summary import Summary, summarise
from api.batch.types import FileResult, InputFile, InputKind, RunInfo
from api.batch.xlsx_writer import RESULTS_SHEET, SUMMARY_SHEET

__all__ = [
    "COLUMNS", "HEADERS", "RESULTS_SHEET", "SUMMARY_SHEET", "ApiClient", "BatchError",
    "BatchOutcome", "FileResult", "InputDirError", "InputFile", "InputKind", "LocalProcessor",
    "OutputFileError", "OutputFormat", "RichReporter", "Row", "RunInfo", "Summary",
    "discover_inputs", "load_rows", "output_format", "print_summary", "run_batch", "summarise",
]

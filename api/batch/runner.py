"""Running a batch: resume, bounded concurrency, checkpoints, and a clean Ctrl-C.

The runner knows nothing of HTTP or Rich: it takes a *processor* (a callable
``InputFile -> FileResult``: the API client or the in-process pipeline) and a
*reporter* (progress display). Workers are daemon threads fed from a queue;
the main thread only collects results, so Ctrl-C lands there and is handled
in one place:

* first Ctrl-C: no new file starts, the output is saved at once (a valid
  file with everything finished so far), files in flight are waited for and
  saved as they come;
* second Ctrl-C: stop waiting; the output (saved atomically) is left as it is.
"""

from __future__ import annotations

import enum
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from api.batch.columns import FILE, Row, is_final, result_to_row
from api.batch.csv_writer import read_csv_rows, write_csv
from api.batch.errors import OutputFileError
from api.batch.http_client import client_failure
from api.batch.summary import Summary, summarise
from api.batch.types import FileResult, InputFile, RunInfo
from api.batch.xlsx_writer import read_xlsx_rows, write_xlsx

logger = logging.getLogger(__name__)

Processor = Callable[[InputFile], FileResult]


class OutputFormat(enum.Enum):
    XLSX = "xlsx"
    CSV = "csv"


def output_format(path: Path, csv: bool = False) -> OutputFormat:
    """CSV when asked (``--csv``) or when the file name ends in .csv; else xlsx."""
    return OutputFormat.CSV if csv or path.suffix.lower() == ".csv" else OutputFormat.XLSX


class Reporter(Protocol):
    """What the runner tells a progress display; called from the main thread only."""

    def start(self, total: int, skipped: int) -> None: ...

    def file_done(self, result: FileResult) -> None: ...

    def interrupted(self, in_flight: int) -> None: ...

    def finish(self) -> None: ...


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """Every row now in the output file, its totals, and how the run went."""

    rows: tuple[Row, ...]
    summary: Summary
    info: RunInfo


def load_rows(path: Path, fmt: OutputFormat) -> list[Row]:
    """Rows of an existing output file; [] when there is none."""
    if not path.exists():
        return []
    return read_csv_rows(path) if fmt is OutputFormat.CSV else read_xlsx_rows(path)


def run_batch(
    inputs: Sequence[InputFile],
    output: Path,
    process: Processor,
    *,
    fmt: OutputFormat,
    concurrency: int,
    input_label: str,
    target: str,
    checkpoint_s: float = 2.0,
    resume: bool = True,
    reporter: Reporter | None = None,
    on_stop: Callable[[], None] | None = None,
) -> BatchOutcome:
    """Process every input not already final in ``output``; always leaves a valid output.

    ``on_stop`` is called at the first Ctrl-C (the API client stops retrying).
    """
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    started_wall = time.perf_counter()
    started_utc = _utc_now()
    rows: dict[str, Row] = {}
    if resume:
        rows = {str(r[FILE]): r for r in load_rows(output, fmt)}
    done = {name for name, row in rows.items() if is_final(row)}
    todo = [item for item in inputs if item.name not in done]
    skipped = len(inputs) - len(todo)
    logger.info("batch: %d files, %d already in %s, %d to process", len(inputs), skipped,
                output.name, len(todo))

    def info(processed: int, interrupted: bool) -> RunInfo:
        return RunInfo(
            input_dir=input_label, target=target, started_utc=started_utc,
            finished_utc=_utc_now(), wall_seconds=time.perf_counter() - started_wall,
            discovered=len(inputs), skipped=skipped, processed=processed,
            interrupted=interrupted, concurrency=concurrency,
        )

    def save(processed: int, interrupted: bool) -> BatchOutcome:
        ordered = tuple(rows[name] for name in sorted(rows))
        summary = summarise(ordered)
        run_info = info(processed, interrupted)
        try:
            if fmt is OutputFormat.CSV:
                write_csv(output, ordered)
            else:
                write_xlsx(output, ordered, summary, run_info)
        except OSError as exc:
            raise OutputFileError(
                f"cannot write {output} ({exc.strerror or exc}); if a spreadsheet program has "
                "it open, close it and run again (finished files are kept)") from exc
        return BatchOutcome(rows=ordered, summary=summary, info=run_info)

    def checkpoint(processed: int, interrupted: bool) -> None:
        """A failed checkpoint is not fatal: the next one (or the final save) tries again."""
        try:
            save(processed, interrupted)
        except OutputFileError as exc:
            logger.warning("checkpoint skipped: %s", exc)

    if reporter is not None:
        reporter.start(len(inputs), skipped)
    pool = _Pool(todo, process, concurrency)
    processed = 0
    interrupts = 0
    last_save = time.monotonic()
    try:
        while processed < len(todo):
            try:
                result = pool.next_result(timeout=0.25)
                if result is None:
                    if interrupts and pool.in_flight(processed) == 0:
                        break
                    continue
                processed += 1
                rows[result.name] = result_to_row(result)
                if reporter is not None:
                    reporter.file_done(result)
                if time.monotonic() - last_save >= checkpoint_s:
                    checkpoint(processed, bool(interrupts))
                    last_save = time.monotonic()
            except KeyboardInterrupt:
                interrupts += 1
                pool.stop()
                if on_stop is not None:
                    on_stop()
                if interrupts >= 2:
                    logger.warning("second Ctrl-C: not waiting for files in flight")
                    break
                in_flight = pool.in_flight(processed)
                logger.warning("Ctrl-C: no new files start; waiting for %d in flight", in_flight)
                if reporter is not None:
                    reporter.interrupted(in_flight)
                checkpoint(processed, True)
                last_save = time.monotonic()
    finally:
        if reporter is not None:
            reporter.finish()
    outcome = save(processed, bool(interrupts))
    logger.info("batch: %d processed, %d rows in %s%s", processed, len(outcome.rows), output,
                " (interrupted)" if interrupts else "")
    return outcome


class _Pool:
    """N daemon worker threads over a queue; results come back on another queue.

    Daemon threads: after a second Ctrl-C the process may exit without waiting
    for a request or a pipeline run still in flight.
    """

    def __init__(self, items: Sequence[InputFile], process: Processor, workers: int) -> None:
        self._work: queue.SimpleQueue[InputFile] = queue.SimpleQueue()
        for item in items:
            self._work.put(item)
        self._results: queue.SimpleQueue[FileResult] = queue.SimpleQueue()
        self._process = process
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._started = 0
        for i in range(min(workers, len(items))):
            threading.Thread(target=self._worker, name=f"batch-worker-{i}", daemon=True).start()

    def _worker(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                try:
                    item = self._work.get_nowait()
                except queue.Empty:
                    return
                self._started += 1
            try:
                result = self._process(item)
            except Exception as exc:  # noqa: BLE001 - one file's fault must not stop the batch
                logger.exception("%s: processing raised", item.name)
                result = FileResult(
                    name=item.name,
                    body=client_failure(f"internal fault of the batch client "
                                        f"({type(exc).__name__}); see the log",
                                        "client_internal_error"),
                    http_status=None, attempts=0, client_seconds=0.0)
            self._results.put(result)

    def next_result(self, timeout: float) -> FileResult | None:
        try:
            return self._results.get(timeout=timeout)
        except queue.Empty:
            return None

    def in_flight(self, collected: int) -> int:
        with self._lock:
            return self._started - collected

    def stop(self) -> None:
        self._stop.set()


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")

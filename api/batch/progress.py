"""The console side of a batch: a Rich progress bar with ETA, one line per file, totals.

Lines name the file and the result, never patient data (the API's body has
none beyond UIDs, and only the file name and outcome are printed).
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from api.batch.runner import BatchOutcome
from api.batch.types import FileResult


class RichReporter:
    """Implements ``runner.Reporter`` on a Rich console (stderr by default)."""

    def __init__(self, console: Console | None = None, *, per_file: bool = True) -> None:
        self.console = console or Console(stderr=True)
        self._per_file = per_file
        self._ok = 0
        self._failed = 0
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[green]{task.fields[ok]} ok[/] [red]{task.fields[failed]} failed[/]"),
            TextColumn("elapsed"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self._task: TaskID | None = None

    def start(self, total: int, skipped: int) -> None:
        if skipped:
            self.console.print(f"resume: {skipped} of {total} files already in the output, "
                               "skipped")
        self._progress.start()
        self._task = self._progress.add_task("studies", total=total - skipped, ok=0, failed=0)

    def file_done(self, result: FileResult) -> None:
        body = result.body
        if result.ok:
            self._ok += 1
            p = body.get("probability_of_pathology")
            top = ", ".join(body.get("top_pathologies") or []) or "-"
            line = (f"[green]✓[/] {result.name}  p={p:.3f} pathology={body.get('pathology')}  "
                    f"top: {top}  ({body.get('time_of_processing')} s server, "
                    f"{result.client_seconds:.1f} s total)") if isinstance(p, float) else (
                    f"[green]✓[/] {result.name}")
        else:
            self._failed += 1
            line = (f"[red]✗[/] {result.name}  {body.get('error_code') or 'failure'}: "
                    f"{body.get('error')}")
        if self._per_file:
            self._progress.console.print(line, highlight=False)
        if self._task is not None:
            self._progress.update(self._task, advance=1, ok=self._ok, failed=self._failed)

    def interrupted(self, in_flight: int) -> None:
        self._progress.console.print(
            f"[yellow]Ctrl-C: output saved; no new files start; waiting for {in_flight} in "
            "flight (Ctrl-C again to stop now)[/]")

    def finish(self) -> None:
        self._progress.stop()


def print_summary(console: Console, outcome: BatchOutcome, output: str) -> None:
    """The summary sheet's figures, on the console (the CSV has no summary sheet)."""
    s, info = outcome.summary, outcome.info
    table = Table(title=f"batch summary: {output}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    rate = "-" if s.pathology_rate is None else f"{s.pathology_rate:.1%}"
    per_min = 60 * info.processed / info.wall_seconds if info.wall_seconds > 0 else 0.0
    for label, value in (
        ("files in output", s.files),
        ("Success / Failure / no answer", f"{s.success} / {s.failure} / {s.no_answer}"),
        ("failures by code", ", ".join(f"{c}: {n}" for c, n in s.failures_by_code) or "-"),
        ("pathology = 1", f"{s.positives} ({rate} of Success)"),
        ("time_of_processing (s)", _stats(s.processing_seconds)),
        ("client round trip (s)", _stats(s.client_seconds)),
        ("probability histogram", "  ".join(f"{b}:{n}" for b, n in s.probability_histogram)),
        ("this run", f"{info.processed} processed, {info.skipped} skipped, {info.pending} not "
                     f"processed, {info.wall_seconds:.1f} s wall, {per_min:.2f} studies/min, "
                     f"concurrency {info.concurrency}"
                     + (" [yellow](interrupted)[/]" if info.interrupted else "")),
    ):
        table.add_row(label, str(value))
    console.print(table)


def _stats(stats: tuple[tuple[str, float], ...]) -> str:
    return "  ".join(f"{name} {value:.2f}" for name, value in stats) or "-"

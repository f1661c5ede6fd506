"""The SelectionReport as a table a PACS administrator reads (``ctnode select``)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from series_selector.types import SelectionReport, SeriesDecision, Verdict


def _decision_text(d: SeriesDecision) -> Text:
    if d.rank == 1:
        return Text("CHOSEN", style="bold green")
    if d.accepted:
        return Text(f"usable (#{d.rank})", style="yellow")
    return Text("rejected", style="red")


def _reasons(d: SeriesDecision) -> str:
    lines = []
    for r in d.results:
        if r.verdict is Verdict.FAIL:
            lines.append(f"x {r.reason}")
        elif r.verdict is Verdict.WARN:
            lines.append(f"! {r.reason}")
        elif r.rule == "preference":
            lines.append(f"> {r.reason}")
    return "\n".join(lines) or "all rules passed"


def format_report_table(report: SelectionReport) -> Table:
    """One row per series/stack: what it is, what was decided, and why."""
    study = report.study_uid or "(no StudyInstanceUID in the files)"
    table = Table(title=f"Series selection for study {study}", show_lines=True)
    for name, kw in (("No.", {"justify": "right"}), ("Description", {}), ("Kernel", {}),
                     ("Slices", {"justify": "right"}), ("Thick mm", {"justify": "right"}),
                     ("Cover mm", {"justify": "right"}), ("Decision", {}),
                     ("Reasons", {"overflow": "fold"})):
        table.add_column(name, **kw)  # type: ignore[arg-type]
    for d in sorted(report.series, key=lambda d: (d.rank is None, d.rank or 0,
                                                   d.series_number or 0, d.series_uid)):
        table.add_row(
            "" if d.series_number is None else str(d.series_number),
            d.description + (f" [{d.stack_id}]" if d.stack_id else ""),
            d.convolution_kernel,
            str(d.n_slices if d.n_slices is not None else d.n_instances),
            "" if d.slice_thickness_mm is None else f"{d.slice_thickness_mm:g}",
            "" if d.coverage_mm is None else f"{d.coverage_mm:.0f}",
            _decision_text(d),
            _reasons(d),
        )
    if report.n_unreadable:
        plural = "s" if report.n_unreadable != 1 else ""
        table.add_row("", f"{report.n_unreadable} unreadable file{plural}", "", "", "", "",
                      Text("ignored", style="dim"), "\n".join(report.unreadable_reasons[:5]))
    return table

"""``ctnode select PATH``: show which series the node would analyse, and why.

Runs indexing and series selection only (no model), so a PACS administrator
can check a study before sending it, or see why one was refused.
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ctnode.settings import get_settings
from series_selector import format_report_table, index_path, select_series
from series_selector.archive import ArchiveLimits, extract_zip, remove_tree
from series_selector.errors import MultipleStudiesError, SelectionError
from series_selector.types import DicomIndex, SelectionReport

EXIT_NO_USABLE = 1
EXIT_BAD_INPUT = 2


def select(
    path: Annotated[Path, typer.Argument(help="Folder of DICOM files (nested folders, DICOMDIR "
                                         "and files without extension are fine) or a ZIP.",
                                         exists=True)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON "
                                          "(the API's series_selection) instead of a table.")]
    = False,
    each_study: Annotated[bool, typer.Option(
        "--each-study", help="When the input holds several studies, select in each one "
        "instead of refusing.")] = False,
) -> None:
    """Index a study, apply the series-selection rules and print the decision per series.

    Exit status: 0 when a series was chosen, 1 when none is usable, 2 for input
    that holds no DICOM, several studies (without --each-study) or a bad ZIP.
    """
    settings = get_settings()
    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 150))  # files and pipes: keep rows readable
    workdir: Path | None = None
    try:
        root = path
        if path.is_file() and zipfile.is_zipfile(path):
            workdir = Path(tempfile.mkdtemp(prefix="ctnode-select-", dir=settings.node.temp_dir))
            api = settings.api
            limits = ArchiveLimits(api.max_archive_members,
                                   int(api.max_uncompressed_mb * 1e6), api.max_compression_ratio)
            root = extract_zip(path, workdir / "in", limits).root
        index = index_path(root)
        try:
            reports = [select_series(index, settings.selection)]
        except MultipleStudiesError:
            if not each_study:
                raise
            reports = [select_series(_only_study(index, uid), settings.selection)
                       for uid in index.study_uids]
    except SelectionError as exc:
        if as_json:
            typer.echo(json.dumps({"error": str(exc), "error_code": exc.code}))
        else:
            console.print(f"[red]{exc}[/red]")
        raise typer.Exit(code=EXIT_BAD_INPUT) from None
    finally:
        if workdir is not None:
            remove_tree(workdir)
    _print(reports, as_json, console)
    raise typer.Exit(code=0 if all(r.chosen_series_uid for r in reports) else EXIT_NO_USABLE)


def _only_study(index: DicomIndex, study_uid: str) -> DicomIndex:
    return replace(index, instances=tuple(i for i in index.instances if i.study_uid == study_uid))


def _print(reports: list[SelectionReport], as_json: bool, console: Console) -> None:
    if as_json:
        data = [r.to_json() for r in reports]
        typer.echo(json.dumps(data[0] if len(data) == 1 else data, indent=2, ensure_ascii=False))
        return
    for report in reports:
        console.print(format_report_table(report))
        console.print(report.explanation, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("select")(select)

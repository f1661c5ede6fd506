"""``ctnode features DIR --out CACHE``: every installed model's outputs per study, cached.

A door onto ``inference.training.extract_features``: resumable (a study whose
outputs are cached for the current model versions is skipped), with a progress
bar. The cache feeds ``ctnode train`` and ``ctnode evaluate --features``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ctnode.settings import get_settings


def features(
    input_dir: Annotated[Path, typer.Argument(
        exists=True, file_okay=False,
        help="Folder of studies: DICOM study folders, ZIPs and NIfTI files directly under it.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The feature cache folder.")],
    models: Annotated[str, typer.Option(
        help="Comma-separated model names (default: inference.enabled_models).")] = "",
) -> None:
    """Run every installed model on every study and cache its outputs (resumable)."""
    from inference.training import extract_features

    console = Console(stderr=True)
    names = [m.strip() for m in models.split(",") if m.strip()] or None
    with Progress(TextColumn("[bold]features"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.description}"), TimeRemainingColumn(),
                  console=console) as progress:
        task = progress.add_task("", total=None)

        def step(i: int, n: int, outcome: object) -> None:
            status = getattr(outcome, "status", "")
            progress.update(task, completed=i, total=n, description=status)
            if status in ("failed", "partial"):
                progress.console.print(f"study {getattr(outcome, 'study', '') or '?'}: {status}: "
                                       f"{getattr(outcome, 'error', '')}")

        try:
            summary = extract_features(input_dir, out, get_settings(), models=names,
                                       on_study=step)
        except ValueError as exc:  # unknown model name
            console.print(f"[red]{exc}")
            raise typer.Exit(2) from exc
    typer.echo(f"{len(summary.studies)} input(s) in {summary.seconds:.0f} s: "
               f"{summary.count('done')} extracted, {summary.count('cached')} already cached, "
               f"{summary.count('partial')} partial, {summary.count('failed')} failed; models "
               + ", ".join(f"{m} ({v})" for m, v in summary.models.items()) + f"; cache {out}")
    if summary.studies and summary.count("failed") == len(summary.studies):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("features")(features)

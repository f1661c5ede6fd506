"""``ctnode predict PATH``: run the pipeline on a ZIP, a DICOM folder or a NIfTI file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ctnode.settings import get_settings
from inference.pipeline import run_pipeline


def predict(
    path: Annotated[Path, typer.Argument(help="ZIP of DICOM files, folder of DICOM files, "
                                         "or a .nii / .nii.gz volume.", exists=True)],
    output: Annotated[Path | None, typer.Option("--output", "-o",
                                                help="Also write the JSON to this file.")] = None,
    compact: Annotated[bool, typer.Option(help="One-line JSON instead of indented.")] = False,
) -> None:
    """Analyse one study and print the same JSON as the REST API's /predict.

    Exit status: 0 on Success, 1 on Failure (the JSON says why).
    """
    result = run_pipeline(path, get_settings())
    text = json.dumps(result.to_json(), indent=None if compact else 2, ensure_ascii=False)
    typer.echo(text)
    if output is not None:
        output.write_text(text + "\n", encoding="utf-8")
    raise typer.Exit(code=0 if result.ok else 1)


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)

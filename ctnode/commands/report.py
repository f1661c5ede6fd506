"""``ctnode report PATH --out DIR``: run the pipeline, write SR + SC + JSON into DIR.

A door: it calls ``inference.pipeline.run_pipeline`` and hands the result to
``sr_writer.write_result_objects``. For a Failure it finds the received
instances of the study itself (the pipeline returns no volume then), so the
failure SR joins the right study. NIfTI input has no DICOM study to join: only
the JSON is written, and the command says so.

Exit status: 0 Success, 1 Failure (a failure SR is written where possible),
2 the DICOM objects could not be written.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Annotated

import typer

from ctnode.settings import Settings, get_settings
from inference.pipeline import is_nifti, run_pipeline
from inference.types import StudyResult
from series_selector import index_path

logger = logging.getLogger(__name__)


def failure_source_paths(folder: Path, result: StudyResult) -> list[Path]:
    """Instances of the failed study under ``folder`` (all of them: the SR's evidence).

    Empty when the study is unknown (no DICOM, several studies): then there is
    no single study a failure SR could join.
    """
    if not result.study_uid or not folder.exists():
        return []
    index = index_path(folder)
    return sorted(i.path for i in index.instances if i.study_uid == result.study_uid)


def _write_json_only(result: StudyResult, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "result.json"
    path.write_text(json.dumps(result.to_json(), indent=2, ensure_ascii=False), encoding="utf-8")
    return path


def run_report(path: Path, out: Path, settings: Settings) -> tuple[StudyResult, dict[str, object]]:
    """Pipeline + writer for one input; returns the result and what was written."""
    from sr_writer import write_result_objects  # highdicom: only when a report is written

    work = Path(tempfile.mkdtemp(prefix="ctnode-report-", dir=settings.node.temp_dir))
    try:
        result = run_pipeline(path, settings, work_dir=work)
        if is_nifti(path):
            return result, {"json": str(_write_json_only(result, out)), "sr": None, "sc": [],
                            "note": "NIfTI input: no DICOM study to add an SR to"}
        folder = work / "input" if path.is_file() and zipfile.is_zipfile(path) else path
        sources = None if result.ok else failure_source_paths(folder, result)
        if sources is not None and not sources:
            return result, {"json": str(_write_json_only(result, out)), "sr": None, "sc": [],
                            "note": "no single DICOM study to add a failure SR to"}
        written = write_result_objects(
            result, out, settings.output, source_paths=sources,
            finding_threshold=settings.inference.finding_threshold,
        )
        return result, {
            "json": str(written.json_path),
            "sr": str(written.sr_path) if written.sr_path else None,
            "sc": [str(p) for p in written.sc_paths],
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(
    path: Annotated[Path, typer.Argument(help="ZIP of DICOM files, folder of DICOM files, "
                                         "or a .nii / .nii.gz volume.", exists=True)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the SR, SC and JSON.")],
) -> None:
    """Analyse one study and write a TID 1500 SR, Secondary Capture key images and the JSON.

    Exit status: 0 on Success, 1 on Failure (a failure SR says why), 2 when the
    DICOM objects could not be written.
    """
    from sr_writer import OutputError

    settings = get_settings()
    try:
        result, written = run_report(path, out, settings)
    except OutputError as exc:
        logger.exception("writing the DICOM results failed")
        typer.echo(json.dumps({"error": str(exc)}), err=True)
        raise typer.Exit(code=2) from exc
    typer.echo(json.dumps({"processing_status": result.status.value, **written}, indent=2))
    raise typer.Exit(code=0 if result.ok else 1)


def register(app: typer.Typer) -> None:
    app.command("report")(report)

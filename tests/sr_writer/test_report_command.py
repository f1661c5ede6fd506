"""``ctnode report PATH --out DIR`` end to end: the real pipeline, then the writer."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from ctnode.commands import report as report_command
from ctnode.settings import Settings
from inference.ensemble import MODEL_REGISTRY
from sr_writer import read_back
from tests.sr_writer.synthetic import SyntheticStudy
from tests.sr_writer.validators import dciodvfy


@pytest.fixture()
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> typer.Typer:
    # every registered model (the defaults may name models not built yet)
    settings = Settings(node={"work_dir": tmp_path / "var", "temp_dir": None},
                        inference={"enabled_models": list(MODEL_REGISTRY)})
    monkeypatch.setattr(report_command, "get_settings", lambda: settings)
    app = typer.Typer()
    report_command.register(app)
    app.command("noop", hidden=True)(lambda: None)  # keep "report" a sub-command
    return app


def _run(app: typer.Typer, source: Path, out: Path) -> tuple[int, dict[str, object]]:
    res = CliRunner().invoke(app, ["report", str(source), "--out", str(out)])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.output
    return res.exit_code, json.loads(res.stdout)


def _check_outputs(out: Path, written: dict[str, object]) -> dict[str, object]:
    body = json.loads((out / "result.json").read_text(encoding="utf-8"))
    sr_path = Path(str(written["sr"]))
    for path in [sr_path, *(Path(p) for p in written["sc"])]:  # type: ignore[union-attr]
        assert dciodvfy(path).errors == (), path.name
    back = read_back(sr_path)
    json_findings = {k: v["probability"] for k, v in body["findings"].items()
                     if v["probability"] is not None}
    assert back.findings == pytest.approx(json_findings, abs=1e-3)  # SR: 3 decimals
    assert back.processing_succeeded == (body["processing_status"] == "Success")
    return body


def test_report_on_a_dicom_folder(cli: typer.Typer, study: SyntheticStudy,
                                  tmp_path: Path) -> None:
    code, written = _run(cli, study.paths[0].parent, tmp_path / "out")
    body = _check_outputs(tmp_path / "out", written)
    assert body["processing_status"] == "Success", body.get("error")
    assert code == 0
    assert body["study_uid"] == study.study_uid


def test_report_on_a_zip_reads_sources_before_cleanup(cli: typer.Typer, study: SyntheticStudy,
                                                      tmp_path: Path) -> None:
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in study.paths:
            zf.write(path, f"dicom/{path.name}")
    code, written = _run(cli, archive, tmp_path / "out")
    body = _check_outputs(tmp_path / "out", written)
    assert code == (0 if body["processing_status"] == "Success" else 1)
    assert body["study_uid"] == study.study_uid


def test_report_on_a_failing_study_writes_a_failure_sr(
    cli: typer.Typer, study: SyntheticStudy, tmp_path: Path
) -> None:
    short = tmp_path / "short"
    short.mkdir()
    for path in study.paths[:6]:  # 6 slices: too few, too short for a chest
        shutil.copy(path, short / path.name)
    code, written = _run(cli, short, tmp_path / "out")
    assert code == 1
    body = _check_outputs(tmp_path / "out", written)
    assert body["processing_status"] == "Failure"
    back = read_back(Path(str(written["sr"])))
    assert any(str(body["error_code"]) in c for c in back.comments)


def test_report_on_nifti_writes_json_only(cli: typer.Typer, tmp_path: Path) -> None:
    nii = tmp_path / "vol.nii.gz"
    nib.save(nib.Nifti1Image(np.full((8, 8, 8), -1000, dtype=np.int16), np.eye(4)), nii)
    code, written = _run(cli, nii, tmp_path / "out")
    assert code == 1  # an 8 mm cube of air is not a chest CT
    assert written["sr"] is None and written["sc"] == []
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["result.json"]

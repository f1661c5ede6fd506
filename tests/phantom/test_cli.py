"""``ctnode phantom``: writes a study and says where."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
from typer.testing import CliRunner

from ctnode.cli import app


def test_phantom_command_writes_study(tmp_path: Path) -> None:
    out = tmp_path / "study"
    res = CliRunner().invoke(app, [
        "phantom", str(out), "--lesions", "nodule:diameter_mm=14:side=left,effusion",
        "--seed", "4", "--size", "64", "--slices", "40", "--spacing", "5",
        "--series", "thin,localizer", "--transfer-syntax", "rle",
        "--patient-name", "Сидоров^Олег",
    ])
    assert res.exit_code == 0, res.output
    assert "study 1." in res.output and "lung_nodule" in res.output
    truth = json.loads((out / "truth.json").read_text(encoding="utf-8"))
    assert truth["findings"]["pleural_effusion"] == "present"
    files = sorted((out / "thin").glob("*.dcm"))
    assert len(files) == 40
    ds = pydicom.dcmread(files[0])
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.5"
    assert str(ds.PatientName) == "Сидоров^Олег"
    assert (out / "localizer").is_dir() and not (out / "thick").exists()


def test_phantom_command_rejects_bad_lesion(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["phantom", str(tmp_path), "--lesions", "tumour"])
    assert res.exit_code == 2
    assert "unknown lesion" in res.output


def test_phantom_help_lists_lesions() -> None:
    res = CliRunner().invoke(app, ["phantom", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    assert "pneumothorax" in res.output and "--transfer-syntax" in res.output


def test_phantom_command_clinical_series(tmp_path: Path) -> None:
    out = tmp_path / "clinical"
    res = CliRunner().invoke(app, ["phantom", str(out), "--size", "48", "--slices", "12",
                                   "--spacing", "5", "--series", "clinical"])
    assert res.exit_code == 0, res.output
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert folders == ["coronal", "dose", "localizer", "thick", "thin", "thin_soft"]
    kernels = {pydicom.dcmread(next((out / f).glob("*.dcm")), stop_before_pixels=True)
               .ConvolutionKernel for f in ("thin", "thin_soft")}
    assert kernels == {"LUNG", "STANDARD"}

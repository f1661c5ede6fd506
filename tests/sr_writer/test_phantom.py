"""The phantom (lesions present and absent) through the real pipeline and the writer."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest

from ctnode.commands.report import run_report
from ctnode.settings import Settings
from inference.ensemble import MODEL_REGISTRY
from phantom import write_small_study
from phantom.types import LungSite, Nodule, PleuralEffusion, Side
from sr_writer import read_back
from sr_writer.plan import report_plan
from tests.sr_writer.validators import dciodvfy, dsrdump

N_SLICES = 56  # 2.5 mm: 137.5 mm of chest, enough for selection and quick to make


def _settings(tmp: Path) -> Settings:
    return Settings(node={"work_dir": tmp / "var", "temp_dir": None},
                    inference={"enabled_models": list(MODEL_REGISTRY)})


@pytest.mark.parametrize("lesions", ["two_lesions", "none"])
def test_phantom_report(lesions: str, tmp_path: Path) -> None:
    chosen = {
        "two_lesions": [Nodule(diameter_mm=16, site=LungSite(Side.RIGHT, 0.5, 0.5, 0.6)),
                        PleuralEffusion(side=Side.LEFT, volume_ml=300)],
        "none": [],
    }[lesions]
    study = write_small_study(tmp_path / "study", lesions=chosen, seed=3, n_slices=N_SLICES)
    result, written = run_report(study.root, tmp_path / "out", _settings(tmp_path))
    assert result.ok, result.error
    sr_path = Path(str(written["sr"]))
    sc_paths = [Path(p) for p in written["sc"]]  # type: ignore[union-attr]
    for path in [sr_path, *sc_paths]:
        report = dciodvfy(path)
        assert report.errors == (), (path.name, report.errors)
        assert all("99CTNODE" in w for w in report.warnings), report.warnings
    dsrdump(sr_path)

    back = read_back(sr_path)
    body = json.loads((tmp_path / "out" / "result.json").read_text(encoding="utf-8"))
    assert back.findings == pytest.approx(
        {k: v["probability"] for k, v in body["findings"].items()
         if v["probability"] is not None}, abs=1e-3)
    assert back.decision == result.decision
    threshold = Settings().inference.finding_threshold
    plan = report_plan(result, threshold, Settings().output.sc_max_key_images)
    assert len(sc_paths) == 1 + len(plan.key_images)
    assert len(back.lesions) == len(plan.lesions)
    assert all(back.present[ln.finding_key] for ln in back.lesions)  # never under "Absent"
    assert len(back.findings) + len(back.not_assessed) == 22
    assert result.study_uid == study.study_uid
    assert all(pydicom.dcmread(p, stop_before_pixels=True).StudyInstanceUID == study.study_uid
               for p in [sr_path, *sc_paths])
    if lesions == "two_lesions":
        effusion = result.finding("pleural_effusion")
        assert effusion is not None and (effusion.probability or 0) >= threshold
        assert back.present["pleural_effusion"]
        sides = {ln.laterality for ln in back.lesions if ln.finding_key == "pleural_effusion"}
        assert sides == {"left"}

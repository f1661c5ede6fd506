"""run_pipeline end to end: phantom DICOM folder, ZIP, NIfTI, and the real cases."""

from __future__ import annotations

import json
import logging
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from ctnode.settings import Settings
from inference import pipeline, run_pipeline
from inference.findings import FINDING_KEYS
from inference.types import ProcessingStatus
from tests.conftest import shared_case
from tests.helpers import zip_folder


def test_folder_and_zip_give_the_same_result(settings: Settings, small_study: Any,
                                             tmp_path: Path) -> None:
    from_folder = run_pipeline(small_study.root, settings)
    from_zip = run_pipeline(zip_folder(small_study.root, tmp_path / "s.zip"), settings)
    assert from_folder.ok, from_folder.error
    assert from_zip.ok, from_zip.error
    assert from_folder.study_uid == from_zip.study_uid == small_study.study_uid
    assert from_folder.series_uid == from_zip.series_uid
    assert from_folder.probability == pytest.approx(from_zip.probability)
    assert tuple(f.key for f in from_folder.findings) == FINDING_KEYS
    for stage in ("index", "select", "load_volume", "inference"):
        assert stage in from_folder.stage_seconds
    assert "unpack" in from_zip.stage_seconds
    # The volume handed on to the SR writer names the analysed slices.
    vol = from_folder.volume
    assert vol is not None and len(vol.slice_sop_instance_uids) == vol.shape[0]


def test_json_is_serialisable_and_complete(settings: Settings, small_study: Any) -> None:
    body = run_pipeline(small_study.root, settings).to_json()
    text = json.dumps(body)
    assert json.loads(text)["processing_status"] == "Success"
    unassessed = [k for k, v in body["findings"].items() if v["probability"] is None]
    for key in unassessed:
        assert body["findings"][key]["note"], f"{key} is null without saying why"


def test_missing_input_is_a_failure_not_an_exception(settings: Settings, tmp_path: Path) -> None:
    result = run_pipeline(tmp_path / "nope", settings)
    assert result.status is ProcessingStatus.FAILURE and result.error_code == "not_found"


def test_unsupported_file(settings: Settings, tmp_path: Path) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("hello")
    result = run_pipeline(f, settings)
    assert result.error_code == "unsupported_input"


def test_input_path_stays_out_of_the_log(settings: Settings, tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    """Exported folders are often named after the patient: the path must not be logged."""
    folder = tmp_path / "DOE_JOHN_1960"
    with caplog.at_level(logging.DEBUG):
        assert run_pipeline(folder, settings).error_code == "not_found"
        folder.mkdir()
        (folder / "DOE_JOHN.txt").write_text("hello")
        assert run_pipeline(folder / "DOE_JOHN.txt", settings).error_code == "unsupported_input"
    assert caplog.messages and not any("DOE" in m for m in caplog.messages)


def test_concurrent_first_calls_build_the_ensemble_once(settings: Settings,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[int] = []

    def slow_build(s: Settings) -> object:
        built.append(1)
        time.sleep(0.2)
        return object()

    monkeypatch.setattr(pipeline, "_ensemble_cache", {})
    monkeypatch.setattr(pipeline, "build_ensemble", slow_build)
    threads = [threading.Thread(target=pipeline.get_ensemble, args=(settings,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(built) == 1


def test_two_studies_are_refused_by_name(settings: Settings, tmp_path: Path) -> None:
    from phantom import write_small_study

    a = write_small_study(tmp_path / "a", seed=1)
    b = write_small_study(tmp_path / "b", seed=2)
    assert a.study_uid != b.study_uid
    result = run_pipeline(tmp_path, settings)
    assert result.error_code == "multiple_studies"
    assert a.study_uid in result.error and b.study_uid in result.error


@pytest.mark.real_data
def test_real_lung_adenocarcinoma(settings: Settings) -> None:
    """TCIA Lung-PET-CT-Dx A0001: Success, pathology 1, a nodule/mass at the tumour."""
    case = shared_case("lungpetctdx_A0001")
    result = run_pipeline(case, settings)
    assert result.ok, result.error
    assert result.decision == 1
    sel = result.selection
    assert sel is not None
    accepted = [s for s in sel.series if s.accepted]
    assert len(accepted) == 2
    assert "thick" in " ".join(sel.chosen.reasons if sel.chosen else ()).lower() or any(
        "thick" in r.lower() for s in accepted for r in s.reasons
    )
    tumour_z = _annotated_tumour_z(case)
    lesion_ev = [e for f in result.findings if f.key in ("lung_nodule", "lung_mass")
                 for e in f.evidence]
    assert any(min(tumour_z) <= e.center_lps[2] <= max(tumour_z) for e in lesion_ev)


@pytest.mark.real_data
def test_real_adenocarcinoma_is_why_pathology_is_1(settings: Settings) -> None:
    """pathology 1 must hold because of the tumour, not of another finding (this
    patient's coronary calcium alone gives 1): a lesion finding at or above the
    decision threshold whose evidence lies on the annotated boxes."""
    case = shared_case("lungpetctdx_A0001")
    result = run_pipeline(case, settings)
    assert result.ok, result.error
    from evaluation.matching import hits
    from evaluation.real import case_truth, discover_cases
    from evaluation.types import Detection
    from series_selector import index_path

    threshold = settings.inference.decision_threshold
    lesions = [f for f in result.findings if f.key in ("lung_nodule", "lung_mass")
               and f.probability is not None and f.probability >= threshold]
    assert lesions, "the adenocarcinoma must be reported as a nodule or mass"
    (labelled,) = [c for c in discover_cases(case.parent) if c.root == case]
    (tumour,) = case_truth(labelled, index_path(case)).lesions
    on_tumour = [e for f in lesions for e in f.evidence
                 if hits(Detection(e.center_lps, 1.0, e.diameter_mm or 0.0, 0.0), tumour)]
    assert on_tumour, [e.center_lps for f in lesions for e in f.evidence]


def _annotated_tumour_z(case: Path) -> list[float]:
    """z (mm) of the annotated slices, read from the SOP UIDs the annotations name."""
    import pydicom

    uids = {p.stem for p in (case / "annotations").glob("*.xml")}  # file name = SOP UID
    assert all(ET.parse(p).getroot().find("object") is not None
               for p in (case / "annotations").glob("*.xml"))
    zs = []
    for p in case.rglob("*.dcm"):
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        if ds.SOPInstanceUID in uids:
            zs.append(float(ds.ImagePositionPatient[2]))
    assert zs, "annotations name no slice of the study"
    return zs


@pytest.mark.real_data
def test_real_three_slices_fail_for_coverage(settings: Settings) -> None:
    result = run_pipeline(shared_case("dcmqi_ct3slice"), settings)
    assert result.error_code == "no_usable_series"
    assert "slice" in result.error.lower() or "coverage" in result.error.lower()

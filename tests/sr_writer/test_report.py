"""The TID 1500 SR: validators, highdicom round trip, identity, failure variant."""

from __future__ import annotations

import dataclasses
import logging
import warnings
from pathlib import Path

import highdicom as hd
import pydicom
import pytest

from ctnode.settings import OutputSettings
from inference.findings import FINDINGS
from inference.types import ModelStatus
from sr_writer import (
    SourceMismatchError,
    build_structured_report,
    codes,
    read_back,
    write_result_objects,
)
from tests.sr_writer.conftest import CYRILLIC_NAME
from tests.sr_writer.synthetic import (
    NODULE,
    SyntheticStudy,
    failure,
    success_nothing_found,
    success_with_lesions,
    write_study,
)
from tests.sr_writer.validators import dciodvfy, dsrdump


def _headers(study: SyntheticStudy) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p, stop_before_pixels=True) for p in study.paths]


def test_success_with_lesions_validates_and_round_trips(
    study: SyntheticStudy, settings: OutputSettings, tmp_path: Path
) -> None:
    result = success_with_lesions(study)
    written = write_result_objects(result, tmp_path, settings)
    assert written.sr_path is not None

    report = dciodvfy(written.sr_path)
    assert report.iod == "ComprehensiveSR"
    assert report.errors == (), report.errors
    # the only warning left: our private coding scheme is not in dciodvfy's registry
    assert all("99CTNODE" in w for w in report.warnings), report.warnings

    dump = dsrdump(written.sr_path)
    for text in ("Imaging Measurement Report", FINDINGS["lung_nodule"].concept.meaning,
                 FINDINGS["pleural_effusion"].concept.meaning,
                 "Probability", "Device Observer UID", "SCOORD", "CT Chest",
                 "AI result, decision support"):
        assert text in dump, text

    back = read_back(written.sr_path)
    assessed = {f.key: f.probability for f in result.findings if f.assessed}
    assert back.findings == pytest.approx(assessed, abs=1e-3)
    assert "pneumothorax" not in back.findings  # not assessed: no fake 0 ...
    assert back.not_assessed["pneumothorax"] == "Not assessed: model not installed"  # ... a reason
    assert len(back.findings) + len(back.not_assessed) == len(FINDINGS)  # every finding once
    assert back.present == {"lung_nodule": True, "pleural_effusion": True,
                            "emphysema": False, "cardiomegaly": False}
    assert back.overall_probability == pytest.approx(0.93)
    assert back.decision == 1
    assert back.processing_succeeded
    assert back.measurements["emphysema"] == {"LAA-950": pytest.approx(7.2)}
    nodule = next(ln for ln in back.lesions if ln.finding_key == "lung_nodule")
    evidence = result.findings[0].evidence[0]
    assert nodule.tracking_identifier == "Lung nodule 1"
    assert nodule.probability == pytest.approx(0.91)
    assert nodule.diameter_mm == pytest.approx(evidence.diameter_mm, abs=0.05)
    assert nodule.volume_ml == pytest.approx(evidence.volume_ml, abs=0.05)
    assert nodule.laterality == "right"
    # a 2D outline on the key source slice, around the nodule's pixel centre
    assert nodule.graphic_type == "POLYLINE"
    assert nodule.referenced_sop_instance_uid == study.volume.slice_sop_instance_uids[NODULE[0]]
    cols, rows = zip(*nodule.image_points, strict=True)
    assert nodule.image_points[0] == nodule.image_points[-1]  # closed
    assert (min(cols) + max(cols)) / 2 == pytest.approx(NODULE[2] + 0.5, abs=0.6)
    assert (min(rows) + max(rows)) / 2 == pytest.approx(NODULE[1] + 0.5, abs=0.6)
    effusion = next(ln for ln in back.lesions if ln.finding_key == "pleural_effusion")
    assert effusion.graphic_type == "POINT"  # no mask, no diameter
    assert any("Series selection" in c for c in back.comments)
    # the SR references every SC image written (summary + one per lesion)
    sc_uids = [str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
               for p in written.sc_paths]
    assert set(back.key_image_uids) == set(sc_uids)
    # the Image Library lists only the slices a region points at
    sr = pydicom.dcmread(written.sr_path)
    library = [i for i in sr.ContentSequence
               if i.ConceptNameCodeSequence[0].CodeMeaning == "Image Library"]
    referenced = [e for g in library[0].ContentSequence for e in g.ContentSequence]
    assert {e.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for e in referenced} == {
        ln.referenced_sop_instance_uid for ln in back.lesions}
    evidence_uids = {i.ReferencedSOPInstanceUID
                     for s in sr.CurrentRequestedProcedureEvidenceSequence
                     for r in s.ReferencedSeriesSequence for i in r.ReferencedSOPSequence}
    assert set(study.volume.slice_sop_instance_uids) <= evidence_uids


def test_every_container_is_separate_and_values_are_rounded(
    study: SyntheticStudy, settings: OutputSettings
) -> None:
    built = build_structured_report(success_with_lesions(study), _headers(study), settings)
    for elem in built.iterall():
        if elem.keyword == "ContinuityOfContent":
            assert elem.value == "SEPARATE"
        if elem.keyword == "NumericValue":
            text = str(elem.value)
            assert len(text.split(".")[-1]) <= 3, text  # no 0.99999999999975


def test_lesion_sites_carry_laterality_and_source_image(
    study: SyntheticStudy, settings: OutputSettings
) -> None:
    built = build_structured_report(success_with_lesions(study), _headers(study), settings)
    sr = hd.sr.ComprehensiveSR.from_dataset(built, copy=True)
    groups = sr.content.get_volumetric_roi_measurement_groups()  # TID 1411: they have volumes
    by_key = {codes.finding_key_for(g.finding_type): g for g in groups}
    nodule_site = by_key["lung_nodule"].finding_sites[0]
    effusion_site = by_key["pleural_effusion"].finding_sites[0]
    assert nodule_site.value == codes.finding_site("lung_nodule")
    assert nodule_site.laterality == codes.RIGHT  # low column index = patient's right
    assert effusion_site.laterality == codes.LEFT
    (region,) = by_key["lung_nodule"].roi
    assert region.ValueType == "SCOORD" and region.GraphicType == "POLYLINE"
    source = region.ContentSequence[0]
    assert source.RelationshipType == "SELECTED FROM"
    assert source.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == (
        study.volume.slice_sop_instance_uids[NODULE[0]])


def test_nothing_found(study: SyntheticStudy, settings: OutputSettings, tmp_path: Path) -> None:
    result = success_nothing_found(study)
    written = write_result_objects(result, tmp_path, settings)
    assert written.sr_path is not None
    assert dciodvfy(written.sr_path).errors == ()
    dsrdump(written.sr_path)
    back = read_back(written.sr_path)
    assert back.decision == 0
    assert back.overall_probability == pytest.approx(0.08)
    assert back.findings == pytest.approx({"lung_nodule": 0.04, "emphysema": 0.11,
                                           "pleural_effusion": 0.02})
    assert len(back.not_assessed) == len(FINDINGS) - 3
    assert not any(back.present.values())
    assert back.lesions == ()
    assert len(written.sc_paths) == 1  # summary panel only


def test_failure_sr_says_why(study: SyntheticStudy, settings: OutputSettings,
                             tmp_path: Path) -> None:
    result = failure(study)
    written = write_result_objects(result, tmp_path, settings, source_paths=study.paths[:3])
    assert written.sr_path is not None
    report = dciodvfy(written.sr_path)
    assert report.errors == ()
    assert report.warnings == ()  # no private codes in a failure SR
    assert "No algorithms succeeded" in dsrdump(written.sr_path)
    back = read_back(written.sr_path)
    assert not back.processing_succeeded
    assert back.findings == {} and back.overall_probability is None
    assert any("[not_chest]" in c and "not a chest CT" in c for c in back.comments)


def test_failure_sr_can_be_switched_off(study: SyntheticStudy, tmp_path: Path) -> None:
    off = OutputSettings(write_failure_sr=False)
    written = write_result_objects(failure(study), tmp_path, off, source_paths=study.paths[:1])
    assert written.sr_path is None and written.sc_paths == ()
    assert written.json_path.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]


def test_identity_copied_and_uids_deterministic(
    study: SyntheticStudy, settings: OutputSettings
) -> None:
    headers = _headers(study)
    first = build_structured_report(success_with_lesions(study), headers, settings)
    again = build_structured_report(success_with_lesions(study), headers, settings)
    newer = build_structured_report(success_with_lesions(study), headers, settings,
                                    software_version="9.9.9")
    src = headers[0]
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                    "StudyInstanceUID", "AccessionNumber", "StudyID", "StudyDate"):
        assert first[keyword].value == src[keyword].value, keyword
    assert first.SeriesInstanceUID != src.SeriesInstanceUID
    assert first.SOPInstanceUID.startswith(settings.org_uid_root + ".")
    assert first.SeriesNumber == settings.sr_series_number
    assert (first.SOPInstanceUID, first.SeriesInstanceUID) == (
        again.SOPInstanceUID, again.SeriesInstanceUID)
    assert newer.SOPInstanceUID != first.SOPInstanceUID
    assert first.Manufacturer == settings.manufacturer
    assert first.SeriesDate == first.ContentDate and first.SeriesTime


def test_sources_from_another_study_are_refused(
    study: SyntheticStudy, cyrillic_study: SyntheticStudy, settings: OutputSettings
) -> None:
    with pytest.raises(SourceMismatchError):
        build_structured_report(success_with_lesions(study), _headers(cyrillic_study), settings)
    with pytest.raises(SourceMismatchError):
        build_structured_report(success_with_lesions(study),
                                _headers(study) + _headers(cyrillic_study), settings)


def test_cyrillic_name_survives(
    cyrillic_study: SyntheticStudy, settings: OutputSettings, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pydicom's charset warnings are failures here
        written = write_result_objects(success_with_lesions(cyrillic_study), tmp_path, settings)
        for path in written.dicom_paths:
            ds = pydicom.dcmread(path)
            assert ds.SpecificCharacterSet == "ISO_IR 192"
            assert str(ds.PatientName) == CYRILLIC_NAME
            assert "?" not in str(ds.PatientName)
            assert dciodvfy(path).errors == ()
    assert written.sr_path is not None
    assert "Иванов" in dsrdump(written.sr_path, utf8=True)
    for message in caplog.messages:  # no PHI in our logs
        assert "Иванов" not in message and "SYN0001" not in message


def test_no_phi_in_logs(study: SyntheticStudy, settings: OutputSettings, tmp_path: Path,
                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="sr_writer")
    write_result_objects(success_with_lesions(study), tmp_path, settings)
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("sr_writer")]
    assert any("TID 1500" in m for m in ours)
    for message in ours:
        assert "Test^Patient" not in message and "SYN0001" not in message
        assert "19600101" not in message


def test_model_versions_override(study: SyntheticStudy, settings: OutputSettings) -> None:
    headers = _headers(study)
    base = build_structured_report(success_with_lesions(study), headers, settings)
    other = build_structured_report(
        success_with_lesions(study), headers, settings,
        model_versions=[ModelStatus("chest_quant", "0.9.0", True, ("emphysema",))])
    texts = {str(e.value) for e in other.iterall() if e.keyword == "TextValue"}
    assert "chest_quant 0.9.0 (weights installed)" in texts
    assert not any("lung_quant" in t for t in texts)
    assert other.SOPInstanceUID != base.SOPInstanceUID  # models are part of the UID seed


@pytest.mark.parametrize("charset", ["", "ISO_IR 999"])
def test_empty_or_unknown_charset_is_the_default_repertoire(
    charset: str, settings: OutputSettings, tmp_path: Path,
) -> None:
    """An empty (GE) or unknown Specific Character Set is written as ISO_IR 100, no crash."""
    src = write_study(tmp_path / "src", charset="ISO_IR 100", seed=f"charset-{charset}")
    for path in src.paths:  # pydicom refuses to write an unknown charset: patch the files
        ds = pydicom.dcmread(path)
        ds.SpecificCharacterSet = charset
        ds.save_as(path, enforce_file_format=True)
    written = write_result_objects(failure(src), tmp_path / "out", settings,
                                   source_paths=src.paths[:3])
    for path in written.dicom_paths:
        ds = pydicom.dcmread(path)
        assert ds.SpecificCharacterSet == "ISO_IR 100"
        assert dciodvfy(path).errors == ()


def test_real_ge_series_with_empty_charset(shared_data: Path, tmp_path: Path) -> None:
    """dcmqi_ct3slice has Specific Character Set present but empty (issue 15, point 4)."""
    from ctnode.commands.report import run_report
    from ctnode.settings import Settings

    folder = shared_data / "dcmqi_ct3slice"
    if not folder.is_dir():
        pytest.skip("dcmqi_ct3slice is absent")
    result, written = run_report(folder, tmp_path / "out",
                                 Settings(node={"work_dir": tmp_path / "var", "temp_dir": None}))
    assert not result.ok  # 3 slices: too few, stated as a Failure
    sr = Path(str(written["sr"]))
    assert pydicom.dcmread(sr).SpecificCharacterSet == "ISO_IR 100"
    assert dciodvfy(sr).errors == ()
    assert not read_back(sr).processing_succeeded


def test_sr_of_a_300_slice_study_stays_small(
    study: SyntheticStudy, settings: OutputSettings, tmp_path: Path
) -> None:
    """The SR grows with the evidence list only (~130 B a slice): < 200 KB at 300 slices."""
    import copy

    import numpy as np
    from pydicom.uid import generate_uid

    base = _headers(study)[0]
    headers, uids = [], []
    for k in range(300):
        ds = copy.deepcopy(base)
        uids.append(generate_uid(entropy_srcs=["big", str(k)]))
        ds.SOPInstanceUID = uids[-1]
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [-168.0, -168.0, -300.0 + k * 1.0]
        headers.append(ds)
    voxels = np.repeat(study.volume.voxels[12:13], 300, axis=0)
    volume = dataclasses.replace(study.volume, voxels=voxels, slice_sop_instance_uids=tuple(uids),
                                 spacing=(3.5, 3.5, 1.0), source_paths=())
    result = dataclasses.replace(success_with_lesions(study), volume=volume)
    sr = build_structured_report(result, headers, settings)
    path = tmp_path / "sr.dcm"
    sr.save_as(path, enforce_file_format=True)
    assert path.stat().st_size < 200_000, path.stat().st_size
    assert dciodvfy(path).errors == ()

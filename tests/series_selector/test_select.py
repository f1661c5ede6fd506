"""select_series on synthetic studies: the right series, and a reason for every other one."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from ctnode.settings import SelectionSettings
from series_selector import index_path, select_series
from series_selector.errors import MultipleStudiesError, NoDicomError
from series_selector.types import SelectionReport, SeriesDecision, Verdict
from tests.series_selector.synth import (
    ABDOMEN,
    SeriesSpec,
    write_dose_sr,
    write_localizer,
    write_secondary_capture,
    write_series,
)


def _decision(report: SelectionReport, number: int) -> SeriesDecision:
    return next(d for d in report.series if d.series_number == number)


def _codes(d: SeriesDecision) -> set[str]:
    return {r.code for r in d.results if r.verdict is not Verdict.PASS}


def test_realistic_study_picks_thin_soft_series_and_explains_others(
        tmp_path: Path, study_uid: str, settings: SelectionSettings,
        caplog: pytest.LogCaptureFixture) -> None:
    tmp_path = tmp_path / "Test^Patient SYN001"  # exports often name folders after the patient
    write_localizer(tmp_path / "loc", study_uid, series_number=1)
    write_series(tmp_path / "thin_soft", SeriesSpec(study_uid, series_number=2, step=2.0, n=70,
                                                   kernel="B30f", description="Chest 2 soft"))
    write_series(tmp_path / "thin_sharp", SeriesSpec(study_uid, series_number=3, step=2.0, n=70,
                                                    kernel="B70f", description="Chest 2 lung"))
    write_series(tmp_path / "thick", SeriesSpec(study_uid, series_number=4, step=5.0, n=28,
                                               kernel="B30f", description="Chest 5"))
    write_secondary_capture(tmp_path / "sc", study_uid)
    write_dose_sr(tmp_path / "sr", study_uid)
    with caplog.at_level(logging.DEBUG, logger="series_selector"):
        report = select_series(index_path(tmp_path), settings)
    assert report.study_uid == study_uid
    assert report.chosen is not None and report.chosen.series_number == 2
    assert report.chosen_series_uid == report.chosen.series_uid
    assert "localizer" in _codes(_decision(report, 1))
    sharp = _decision(report, 3)
    assert sharp.accepted and sharp.rank in (2, 3)
    assert any("soft kernel is preferred" in r.reason for r in sharp.results)
    thick = _decision(report, 4)
    assert thick.accepted and "thick" in _codes(thick)
    assert "secondary_capture" in _codes(_decision(report, 998))
    assert "dose_report" in _codes(_decision(report, 999))
    assert "Chose series 2 'Chest 2 soft'" in report.explanation
    assert "localizer" in report.explanation and "dose report" in report.explanation
    assert caplog.messages
    assert all("Test^Patient" not in m and "SYN001" not in m for m in caplog.messages)
    data = report.to_json()
    assert "Test^Patient" not in json.dumps(data) and "SYN001" not in json.dumps(data)
    assert data["chosen_series_uid"] == report.chosen_series_uid
    assert {s["series_number"] for s in data["series"]} == {1, 2, 3, 4, 998, 999}


def test_sharp_kernel_preference_is_a_setting(tmp_path: Path, study_uid: str) -> None:
    write_series(tmp_path / "a", SeriesSpec(study_uid, series_number=2, kernel="B30f"))
    write_series(tmp_path / "b", SeriesSpec(study_uid, series_number=3, kernel="B70f"))
    index = index_path(tmp_path)
    soft = select_series(index, SelectionSettings(prefer_kernel="soft"))
    sharp = select_series(index, SelectionSettings(prefer_kernel="sharp"))
    assert soft.chosen is not None and soft.chosen.series_number == 2
    assert sharp.chosen is not None and sharp.chosen.series_number == 3


def test_contrast_preference(tmp_path: Path, study_uid: str) -> None:
    write_series(tmp_path / "a", SeriesSpec(study_uid, series_number=2))
    write_series(tmp_path / "b", SeriesSpec(study_uid, series_number=3, contrast="IOMEPROL"))
    index = index_path(tmp_path)
    pick = select_series(index, SelectionSettings(prefer_contrast="contrast")).chosen
    assert pick is not None and pick.series_number == 3
    pick = select_series(index, SelectionSettings(prefer_contrast="non_contrast")).chosen
    assert pick is not None and pick.series_number == 2


def test_tie_break_is_deterministic(tmp_path: Path, study_uid: str,
                                    settings: SelectionSettings) -> None:
    write_series(tmp_path / "b", SeriesSpec(study_uid, series_number=7, seed=1))
    write_series(tmp_path / "a", SeriesSpec(study_uid, series_number=5, seed=2))
    first = select_series(index_path(tmp_path), settings)
    again = select_series(index_path(tmp_path), settings)
    assert first.chosen is not None and first.chosen.series_number == 5
    assert again.chosen_series_uid == first.chosen_series_uid
    assert "tie-break" in first.explanation


def test_original_preferred_over_derived_mpr(tmp_path: Path, study_uid: str,
                                             settings: SelectionSettings) -> None:
    write_series(tmp_path / "mpr", SeriesSpec(study_uid, series_number=2, step=1.0, n=130,
                                              image_type=("DERIVED", "SECONDARY", "MPR")))
    write_series(tmp_path / "orig", SeriesSpec(study_uid, series_number=3, step=2.0, n=66))
    report = select_series(index_path(tmp_path), settings)
    assert report.chosen is not None and report.chosen.series_number == 3
    assert "derived" in _codes(_decision(report, 2))


def test_mip_rejected(tmp_path: Path, study_uid: str, settings: SelectionSettings) -> None:
    write_series(tmp_path, SeriesSpec(study_uid, image_type=("DERIVED", "SECONDARY", "MIP")))
    report = select_series(index_path(tmp_path), settings)
    assert report.chosen_series_uid is None
    assert "projection" in _codes(report.series[0])


def test_no_usable_series_returns_specific_explanation(tmp_path: Path, study_uid: str,
                                                       settings: SelectionSettings) -> None:
    write_series(tmp_path, SeriesSpec(study_uid, series_number=2, description="Abdomen 3.0",
                                      n=12, step=3.0, anatomy=ABDOMEN))
    report = select_series(index_path(tmp_path), settings)
    assert report.chosen_series_uid is None and report.chosen is None
    assert report.explanation.startswith("No usable series: series 2 'Abdomen 3.0'")
    assert "covers only 33 mm (at least 120 mm needed" in report.explanation
    assert "has only 12 slices" in report.explanation
    assert "shows no lung fields" in report.explanation


def test_several_studies_named_in_error(tmp_path: Path, settings: SelectionSettings) -> None:
    write_series(tmp_path / "one", SeriesSpec("1.2.3.4", n=3))
    write_series(tmp_path / "two", SeriesSpec("1.2.3.5", n=3))
    with pytest.raises(MultipleStudiesError) as info:
        select_series(index_path(tmp_path), settings)
    assert "1.2.3.4" in str(info.value) and "1.2.3.5" in str(info.value)
    assert info.value.code == "multiple_studies"


def test_no_dicom_error(tmp_path: Path, settings: SelectionSettings) -> None:
    (tmp_path / "readme.txt").write_text("not an image, and long enough to be read " * 3)
    with pytest.raises(NoDicomError) as info:
        select_series(index_path(tmp_path), settings)
    assert "1 unreadable" in str(info.value)


def test_shuffled_files_and_duplicate_copies(tmp_path: Path, study_uid: str,
                                             settings: SelectionSettings) -> None:
    paths = write_series(tmp_path / "s", SeriesSpec(study_uid))
    (tmp_path / "copy").mkdir()
    for p in paths[:3]:  # the same instances sent twice
        (tmp_path / "copy" / p.name).write_bytes(p.read_bytes())
    report = select_series(index_path(tmp_path), settings)
    assert report.chosen is not None
    assert report.chosen.n_slices == 40
    assert "duplicate_instances" in _codes(report.chosen)


def test_missing_slice_is_detected_and_named(tmp_path: Path, study_uid: str,
                                             settings: SelectionSettings) -> None:
    write_series(tmp_path, SeriesSpec(study_uid, skip=(17,)))
    report = select_series(index_path(tmp_path), settings)
    assert report.chosen_series_uid is None
    gap = next(r for r in report.series[0].results if r.code == "missing_slices")
    # slice 17 would sit at z = -60 + 17 * 3.5 = -0.5; neighbours are instances 17 and 19
    assert "1 missing between z=-4.0 and z=3.0 mm (instance 17 and instance 19)" in gap.reason


def test_duplicate_positions_with_new_uids_fail(tmp_path: Path, study_uid: str,
                                                settings: SelectionSettings) -> None:
    write_series(tmp_path, SeriesSpec(study_uid, duplicate_positions=(5,)))
    report = select_series(index_path(tmp_path), settings)
    assert report.chosen_series_uid is None
    assert "duplicate_positions" in _codes(report.series[0])


def test_two_acquisitions_in_one_series_are_split(tmp_path: Path, study_uid: str,
                                                  settings: SelectionSettings) -> None:
    uid = "1.2.826.0.1.3680043.8.498.77"
    write_series(tmp_path / "a", SeriesSpec(study_uid, series_uid=uid, acquisition_number=1))
    write_series(tmp_path / "b", SeriesSpec(study_uid, series_uid=uid, acquisition_number=2,
                                            contrast="IOMEPROL", seed=3))
    report = select_series(index_path(tmp_path), settings)
    assert len(report.series) == 2
    assert {d.stack_id for d in report.series} == {"stack1", "stack2"}
    assert report.chosen is not None and report.chosen_stack_id == report.chosen.stack_id


def test_mixed_orientations_in_one_series_are_split(tmp_path: Path, study_uid: str,
                                                    settings: SelectionSettings) -> None:
    uid = "1.2.826.0.1.3680043.8.498.78"
    write_series(tmp_path / "ax", SeriesSpec(study_uid, series_uid=uid))
    write_series(tmp_path / "cor", SeriesSpec(study_uid, series_uid=uid, n=25,
                                              orientation=(1.0, 0.0, 0.0, 0.0, 0.0, -1.0)))
    report = select_series(index_path(tmp_path), settings)
    assert len(report.series) == 2
    assert report.chosen is not None and report.chosen.n_slices == 40
    other = next(d for d in report.series if not d.accepted)
    assert "not_axial" in _codes(other)
    assert "is coronal, not axial" in report.explanation

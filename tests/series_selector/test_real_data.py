"""The real public cases in ../shared/data (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ctnode.settings import SelectionSettings
from series_selector import (
    check_chest_anatomy,
    index_path,
    load_nifti,
    load_volume,
    select_series,
)
from series_selector.types import Verdict

pytestmark = pytest.mark.real_data


def _codes(report: object) -> set[str]:
    return {r.code for d in report.series for r in d.results  # type: ignore[attr-defined]
            if r.verdict is not Verdict.PASS}


def test_lungpetctdx_two_kernels(shared_data: Path, settings: SelectionSettings) -> None:
    index = index_path(shared_data / "lungpetctdx_A0001")
    assert len(index.instances) == 128
    assert all(u.path.suffix in (".xml", ".txt") for u in index.unreadable)
    report = select_series(index, settings)
    assert all(d.accepted for d in report.series) and len(report.series) == 2
    assert all("thick" in {r.code for r in d.results} for d in report.series)
    chosen = report.chosen
    assert chosen is not None and chosen.convolution_kernel == "B"
    assert "a soft kernel is preferred" in report.explanation
    assert "kernel L is sharp" in report.explanation
    sharp = select_series(index, SelectionSettings(prefer_kernel="sharp"))
    assert sharp.chosen is not None and sharp.chosen.convolution_kernel == "L"
    vol = load_volume(index, report)
    assert vol.shape == (64, 512, 512)
    assert vol.spacing == pytest.approx((0.841796875, 0.841796875, 5.0))
    assert vol.voxels.min() == -1024 and vol.voxels.max() == 2976
    assert any("thick for nodule detection" in n for n in vol.notes)
    assert check_chest_anatomy(vol, settings).verdict is Verdict.PASS
    # the annotated tumour slices (z -184..-234 mm) are inside the volume
    zs = [vol.index_to_lps(k, 0, 0)[2] for k in range(vol.shape[0])]
    assert min(zs) < -234 and max(zs) > -184


def test_upper_abdomen_jpeg2000_rejected(shared_data: Path, settings: SelectionSettings) -> None:
    index = index_path(shared_data / "ts_upper_abdomen_dicom")
    assert len(index.instances) == 20 and not index.unreadable
    assert {h.transfer_syntax_uid for h in index.instances} == {"1.2.840.10008.1.2.4.90"}
    report = select_series(index, settings)
    assert report.chosen_series_uid is None
    codes = _codes(report)
    assert {"coverage_too_short", "no_lung_fields"} <= codes
    assert "undecodable" not in codes  # the JPEG 2000 pixels were decoded for the check
    assert report.explanation.startswith("No usable series: series 'CT Body 3.0' covers only "
                                         "38 mm (at least 120 mm needed")
    assert "shows no lung fields" in report.explanation


def test_three_slices_rejected(shared_data: Path, settings: SelectionSettings) -> None:
    report = select_series(index_path(shared_data / "dcmqi_ct3slice"), settings)
    assert report.chosen_series_uid is None
    assert {"too_few_slices", "coverage_too_short"} <= _codes(report)
    assert "has only 3 slices (at least 20 needed)" in report.explanation


def test_abdomen_nifti_is_not_chest(shared_data: Path, settings: SelectionSettings) -> None:
    vol = load_nifti(shared_data / "ts_abdomen_pelvis.nii.gz")
    assert vol.shape == (112, 101, 122)
    assert vol.spacing == pytest.approx((3.0, 3.0, 3.0))
    assert np.allclose(np.asarray(vol.direction).reshape(3, 3), np.eye(3))
    result = check_chest_anatomy(vol, settings)
    assert result.verdict is Verdict.FAIL
    assert "not a chest CT" in result.reason

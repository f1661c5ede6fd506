"""The synthetic chest phantom (phantom/) through selection and volume building."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ctnode.settings import SelectionSettings
from series_selector import check_chest_anatomy, index_path, load_volume, select_series
from series_selector.types import HUVolume, Verdict

phantom = pytest.importorskip("phantom")


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> object:
    return phantom.write_small_study(tmp_path_factory.mktemp("phantom"))


def test_phantom_picks_thin_series_and_explains_others(study: object,
                                                       settings: SelectionSettings) -> None:
    index = index_path(study.root)  # type: ignore[attr-defined]
    report = select_series(index, settings)
    thin = study.series_named("thin")  # type: ignore[attr-defined]
    thick = study.series_named("thick")  # type: ignore[attr-defined]
    assert report.study_uid == study.study_uid  # type: ignore[attr-defined]
    assert report.chosen_series_uid == thin.series_uid
    by_uid = {d.series_uid: d for d in report.series}
    assert by_uid[thick.series_uid].accepted and by_uid[thick.series_uid].rank == 2
    localizer = study.series_named("localizer")  # type: ignore[attr-defined]
    assert not by_uid[localizer.series_uid].accepted
    assert "slices of at most 2.5 mm are preferred" in report.explanation
    assert "is a localizer" in report.explanation
    assert report.n_unreadable == 1  # truth.json beside the study
    volume = load_volume(index, report)
    assert volume.shape[0] == len(thin.paths)
    assert volume.spacing[2] == pytest.approx(thin.spacing_mm)
    assert check_chest_anatomy(volume, settings).verdict is Verdict.PASS
    # the volume holds exactly the HU the phantom wrote, slice by slice
    for k in (0, volume.shape[0] // 2):
        expected = phantom.read_hu(volume.source_paths[k])
        assert np.array_equal(volume.voxels[k], expected)


def test_partial_coverage_phantom_rejected(tmp_path: Path, settings: SelectionSettings) -> None:
    small = phantom.write_small_study(tmp_path, n_slices=16)
    report = select_series(index_path(small.root), settings)
    assert report.chosen_series_uid is None
    assert "covers only" in report.explanation and "has only 16 slices" in report.explanation


LOSSLESS = ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.5",
            "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.70",
            "1.2.840.10008.1.2.4.57"]


def _reference_and_encoded(
    tmp_path: Path, syntax: str
) -> tuple[list[HUVolume], phantom.WrittenStudy]:
    """The same small phantom written uncompressed and in ``syntax``, each loaded as a volume."""
    if syntax not in phantom.SUPPORTED_TRANSFER_SYNTAXES:
        pytest.skip(f"phantom cannot write {syntax}")
    lenient = SelectionSettings(min_slices=5, min_coverage_mm=20.0)
    series = tuple(s for s in phantom.DEFAULT_SERIES if s.name == "thin")
    ref = phantom.write_small_study(tmp_path / "ref", n_slices=12, series=series)
    enc = phantom.write_small_study(tmp_path / "enc", n_slices=12, series=series,
                                    transfer_syntax=syntax)
    volumes = []
    for written in (ref, enc):
        index = index_path(written.root)
        volumes.append(load_volume(index, select_series(index, lenient)))
    return volumes, enc


@pytest.mark.parametrize("syntax", LOSSLESS)
def test_phantom_reencoded_same_hu(tmp_path: Path, syntax: str) -> None:
    volumes, enc = _reference_and_encoded(tmp_path, syntax)
    assert {h.transfer_syntax_uid for h in index_path(enc.root).instances} == {syntax}
    assert np.array_equal(volumes[0].voxels, volumes[1].voxels)


# JPEG Extended 12-bit (1.2.840.10008.1.2.4.51) is left out: the phantom currently writes it
# with a 16-bit JPEG frame precision that no decoder (pylibjpeg, GDCM, dcmtk) accepts.
# pydicom's own JPGExtended.dcm is decoded in test_transfer_syntax.py.
LOSSY = [("1.2.840.10008.1.2.4.81", 5.0), ("1.2.840.10008.1.2.4.91", 60.0)]


@pytest.mark.parametrize(("syntax", "max_mean_error"), LOSSY)
def test_phantom_lossy_close(tmp_path: Path, syntax: str, max_mean_error: float) -> None:
    volumes, _ = _reference_and_encoded(tmp_path, syntax)
    diff = np.abs(volumes[0].voxels.astype(float) - volumes[1].voxels.astype(float))
    assert diff.mean() < max_mean_error

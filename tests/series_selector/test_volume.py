"""load_volume, load_nifti, resample_to and the chest check: geometry and HU are right."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from ctnode.settings import SelectionSettings
from series_selector import (
    check_chest_anatomy,
    index_path,
    load_nifti,
    load_volume,
    resample_to,
    select_series,
)
from series_selector.errors import VolumeError
from series_selector.types import HUVolume, SelectionReport, Verdict
from tests.series_selector.synth import (
    ABDOMEN,
    MARKER_HU,
    MARKER_LPS,
    SeriesSpec,
    write_series,
)


def _marker_lps(volume: HUVolume) -> tuple[float, float, float]:
    """LPS centre of the bright synthetic marker."""
    zyx = np.argwhere(volume.voxels > MARKER_HU / 2).mean(axis=0)
    return volume.index_to_lps(*zyx)


def _load(folder: Path, settings: SelectionSettings) -> tuple[SelectionReport, HUVolume]:
    index = index_path(folder)
    report = select_series(index, settings)
    return report, load_volume(index, report)


def test_volume_geometry_and_hu(tmp_path: Path, study_uid: str,
                                settings: SelectionSettings) -> None:
    paths = write_series(tmp_path, SeriesSpec(study_uid, step=3.0, n=45, thickness=3.0))
    # InstanceNumber must not drive the order: scramble it
    for i, p in enumerate(paths):
        ds = pydicom.dcmread(p)
        ds.InstanceNumber = (i * 7) % 45 + 1
        ds.save_as(p)
    report, vol = _load(tmp_path, settings)
    assert vol.shape == (45, 96, 96)
    assert vol.voxels.dtype == np.int16
    assert vol.spacing == pytest.approx((4.0, 4.0, 3.0))
    assert vol.direction == pytest.approx((1, 0, 0, 0, 1, 0, 0, 0, 1))
    assert vol.origin == pytest.approx((-192.0, -192.0, -60.0))
    assert np.allclose(_marker_lps(vol), MARKER_LPS, atol=1.5)
    # z increases monotonically through the referenced slices
    zs = [float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2])
          for p in vol.source_paths]
    assert zs == sorted(zs)
    assert len(set(vol.slice_sop_instance_uids)) == 45
    assert vol.study_uid == study_uid and vol.series_uid == report.chosen_series_uid
    assert vol.frame_of_reference_uid
    assert vol.slice_thickness_mm == 3.0
    assert any("thick for nodule detection" in n for n in vol.notes)
    mediastinum = vol.voxels[:, 48, 48]  # x = 0 mm, y = 0 mm
    assert abs(float(np.median(mediastinum)) - 40) < 5
    right_lung = vol.voxels[:, 48, 30]  # x = -72 mm: right lung (LPS x grows to the left)
    assert abs(float(np.median(right_lung)) + 850) < 5
    assert vol.voxels[:, 2, 2].max() <= -970  # outside air


def test_padding_value_becomes_air(tmp_path: Path, study_uid: str,
                                   settings: SelectionSettings) -> None:
    write_series(tmp_path, SeriesSpec(study_uid, padding_value=65535))
    _, vol = _load(tmp_path, settings)
    assert vol.voxels.max() < 3001
    assert vol.voxels[0, 0, 0] == -1024
    assert any("padding" in n for n in vol.notes)


def test_gantry_tilt_is_shear_corrected(tmp_path: Path, study_uid: str,
                                        settings: SelectionSettings) -> None:
    write_series(tmp_path, SeriesSpec(study_uid, tilt_deg=15.0, step=3.0, n=45))
    report, vol = _load(tmp_path, settings)
    assert report.chosen is not None
    assert "tilt_corrected" in {r.code for r in report.chosen.results}
    assert np.allclose(_marker_lps(vol), MARKER_LPS, atol=2.5)
    assert any("gantry tilt" in n for n in vol.notes)


def test_excessive_tilt_rejected(tmp_path: Path, study_uid: str,
                                 settings: SelectionSettings) -> None:
    write_series(tmp_path, SeriesSpec(study_uid, tilt_deg=40.0, step=3.0, n=45))
    report = select_series(index_path(tmp_path), settings)
    assert report.chosen_series_uid is None
    assert "tilt_too_large" in {r.code for r in report.series[0].results}


def test_irregular_steps_are_regridded(tmp_path: Path, study_uid: str,
                                       settings: SelectionSettings) -> None:
    paths = write_series(tmp_path, SeriesSpec(study_uid, step=3.0, n=45))
    target = next(p for p in paths if pydicom.dcmread(p).InstanceNumber == 20)
    ds = pydicom.dcmread(target)
    pos = [float(v) for v in ds.ImagePositionPatient]
    ds.ImagePositionPatient = [pos[0], pos[1], pos[2] + 0.6]  # 20 % off the 3 mm step
    ds.save_as(target)
    report, vol = _load(tmp_path, settings)
    assert report.chosen is not None
    assert "irregular_spacing" in {r.code for r in report.chosen.results}
    assert vol.shape[0] == 45 and vol.spacing[2] == pytest.approx(3.0)
    assert any("interpolated" in n for n in vol.notes)


def test_right_to_left_rows_are_flipped_to_lps(tmp_path: Path, study_uid: str,
                                               settings: SelectionSettings) -> None:
    write_series(tmp_path / "a", SeriesSpec(study_uid))
    write_series(tmp_path / "b", SeriesSpec(study_uid, orientation=(-1, 0, 0, 0, 1, 0),
                                            series_number=3))
    index = index_path(tmp_path)
    base = select_series(index, settings)
    for d in base.series:
        report = dataclasses.replace(base, chosen_series_uid=d.series_uid)
        vol = load_volume(index, report)
        assert vol.direction == pytest.approx((1, 0, 0, 0, 1, 0, 0, 0, 1))
        assert np.allclose(_marker_lps(vol), MARKER_LPS, atol=1.5)


def test_load_volume_without_choice_raises(tmp_path: Path, study_uid: str,
                                           settings: SelectionSettings) -> None:
    write_series(tmp_path, SeriesSpec(study_uid, n=4))
    index = index_path(tmp_path)
    report = select_series(index, settings)
    with pytest.raises(VolumeError, match="No series was chosen"):
        load_volume(index, report)


def test_chest_check_on_volumes(tmp_path: Path, study_uid: str,
                                settings: SelectionSettings) -> None:
    write_series(tmp_path / "c", SeriesSpec(study_uid))
    _, chest = _load(tmp_path / "c", settings)
    assert check_chest_anatomy(chest, settings).verdict is Verdict.PASS
    abdomen = dataclasses.replace(chest, voxels=np.where(chest.voxels < -500, 40,
                                                         chest.voxels).astype(np.int16))
    result = check_chest_anatomy(abdomen, settings)
    assert result.verdict is Verdict.FAIL and "not a chest CT" in result.reason


def test_lungs_on_part_of_the_range(tmp_path: Path, study_uid: str,
                                    settings: SelectionSettings) -> None:
    """Lung bases at the top of an abdominal scan do not make it a chest CT."""
    spec = SeriesSpec(study_uid, n=60, step=5.0, z0=-250.0,
                      anatomy=dataclasses.replace(ABDOMEN, lungs_z=(20.0, 60.0)))
    write_series(tmp_path, spec)
    report = select_series(index_path(tmp_path), settings)
    result = next(r for r in report.series[0].results if r.rule == "anatomy")
    assert result.code == "too_little_lung"
    # the same lungs over a long range (chest-abdomen-pelvis scan) do count
    wide = SelectionSettings(min_lung_extent_mm=30.0)
    assert select_series(index_path(tmp_path), wide).chosen is not None


def test_resample_keeps_geometry(tmp_path: Path, study_uid: str,
                                 settings: SelectionSettings) -> None:
    write_series(tmp_path, SeriesSpec(study_uid, step=3.0, n=45))
    _, vol = _load(tmp_path, settings)
    out = resample_to(vol, spacing_mm=(2.0, 2.0, 2.0))
    assert out.spacing == (2.0, 2.0, 2.0)
    assert out.shape == (67, 191, 191)
    assert out.origin == vol.origin and out.direction == vol.direction
    assert np.allclose(_marker_lps(out), MARKER_LPS, atol=1.5)
    assert out.slice_sop_instance_uids == ()
    with pytest.raises(ValueError):
        resample_to(vol, spacing_mm=(0.0, 1.0, 1.0))


def _nifti(tmp_path: Path, affine: np.ndarray, data: np.ndarray) -> Path:
    path = tmp_path / "v.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


@pytest.mark.parametrize("flip_x", [False, True])
def test_nifti_ras_to_lps(tmp_path: Path, flip_x: bool) -> None:
    data = np.full((40, 30, 20), -1000, dtype=np.int16)  # i, j, k
    data[30, 10, 5] = 500
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    affine[:3, 3] = (-40.0, -50.0, -60.0)
    if flip_x:  # LAS storage: i runs towards patient right
        affine[0, 0] = -2.0
        affine[0, 3] = 40.0
    ras = affine @ np.array([30, 10, 5, 1.0])
    vol = load_nifti(_nifti(tmp_path, affine, data))
    assert vol.spacing == pytest.approx((2.0, 3.0, 4.0))
    assert vol.direction == pytest.approx((1, 0, 0, 0, 1, 0, 0, 0, 1))
    assert vol.voxels.dtype == np.int16 and vol.shape == (20, 30, 40)
    z, y, x = np.argwhere(vol.voxels == 500)[0]
    assert vol.index_to_lps(z, y, x) == pytest.approx((-ras[0], -ras[1], ras[2]))


def test_nifti_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"not a nifti file at all")
    with pytest.raises(VolumeError):
        load_nifti(bad)
    with pytest.raises(VolumeError, match="3-D"):
        load_nifti(_nifti(tmp_path, np.eye(4), np.zeros((4, 4), dtype=np.int16)))


def test_legacy_converted_enhanced_ct_matches_classic(tmp_path: Path, study_uid: str,
                                                      settings: SelectionSettings) -> None:
    """A multi-frame Enhanced CT object gives the same volume as its single-frame source."""
    legacy = pytest.importorskip("highdicom.legacy")
    paths = write_series(tmp_path / "src", SeriesSpec(study_uid, n=30, step=5.0))
    datasets = []
    for p in paths:
        ds = pydicom.dcmread(p)
        for keyword, value in (("PatientBirthDate", ""), ("PatientSex", ""), ("Manufacturer", "x"),
                               ("ReferringPhysicianName", ""), ("ContentDate", "20260101"),
                               ("ContentTime", "120000"), ("SeriesDate", "20260101"),
                               ("SeriesTime", "120000"), ("PositionReferenceIndicator", ""),
                               ("AcquisitionDateTime", "20260101120000"), ("KVP", 120)):
            setattr(ds, keyword, value)
        datasets.append(ds)
    multi = legacy.LegacyConvertedEnhancedCTImage(
        datasets, series_instance_uid=pydicom.uid.generate_uid(), series_number=10,
        sop_instance_uid=pydicom.uid.generate_uid(), instance_number=1)
    (tmp_path / "mf").mkdir()
    multi.save_as(tmp_path / "mf" / "enhanced.dcm")
    index = index_path(tmp_path / "mf")
    (header,) = index.instances
    assert header.number_of_frames == 30 and len(header.frames) == 30
    assert header.convolution_kernel == "B30f"
    report, vol = _load(tmp_path / "mf", settings)
    assert report.chosen is not None and report.chosen.n_instances == 1
    _, classic = _load(tmp_path / "src", settings)
    assert np.array_equal(vol.voxels, classic.voxels)
    assert vol.origin == pytest.approx(classic.origin)
    assert sorted(vol.slice_frame_numbers) == list(range(1, 31))
    assert set(vol.slice_sop_instance_uids) == {header.sop_instance_uid}

"""index_path: header-only, tolerant of odd files, never fatal."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from unittest import mock

import numpy as np
import pydicom
import pytest
from pydicom.fileset import FileSet

from ctnode.settings import SelectionSettings
from series_selector import index_path, load_volume, pixels, select_series
from series_selector.grouping import Slice
from series_selector.types import PixelLayout
from tests.series_selector.synth import SeriesSpec, write_series


def test_odd_files_are_reported_not_fatal(tmp_path: Path, study_uid: str) -> None:
    write_series(tmp_path / "a" / "b", SeriesSpec(study_uid, n=5, extension=""))
    write_series(tmp_path / "c", SeriesSpec(study_uid, n=3, series_number=3, preamble=False))
    (tmp_path / "notes.txt").write_text("This is not DICOM but it is long enough to try.\n" * 4)
    (tmp_path / "tiny").write_bytes(b"DI")
    good = next((tmp_path / "a" / "b").iterdir()).read_bytes()
    (tmp_path / "truncated.dcm").write_bytes(good[:300])
    index = index_path(tmp_path)
    assert len(index.instances) == 8
    assert {h.series_number for h in index.instances} == {2, 3}
    reasons = {u.path.name: u.reason for u in index.unreadable}
    assert set(reasons) == {"notes.txt", "tiny", "truncated.dcm"}
    assert reasons["tiny"] == "file too small to be DICOM"
    assert reasons["notes.txt"].startswith("not DICOM")


def test_dicomdir_counted_and_ignored(tmp_path: Path, study_uid: str) -> None:
    src = write_series(tmp_path / "src", SeriesSpec(study_uid, n=3))
    fs = FileSet()
    for p in src:
        fs.add(pydicom.dcmread(p))
    fs.write(tmp_path / "media")
    index = index_path(tmp_path / "media")
    assert index.dicomdir_files == 1
    assert len(index.instances) == 3
    assert not index.unreadable


def test_header_only_reads(tmp_path: Path, study_uid: str) -> None:
    """Indexing and the rule checks must not read pixels of every file."""
    write_series(tmp_path, SeriesSpec(study_uid, n=40))
    real = pydicom.dcmread
    real_native = pixels._native_frames
    calls: list[bool] = []  # True: a header-only read; False: a read of pixels
    header_parses: list[Path] = []

    def spy(*args: object, **kwargs: object) -> pydicom.Dataset:
        calls.append(bool(kwargs.get("stop_before_pixels")))
        header_parses.append(Path(str(getattr(args[0], "name", args[0]))))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    def native_spy(path: Path, layout: PixelLayout) -> np.ndarray:
        calls.append(False)
        return real_native(path, layout)

    with mock.patch("pydicom.dcmread", spy), mock.patch.object(pixels, "_native_frames",
                                                                native_spy):
        index = index_path(tmp_path)
        assert calls and all(calls)
        assert all(h.pixel_layout is not None for h in index.instances)
        calls.clear()
        report = select_series(index, SelectionSettings())
        full_reads = sum(not c for c in calls)
        assert full_reads == SelectionSettings().anatomy_sample_slices
        calls.clear()
        header_parses.clear()
        load_volume(index, report)
        assert len(calls) == 40
        assert not header_parses  # pixels are read where indexing found them, headers not re-parsed


def test_native_read_matches_pydicom(tmp_path: Path, study_uid: str) -> None:
    """The direct read of uncompressed pixels gives pydicom's values, padding and rescale."""
    write_series(tmp_path, SeriesSpec(study_uid, n=4))
    for path in sorted(tmp_path.iterdir()):  # 12 of 16 bits used, signed, padding: the hard case
        ds = pydicom.dcmread(path)
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 1
        raw = ds.pixel_array.astype(np.int16)
        raw[:2, :] = -2000
        raw[2, :] = (raw[2, :] & 0x07FF) | 0x7000  # junk in the unused high bits
        ds.PixelData = raw.tobytes()
        ds.add_new("PixelPaddingValue", "SS", -2000)
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.save_as(path)
    index = index_path(tmp_path)
    slices = [Slice(h, None, h.image_position, h.image_orientation, h.pixel_spacing, None)
              for h in index.instances]
    assert all(s.header.pixel_layout is not None for s in slices)
    fast = pixels.decode_slices(slices)
    slow = pixels.decode_slices([Slice(replace(s.header, pixel_layout=None), None, s.position,
                                       s.orientation, s.pixel_spacing, None) for s in slices])
    for f, s in zip(fast, slow, strict=True):
        np.testing.assert_array_equal(f.hu, s.hu)
        assert (f.padded_pixels, f.clipped_pixels, f.integral) == (
            s.padded_pixels, s.clipped_pixels, s.integral)
        assert f.padded_pixels > 0


def test_missing_uids_get_stand_ins(tmp_path: Path, study_uid: str) -> None:
    """De-identifiers sometimes empty the UIDs; files are still judged, never referenced."""
    paths = write_series(tmp_path, SeriesSpec(study_uid, n=30, step=5.0))
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.StudyInstanceUID = ""
        ds.SeriesInstanceUID = ""
        ds.SOPInstanceUID = ""
        ds.save_as(p)
    index = index_path(tmp_path)
    assert len(index.instances) == 30
    report = select_series(index, SelectionSettings())
    assert report.study_uid == ""
    assert report.chosen is not None
    assert "missing_uids" in {r.code for r in report.chosen.results}
    vol = load_volume(index, report)
    assert vol.study_uid == "" and vol.series_uid == ""
    assert set(vol.slice_sop_instance_uids) != {""}  # MediaStorageSOPInstanceUID is used


@pytest.mark.parametrize("name", ["eCT_Supplemental.dcm"])
def test_enhanced_ct_frames_indexed(name: str) -> None:
    data = pytest.importorskip("pydicom.data")
    try:
        path = Path(data.get_testdata_file(name))
    except Exception:
        pytest.skip(f"{name} not available offline")
    if not path.is_file():
        pytest.skip(f"{name} not available offline")
    index = index_path(path)
    (header,) = index.instances
    assert header.number_of_frames == 2 and len(header.frames) == 2
    assert header.frames[1].image_position == (99.5, -301.5, -149.0)
    assert header.frames[0].rescale_intercept == -1024.0
    report = select_series(index, SelectionSettings())
    decision = report.series[0]
    assert decision.n_slices == 2 and decision.n_instances == 1
    assert "too_thick" in {r.code for r in decision.results}


def test_deflated_header_is_read_in_bounded_memory(tmp_path: Path, study_uid: str) -> None:
    """Issue 15: a deflated instance is inflated as a stream, not into one buffer."""
    from series_selector.reader import read_header
    from tests.fuzz.hostile import traced_peak, write_deflated_ct

    path = write_deflated_ct(tmp_path / "deflated.dcm", 120_000_000, study_uid=study_uid)
    assert path.stat().st_size < 1_000_000
    header, peak = traced_peak(lambda: read_header(path))
    assert header.study_uid == study_uid  # type: ignore[attr-defined]
    assert header.transfer_syntax_uid == "1.2.840.10008.1.2.1.99"  # type: ignore[attr-defined]
    assert peak < 40_000_000, f"{peak / 1e6:.0f} MB held to read a header"


def test_deflated_instance_above_the_limit_is_unreadable(tmp_path: Path, study_uid: str) -> None:
    from tests.fuzz.hostile import write_deflated_ct

    (tmp_path / "a").mkdir()
    write_deflated_ct(tmp_path / "a" / "bomb.dcm", 60_000_000, study_uid=study_uid)
    write_series(tmp_path / "a", SeriesSpec(study_uid, n=3))
    index = index_path(tmp_path / "a", max_instance_bytes=20_000_000)
    assert len(index.instances) == 3
    (bad,) = index.unreadable
    assert bad.path.name == "bomb.dcm"
    assert "instance too large" in bad.reason and "20 MB" in bad.reason


def test_empty_and_unknown_character_sets_are_read(tmp_path: Path, study_uid: str) -> None:
    """Real headers carry SpecificCharacterSet '' (dcmqi) or unknown terms: never a crash."""
    paths = write_series(tmp_path, SeriesSpec(study_uid, n=3))
    for path, charset in zip(paths, ["", "ISO_IR 999", ["", "ISO 2022 IR 87"]], strict=True):
        ds = pydicom.dcmread(path)
        ds.SpecificCharacterSet = charset
        ds.SeriesDescription = "Thorax"
        ds.save_as(path)
    index = index_path(tmp_path)
    assert len(index.instances) == 3, [u.reason for u in index.unreadable]
    assert {h.series_description for h in index.instances} == {"Thorax"}


@pytest.mark.parametrize("thickness", [-5.0, 0.0, float("nan")])
def test_nonsense_spacing_is_read_as_missing(tmp_path: Path, study_uid: str,
                                             thickness: float) -> None:
    """Found by fuzzing: a negative SliceThickness reached the volume as a negative voxel."""
    path = write_series(tmp_path, SeriesSpec(study_uid, n=1))[0]
    ds = pydicom.dcmread(path)
    ds.SliceThickness = thickness
    ds.PixelSpacing = [0.0, -1.0]
    ds.save_as(path)
    (header,) = index_path(tmp_path).instances
    assert header.slice_thickness is None and header.pixel_spacing is None

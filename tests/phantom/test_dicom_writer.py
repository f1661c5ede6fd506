"""write_dicom_study: real CT instances that read back to the phantom's HU, with sane headers."""

from __future__ import annotations

import json
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

from phantom import (
    PatientInfo,
    Phantom,
    PhantomSpec,
    PhantomWriteError,
    SeriesKind,
    SeriesSpec,
    WrittenStudy,
    generate_phantom,
    read_hu,
    write_dicom_study,
)


@pytest.fixture(scope="module")
def tiny() -> Phantom:
    return generate_phantom(PhantomSpec(matrix=48, fov_mm=360.0, slice_spacing_mm=2.0,
                                        n_slices=6, seed=9))


def _z(path: Path) -> float:
    return float(pydicom.dcmread(path, stop_before_pixels=True).ImagePositionPatient[2])


def test_thin_series_reads_back_to_phantom_hu(small_study: WrittenStudy) -> None:
    thin = small_study.series_named("thin")
    truth = json.loads(small_study.truth_path.read_text(encoding="utf-8"))
    from phantom import generate_phantom, small_spec  # the same phantom, regenerated

    ph = generate_phantom(small_spec(
        [__import__("phantom").Nodule(14.0)], seed=3))
    assert truth["measurements"] == ph.truth["measurements"]
    assert len(thin.paths) == ph.shape[0]
    for path in thin.paths[::17]:
        ds = pydicom.dcmread(path)
        k = int(round((float(ds.ImagePositionPatient[2]) - ph.origin[2]) / ph.spacing[2]))
        hu = ds.pixel_array.astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
        assert np.array_equal(hu, ph.hu[k])


def test_axial_headers(small_study: WrittenStudy) -> None:
    for name, thick, kernel in (("thin", 2.5, "LUNG"), ("thick", 5.0, "STANDARD")):
        s = small_study.series_named(name)
        first = pydicom.dcmread(s.paths[0])
        assert first.SOPClassUID == CTImageStorage
        assert first.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
        assert list(first.ImageType) == ["ORIGINAL", "PRIMARY", "AXIAL"]
        assert [float(v) for v in first.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        assert float(first.SliceThickness) == thick
        assert first.ConvolutionKernel == kernel
        assert first.BodyPartExamined == "CHEST" and first.Modality == "CT"
        assert first.StudyInstanceUID == small_study.study_uid
        assert first.SeriesInstanceUID == s.series_uid
        assert first.FrameOfReferenceUID == small_study.frame_of_reference_uid
        assert float(first.RescaleIntercept) == -1024 and first.PixelRepresentation == 0
        assert first.InstanceNumber == 1 and first.PatientPosition == "HFS"
        zs = [_z(p) for p in s.paths]
        steps = np.diff(zs)
        assert np.allclose(steps, -thick)  # instance 1 is the most cranial slice
        uids = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in s.paths}
        assert len(uids) == len(s.paths)


def test_thick_series_is_the_average_of_thin(small_study: WrittenStudy) -> None:
    thin = {round(_z(p), 3): read_hu(p) for p in small_study.series_named("thin").paths}
    thick_path = small_study.series_named("thick").paths[20]
    z = _z(thick_path)
    pair = [v for k, v in thin.items() if abs(k - z) < 1.3]
    assert len(pair) == 2
    expected = np.rint((pair[0] + pair[1]) / 2.0)
    assert np.abs(read_hu(thick_path) - expected).max() <= 1.0


def test_localizer(small_study: WrittenStudy) -> None:
    loc = small_study.series_named("localizer")
    assert loc.kind is SeriesKind.LOCALIZER and len(loc.paths) == 1
    ds = pydicom.dcmread(loc.paths[0])
    assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 0, -1]
    img = ds.pixel_array
    assert img.shape == (len(small_study.series_named("thin").paths), 128)
    # The body attenuates: the centre column is brighter than the air at the edge.
    assert img[:, 64].mean() > 5 * img[:, 2].mean() + 10


def test_deterministic_uids(tmp_path: Path, tiny: Phantom) -> None:
    a = write_dicom_study(tiny, tmp_path / "a")
    b = write_dicom_study(tiny, tmp_path / "b")
    assert a.study_uid == b.study_uid
    assert [s.series_uid for s in a.series] == [s.series_uid for s in b.series]
    assert (pydicom.dcmread(a.series[1].paths[0]).SOPInstanceUID
            == pydicom.dcmread(b.series[1].paths[0]).SOPInstanceUID)
    other = write_dicom_study(generate_phantom(PhantomSpec(
        matrix=48, fov_mm=360.0, slice_spacing_mm=2.0, n_slices=6, seed=10)), tmp_path / "c")
    assert other.study_uid != a.study_uid


def test_cyrillic_name_round_trips(tmp_path: Path, tiny: Phantom) -> None:
    name = "Иванов^Иван Петрович"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pydicom only warns when a name cannot be encoded
        ws = write_dicom_study(tiny, tmp_path, series=[SeriesSpec("thin")],
                               patient=PatientInfo(name=name, patient_id="П-1"))
        ds = pydicom.dcmread(ws.series[0].paths[0])
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert str(ds.PatientName) == name and ds.PatientID == "П-1"
    raw = ws.series[0].paths[0].read_bytes()
    assert name.encode("utf-8") in raw


def test_ascii_name_has_no_utf8_charset(small_study: WrittenStudy) -> None:
    ds = pydicom.dcmread(small_study.series[1].paths[0], stop_before_pixels=True)
    assert "SpecificCharacterSet" not in ds


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dicom3tools not installed")
@pytest.mark.parametrize("series", ["thin", "localizer"])
def test_dciodvfy_reports_no_errors(small_study: WrittenStudy, series: str) -> None:
    path = small_study.series_named(series).paths[0]
    res = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    lines = (res.stdout + res.stderr).splitlines()
    errors = [ln for ln in lines if ln.startswith("Error")]
    assert errors == [], errors


@pytest.mark.parametrize("syntax", [
    ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, RLELossless, JPEGLSLossless,
    JPEG2000Lossless, JPEGLosslessSV1, JPEGLossless,
])
def test_transfer_syntax_round_trip_is_lossless(tmp_path: Path, tiny: Phantom,
                                                syntax: str) -> None:
    ws = write_dicom_study(tiny, tmp_path, series=[SeriesSpec("thin")], transfer_syntax=syntax)
    paths = ws.series[0].paths
    assert len(paths) == tiny.shape[0]
    for path in paths[:2]:
        ds = pydicom.dcmread(path)
        assert ds.file_meta.TransferSyntaxUID == syntax
        k = int(round((float(ds.ImagePositionPatient[2]) - tiny.origin[2]) / tiny.spacing[2]))
        assert np.array_equal(read_hu(path), tiny.hu[k].astype(float))


def test_signed_pixels(tmp_path: Path, tiny: Phantom) -> None:
    ws = write_dicom_study(tiny, tmp_path, series=[SeriesSpec("thin")], signed_pixels=True)
    ds = pydicom.dcmread(ws.series[0].paths[-1])
    assert ds.PixelRepresentation == 1 and float(ds.RescaleIntercept) == 0
    assert np.array_equal(read_hu(ws.series[0].paths[-1]), tiny.hu[0].astype(float))


def test_bad_requests_are_refused(tmp_path: Path, tiny: Phantom) -> None:
    with pytest.raises(PhantomWriteError, match="not supported"):
        write_dicom_study(tiny, tmp_path, transfer_syntax="1.2.3.4")
    with pytest.raises(PhantomWriteError, match="thinner"):
        write_dicom_study(tiny, tmp_path, series=[SeriesSpec("odd", thickness_mm=1.0)])
    with pytest.raises(PhantomWriteError, match="unique"):
        write_dicom_study(tiny, tmp_path, series=[SeriesSpec("a"), SeriesSpec("a")])


def test_truth_json_names_the_series(small_study: WrittenStudy) -> None:
    truth = json.loads(small_study.truth_path.read_text(encoding="utf-8"))
    assert truth["dicom"]["study_instance_uid"] == small_study.study_uid
    names = [s["name"] for s in truth["dicom"]["series"]]
    assert names == ["localizer", "thin", "thick"]
    assert truth["findings"]["lung_nodule"] == "present"


def test_other_series_kinds(tmp_path: Path, tiny: Phantom) -> None:
    from pydicom.uid import SecondaryCaptureImageStorage

    ws = write_dicom_study(tiny, tmp_path, series=[
        SeriesSpec("cor", SeriesKind.CORONAL, 8.0, series_number=4),
        SeriesSpec("mf", SeriesKind.MULTIFRAME, series_number=5),
        SeriesSpec("dose", SeriesKind.DOSE_SCREEN, series_number=501),
        SeriesSpec("derived", image_type=("DERIVED", "SECONDARY", "AXIAL"), series_number=6),
    ])
    cor = pydicom.dcmread(ws.series_named("cor").paths[0])
    assert list(cor.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert [float(v) for v in cor.ImageOrientationPatient] == [1, 0, 0, 0, 0, -1]
    assert cor.pixel_array.shape == (tiny.shape[0], tiny.shape[2])
    mf = pydicom.dcmread(ws.series_named("mf").paths[0])
    assert mf.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2.2"  # Legacy Converted Enhanced CT
    assert int(mf.NumberOfFrames) == tiny.shape[0]
    frames = mf.pixel_array.astype(float) + float(
        mf.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence[0].RescaleIntercept
        if "PixelValueTransformationSequence" in mf.SharedFunctionalGroupsSequence[0]
        else mf.PerFrameFunctionalGroupsSequence[0].PixelValueTransformationSequence[0]
        .RescaleIntercept)
    top = frames[0]  # frame 1 = instance 1 = most cranial slice
    assert np.array_equal(top, tiny.hu[-1].astype(float))
    dose = pydicom.dcmread(ws.series_named("dose").paths[0])
    assert dose.SOPClassUID == SecondaryCaptureImageStorage
    assert dose.StudyInstanceUID == ws.study_uid
    derived = pydicom.dcmread(ws.series_named("derived").paths[0], stop_before_pixels=True)
    assert list(derived.ImageType) == ["DERIVED", "SECONDARY", "AXIAL"]


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dicom3tools not installed")
def test_multiframe_and_dose_pass_dciodvfy(tmp_path: Path, tiny: Phantom) -> None:
    ws = write_dicom_study(tiny, tmp_path, series=[
        SeriesSpec("mf", SeriesKind.MULTIFRAME), SeriesSpec("dose", SeriesKind.DOSE_SCREEN)])
    for s in ws.series:
        res = subprocess.run(["dciodvfy", str(s.paths[0])], capture_output=True, text=True,
                             timeout=60)
        errors = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith("Error")]
        assert errors == [], (s.name, errors)


def test_fractional_thickness_is_a_weighted_average(tmp_path: Path, tiny: Phantom) -> None:
    ws = write_dicom_study(tiny, tmp_path, series=[SeriesSpec("t3", thickness_mm=3.0)])
    paths = ws.series[0].paths
    assert len(paths) == 4  # 12 mm of 2 mm slices in 3 mm slabs
    ds = pydicom.dcmread(paths[-1])  # the most caudal slab: slices 0 and half of 1
    assert float(ds.SliceThickness) == 3.0
    expected = np.rint((2.0 * tiny.hu[0].astype(np.float32) + tiny.hu[1]) / 3.0)
    assert np.abs(read_hu(paths[-1]) - expected).max() <= 1.0
    assert float(ds.ImagePositionPatient[2]) == pytest.approx(tiny.origin[2] + 0.5, abs=1e-3)


def test_gantry_tilt_and_padding(tmp_path: Path, tiny: Phantom) -> None:
    ws = write_dicom_study(tiny, tmp_path, signed_pixels=True, series=[
        SeriesSpec("tilted", gantry_tilt_deg=15.0),
        SeriesSpec("padded", padding_hu=-2000, series_number=2),
    ])
    t = pydicom.dcmread(ws.series_named("tilted").paths[2])
    assert float(t.GantryDetectorTilt) == 15.0
    iop = np.array([float(v) for v in t.ImageOrientationPatient])
    normal = np.cross(iop[:3], iop[3:])
    assert np.degrees(np.arccos(abs(normal[2]))) == pytest.approx(15.0, abs=0.01)
    zs = [_z(p) for p in ws.series_named("tilted").paths]
    x0 = {float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[0])
          for p in ws.series_named("tilted").paths}
    assert len(x0) == 1 and np.allclose(np.diff(zs), -tiny.spacing[2])
    # At the isocentre row the tilted plane meets the untilted slice.
    hu = read_hu(ws.series_named("tilted").paths[2])
    k = int(round((float(t.SliceLocation) - tiny.origin[2]) / tiny.spacing[2]))
    mid = tiny.shape[1] // 2
    assert np.abs(hu[mid] - tiny.hu[k, mid]).mean() < 60
    p = pydicom.dcmread(ws.series_named("padded").paths[0])
    assert p.PixelPaddingValue == -2000 and p.PixelRepresentation == 1
    assert read_hu(ws.series_named("padded").paths[0])[0, 0] == -2000
    centre = read_hu(ws.series_named("padded").paths[0])[24, 24]
    assert centre == tiny.hu[-1, 24, 24]
    with pytest.raises(PhantomWriteError, match="signed"):
        write_dicom_study(tiny, tmp_path / "u", series=[SeriesSpec("p", padding_hu=-2000)])


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dicom3tools not installed")
def test_padded_signed_instance_passes_dciodvfy(tmp_path: Path, tiny: Phantom) -> None:
    ws = write_dicom_study(tiny, tmp_path, signed_pixels=True,
                           series=[SeriesSpec("padded", padding_hu=-3024, gantry_tilt_deg=10.0)])
    res = subprocess.run(["dciodvfy", str(ws.series[0].paths[0])], capture_output=True,
                         text=True, timeout=60)
    errors = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith("Error")]
    assert errors == [], errors


def test_contrast_phase_appended_to_the_same_study(tmp_path: Path) -> None:
    kw = dict(matrix=48, fov_mm=360.0, slice_spacing_mm=5.0, seed=12)
    plain = generate_phantom(PhantomSpec(**kw))
    enhanced = generate_phantom(PhantomSpec(contrast=True, **kw))
    first = write_dicom_study(plain, tmp_path, series=[SeriesSpec("native")],
                              write_labels=True)
    both = write_dicom_study(enhanced, tmp_path, series=[SeriesSpec("arterial",
                                                                    series_number=2)],
                             append_to=first)
    assert [s.name for s in both.series] == ["native", "arterial"]
    assert both.study_uid == first.study_uid
    a = pydicom.dcmread(both.series_named("arterial").paths[0], stop_before_pixels=True)
    n = pydicom.dcmread(both.series_named("native").paths[0], stop_before_pixels=True)
    assert a.StudyInstanceUID == n.StudyInstanceUID
    assert a.FrameOfReferenceUID == n.FrameOfReferenceUID
    assert a.SeriesInstanceUID != n.SeriesInstanceUID
    assert "ContrastBolusAgent" in a and "ContrastBolusAgent" not in n
    truth = json.loads(both.truth_path.read_text(encoding="utf-8"))
    assert [(s["name"], s["contrast"]) for s in truth["dicom"]["series"]] == [
        ("native", False), ("arterial", True)]
    import nibabel as nib

    lab = nib.load(tmp_path / "labels.nii.gz")
    assert np.array_equal(np.asarray(lab.dataobj).transpose(2, 1, 0), plain.labels)
    with pytest.raises(PhantomWriteError, match="unique"):
        write_dicom_study(enhanced, tmp_path, series=[SeriesSpec("native")], append_to=both)


@pytest.mark.parametrize(("alias", "max_mean_error"), [("jpegls-near", 2.0), ("j2k-lossy", 30.0)])
def test_lossy_syntaxes_are_marked_and_close(tmp_path: Path, tiny: Phantom, alias: str,
                                             max_mean_error: float) -> None:
    ws = write_dicom_study(tiny, tmp_path, series=[SeriesSpec("thin")], transfer_syntax=alias)
    ds = pydicom.dcmread(ws.series[0].paths[1])
    assert ds.LossyImageCompression == "01"
    k = int(round((float(ds.ImagePositionPatient[2]) - tiny.origin[2]) / tiny.spacing[2]))
    err = np.abs(read_hu(ws.series[0].paths[1]) - tiny.hu[k])
    assert 0 < err.mean() <= max_mean_error

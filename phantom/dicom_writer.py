"""Write a phantom as a real multi-series CT study (CT Image Storage, PS3.3 A.3).

One study, one frame of reference, one folder per series: a projection
LOCALIZER, a thin axial series at the phantom's native slices and thicker
axial series averaged from them, as a scanner reconstructs them. Modules
written: Patient, General Study, Patient Study, General Series, Frame of
Reference, General Equipment, General Acquisition, General Image, Image Plane,
Image Pixel, Contrast/Bolus (when enhanced), CT Image, VOI LUT, SOP Common.
UIDs are derived from the phantom's seed and specification, so a study
written twice is identical. ``truth.json`` goes beside the series folders.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    JPEG2000,
    UID,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
    generate_uid,
)
from scipy import ndimage

from phantom.errors import PhantomWriteError
from phantom.types import PatientInfo, Phantom, SeriesKind, SeriesSpec, WrittenSeries, WrittenStudy

logger = logging.getLogger(__name__)

DEFAULT_SERIES: tuple[SeriesSpec, ...] = (
    SeriesSpec("localizer", SeriesKind.LOCALIZER, kernel="STANDARD", description="Topogram",
               series_number=1),
    SeriesSpec("thin", SeriesKind.AXIAL, None, kernel="LUNG", series_number=2),
    SeriesSpec("thick", SeriesKind.AXIAL, 5.0, kernel="STANDARD", series_number=3),
)

CLINICAL_SERIES: tuple[SeriesSpec, ...] = (
    SeriesSpec("localizer", SeriesKind.LOCALIZER, series_number=1),
    SeriesSpec("thin_lung", SeriesKind.AXIAL, None, kernel="LUNG", series_number=2),
    SeriesSpec("thin_soft", SeriesKind.AXIAL, None, kernel="STANDARD", series_number=3),
    SeriesSpec("thick_soft", SeriesKind.AXIAL, 5.0, kernel="STANDARD", series_number=4),
    SeriesSpec("coronal", SeriesKind.CORONAL, 3.0, kernel="STANDARD", series_number=5),
    SeriesSpec("dose", SeriesKind.DOSE_SCREEN, series_number=501),
)
"""A study as a PACS receives it: scout, two thin kernels, a thick series, an MPR, a dose page."""

UNCOMPRESSED = (ImplicitVRLittleEndian, ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian)
PYDICOM_ENCODED = (RLELossless, JPEGLSLossless, JPEGLSNearLossless, JPEG2000Lossless, JPEG2000)
GDCM_ENCODED = (JPEGLosslessSV1, JPEGLossless)
LOSSY = (JPEGLSNearLossless, JPEG2000)
SUPPORTED_TRANSFER_SYNTAXES: tuple[UID, ...] = UNCOMPRESSED + PYDICOM_ENCODED + GDCM_ENCODED
_ALIASES = {
    "implicit": ImplicitVRLittleEndian, "explicit": ExplicitVRLittleEndian,
    "deflated": DeflatedExplicitVRLittleEndian, "rle": RLELossless,
    "jpegls": JPEGLSLossless, "jpegls-near": JPEGLSNearLossless,
    "j2k": JPEG2000Lossless, "jpeg2000": JPEG2000Lossless, "j2k-lossy": JPEG2000,
    "jpeg-lossless": JPEGLosslessSV1, "jpeg-lossless-p14": JPEGLossless,
}
_IMPLEMENTATION_UID = UID("1.2.826.0.1.3680043.8.498.1")  # pydicom's root, as pydicom writes
_WINDOWS = {"LUNG": (-600, 1500), "BONE": (400, 1800)}


def resolve_transfer_syntax(value: str) -> UID:
    """A transfer syntax UID from a UID or a short alias (``j2k``, ``rle``, ``jpegls``...)."""
    uid = _ALIASES[value.lower()] if value.lower() in _ALIASES else UID(value)
    if uid not in SUPPORTED_TRANSFER_SYNTAXES:
        known = ", ".join(sorted(_ALIASES))
        raise PhantomWriteError(f"transfer syntax {value!r} is not supported; use a UID of "
                                f"{', '.join(SUPPORTED_TRANSFER_SYNTAXES)} or one of {known}")
    return uid


def _uid(key: str, *parts: object) -> UID:
    return generate_uid(entropy_srcs=[key, *[str(p) for p in parts]])


def _study_key(phantom: Phantom, patient: PatientInfo) -> str:
    spec_json = json.dumps(phantom.truth.get("spec", {}), sort_keys=True, default=str)
    digest = hashlib.sha256(spec_json.encode()).hexdigest()[:16]
    return f"ctnode-phantom/{phantom.spec.seed}/{digest}/{patient.patient_id}"


def _needs_utf8(patient: PatientInfo, texts: Sequence[str]) -> bool:
    return any(not s.isascii() for s in (patient.name, patient.patient_id, *texts))


def _base_dataset(phantom: Phantom, patient: PatientInfo, key: str, study: dict[str, Any],
                  series: SeriesSpec, series_uid: str, when: dt.datetime) -> Dataset:
    ds = Dataset()
    if study["utf8"]:
        ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = CTImageStorage
    # Patient (C.7.1.1) and General Study (C.7.2.1)
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id or f"PHANTOM{phantom.spec.seed:06d}"
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    ds.StudyInstanceUID = study["uid"]
    ds.StudyDate = when.strftime("%Y%m%d")
    ds.StudyTime = when.strftime("%H%M%S")
    ds.ReferringPhysicianName = ""
    ds.StudyID = study["id"]
    ds.AccessionNumber = study["accession"]
    ds.StudyDescription = study["description"]
    # General Series (C.7.3.1)
    ds.Modality = "CT"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series.series_number
    ds.SeriesDate = ds.StudyDate
    ds.SeriesTime = (when + dt.timedelta(seconds=series.series_number)).strftime("%H%M%S")
    ds.BodyPartExamined = "CHEST"
    ds.PatientPosition = "HFS"
    ds.ProtocolName = "Chest routine"
    # Frame of Reference (C.7.4.1)
    ds.FrameOfReferenceUID = study["for_uid"]
    ds.PositionReferenceIndicator = ""
    # General Equipment (C.7.5.1)
    ds.Manufacturer = "CTNODE"
    ds.ManufacturerModelName = "Synthetic chest phantom"
    ds.InstitutionName = "ctnode test site"
    ds.StationName = "PHANTOM01"
    ds.SoftwareVersions = "ctnode-phantom 1"
    ds.DeviceSerialNumber = "0001"
    # General Acquisition, General Image
    ds.AcquisitionNumber = 1
    ds.AcquisitionDate = ds.StudyDate
    ds.AcquisitionTime = ds.StudyTime
    ds.ContentDate = ds.StudyDate
    ds.ContentTime = ds.SeriesTime
    # CT Image (C.8.2.1)
    ds.KVP = f"{phantom.spec.kvp:g}"
    ds.DataCollectionDiameter = "500"
    ds.ReconstructionDiameter = f"{phantom.spec.fov_mm:.1f}"
    ds.GantryDetectorTilt = "0"
    ds.TableHeight = "150"
    ds.RotationDirection = "CW"
    ds.ExposureTime = "500"
    ds.XRayTubeCurrent = "200"
    ds.Exposure = "100"
    ds.FilterType = "BODY"
    ds.ConvolutionKernel = series.kernel
    ds.ScanOptions = "HELICAL MODE"
    ds.RescaleType = "HU"
    oral = phantom.spec.oral_contrast_hu is not None
    if phantom.spec.contrast or oral:
        # Contrast/Bolus (C.7.6.4)
        ds.ContrastBolusAgent = ("IODINATED CONTRAST" if phantom.spec.contrast
                                 else "ORAL CONTRAST")
        ds.ContrastBolusRoute = ("ORAL & IV" if phantom.spec.contrast and oral
                                 else "IV" if phantom.spec.contrast else "ORAL")
        if phantom.spec.contrast:
            ds.ContrastBolusVolume = "80"
    # Image Pixel (C.7.6.3)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    return ds


def _pixel_module(ds: Dataset, hu: np.ndarray, signed: bool, bits: int) -> np.ndarray:
    """Set Rescale and bit depth; return stored values (HU = stored * 1 + intercept)."""
    if signed:
        stored = hu.astype(np.int16)
        ds.PixelRepresentation = 1
        ds.BitsStored = 16
        ds.RescaleIntercept = "0"
    else:
        stored = np.clip(hu.astype(np.int32) + 1024, 0, 65535).astype(np.uint16)
        ds.PixelRepresentation = 0
        ds.BitsStored = bits
        ds.RescaleIntercept = "-1024"
    ds.HighBit = ds.BitsStored - 1
    ds.RescaleSlope = "1"
    return stored


def _finish(ds: Dataset, sop_uid: str, stored: np.ndarray, syntax: UID, path: Path) -> None:
    ds.SOPInstanceUID = UID(sop_uid)
    ds.Rows, ds.Columns = int(stored.shape[0]), int(stored.shape[1])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.ImplementationClassUID = _IMPLEMENTATION_UID
    meta.ImplementationVersionName = "CTNODE_PHANTOM"
    ds.file_meta = meta
    if syntax in UNCOMPRESSED:
        meta.TransferSyntaxUID = syntax
        ds.PixelData = np.ascontiguousarray(stored).tobytes()
        ds["PixelData"].VR = "OW"
        ds.save_as(path, enforce_file_format=True)
        return
    if syntax in GDCM_ENCODED:
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.PixelData = np.ascontiguousarray(stored).tobytes()
        ds["PixelData"].VR = "OW"
        ds.save_as(path, enforce_file_format=True)
        _gdcm_transcode(path, syntax)
        return
    kwargs: dict[str, Any] = {}
    if syntax == JPEGLSNearLossless:
        kwargs["jls_error"] = 2
    elif syntax == JPEG2000:
        kwargs["j2k_cr"] = [3]  # mild, "visually lossless" for CT
    try:
        ds.compress(syntax, np.ascontiguousarray(stored), generate_instance_uid=False, **kwargs)
    except Exception as exc:  # an encoder plugin missing or refusing: say which
        raise PhantomWriteError(f"cannot encode {syntax.name}: {exc}") from exc
    if syntax in LOSSY:
        ds.LossyImageCompression = "01"
    ds.save_as(path, enforce_file_format=True)


def _gdcm_transcode(path: Path, syntax: UID) -> None:
    """Re-encode a written file with GDCM (JPEG lossless, which pydicom cannot encode)."""
    try:
        import gdcm
    except ImportError as exc:  # python-gdcm is a declared dependency; say so if it is gone
        raise PhantomWriteError(f"{syntax.name} needs python-gdcm: {exc}") from exc
    reader = gdcm.ImageReader()
    reader.SetFileName(str(path))
    if not reader.Read():
        raise PhantomWriteError(f"GDCM could not read {path.name} back for transcoding")
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.GetTSType(str(syntax))))
    change.SetInput(reader.GetImage())
    if not change.Change():
        raise PhantomWriteError(f"GDCM could not encode {syntax.name}")
    writer = gdcm.ImageWriter()
    writer.SetFileName(str(path))
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    if not writer.Write():
        raise PhantomWriteError(f"GDCM could not write {path.name}")


def _axial_groups(
    phantom: Phantom, series: SeriesSpec
) -> tuple[list[tuple[float, np.ndarray, np.ndarray]], float, float]:
    """Output slices as (z centre, native indices, weights), thickness and step (mm).

    A thick slice is a box average over its thickness of the native slices,
    each weighted by its overlap with the box (a scanner's thick reconstruction).
    """
    dz = phantom.spacing[2]
    nz = phantom.shape[0]
    thick = dz if series.thickness_mm is None else float(series.thickness_mm)
    if thick < dz * 0.999:
        raise PhantomWriteError(f"series {series.name!r}: thickness {thick} mm is thinner than "
                                f"the phantom's {dz} mm slices")
    step = thick if series.spacing_mm is None else float(series.spacing_mm)
    z0 = phantom.origin[2]
    lo, hi = z0 - dz / 2.0, z0 + (nz - 0.5) * dz
    centres = np.arange(lo + thick / 2.0, hi - thick / 2.0 + 1e-6, step)
    if len(centres) == 0:
        raise PhantomWriteError(f"series {series.name!r}: {thick} mm is thicker than the volume")
    native = z0 + np.arange(nz) * dz
    out = []
    for c in centres:
        overlap = np.clip(np.minimum(native + dz / 2.0, c + thick / 2.0)
                          - np.maximum(native - dz / 2.0, c - thick / 2.0), 0.0, None)
        idx = np.nonzero(overlap > 1e-6 * dz)[0]
        out.append((float(c), idx, overlap[idx] / overlap[idx].sum()))
    return out, thick, step


def _axial_slices(phantom: Phantom, base: Dataset, series: SeriesSpec, key: str, signed: bool,
                  bits: int) -> tuple[list[tuple[Dataset, np.ndarray]], float, float]:
    """Datasets and stored pixels of an axial series, instance 1 the most cranial slice."""
    groups, thickness, step = _axial_groups(phantom, series)
    sx, sy, _ = phantom.spacing
    base.ImageType = list(series.image_type or ("ORIGINAL", "PRIMARY", "AXIAL"))
    base.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    base.PixelSpacing = [f"{sy:.6g}", f"{sx:.6g}"]
    base.SliceThickness = f"{thickness:.6g}"
    base.SpacingBetweenSlices = f"{step:.6g}"
    center, width = _WINDOWS.get(series.kernel.upper(), (40, 400))
    base.WindowCenter, base.WindowWidth = str(center), str(width)
    if not base.SeriesDescription:
        base.SeriesDescription = f"Chest {thickness:.3g}mm {series.kernel.title()}"
    tilt = math.radians(series.gantry_tilt_deg)
    if tilt:
        base.GantryDetectorTilt = f"{series.gantry_tilt_deg:.6g}"
        base.ImageOrientationPatient = [1, 0, 0, 0, f"{math.cos(tilt):.6f}",
                                        f"{math.sin(tilt):.6f}"]
    outside = None
    if series.padding_hu is not None:
        if not signed and series.padding_hu < -1024:
            raise PhantomWriteError(f"series {series.name!r}: padding {series.padding_hu} HU "
                                    "needs signed pixels (signed_pixels=True)")
        ny, nx = phantom.shape[1], phantom.shape[2]
        jj, ii = np.mgrid[0:ny, 0:nx]
        r = phantom.spec.fov_mm / 2.0
        outside = ((ii - (nx - 1) / 2.0) * sx) ** 2 + ((jj - (ny - 1) / 2.0) * sy) ** 2 > r * r
    out: list[tuple[Dataset, np.ndarray]] = []
    # Instance 1 is the most cranial slice, as a head-first helical scan numbers them.
    for inst, (z, idx, w) in enumerate(reversed(groups), start=1):
        ds = copy.deepcopy(base)
        x0, y0 = phantom.origin[0], phantom.origin[1]
        if tilt:
            hu = _tilted_plane(phantom, z, tilt)
            ipp = (x0, y0 * math.cos(tilt), z + y0 * math.sin(tilt))
        elif len(idx) == 1:
            hu = phantom.hu[idx[0]]
            ipp = (x0, y0, z)
        else:
            acc = np.tensordot(w.astype(np.float32), phantom.hu[idx].astype(np.float32), axes=1)
            hu = np.rint(acc).astype(np.int16)
            ipp = (x0, y0, z)
        if outside is not None and series.padding_hu is not None:
            hu = np.where(outside, np.int16(series.padding_hu), hu).astype(np.int16)
        ds.ImagePositionPatient = [f"{v:.4f}" for v in ipp]
        ds.SliceLocation = f"{z:.4f}"
        ds.InstanceNumber = inst
        ds.SOPInstanceUID = _uid(key, series.name, inst)
        stored = _pixel_module(ds, hu, signed, bits)
        if series.padding_hu is not None:
            ds.PixelPaddingValue = int(series.padding_hu - float(ds.RescaleIntercept))
        out.append((ds, stored))
    return out, thickness, step


def _tilted_plane(phantom: Phantom, z: float, tilt: float) -> np.ndarray:
    """HU on the plane through (y = 0, z) tilted by ``tilt`` about the x axis (trilinear)."""
    sx, sy, sz = phantom.spacing
    ny, nx = phantom.shape[1], phantom.shape[2]
    ox, oy, oz = phantom.origin
    row = oy + np.arange(ny) * sy  # in-plane coordinate along the column direction
    y = row * math.cos(tilt)
    zz = z + row * math.sin(tilt)
    kk = np.broadcast_to(((zz - oz) / sz)[:, None], (ny, nx))
    jj = np.broadcast_to(((y - oy) / sy)[:, None], (ny, nx))
    ii = np.broadcast_to(np.arange(nx)[None, :], (ny, nx)).astype(float)
    vals = ndimage.map_coordinates(phantom.hu, [kk, jj, ii], order=1, mode="constant",
                                   cval=-1000.0, output=np.float32)
    return np.rint(vals).astype(np.int16)


def _write_axial(phantom: Phantom, base: Dataset, series: SeriesSpec, folder: Path, key: str,
                 syntax: UID, signed: bool, bits: int) -> tuple[list[Path], float, float]:
    slices, thickness, step = _axial_slices(phantom, base, series, key, signed, bits)
    paths: list[Path] = []
    for ds, stored in slices:
        path = folder / f"IM{int(ds.InstanceNumber):05d}.dcm"
        _finish(ds, str(ds.SOPInstanceUID), stored, syntax, path)
        paths.append(path)
    return paths, thickness, step


def _write_multiframe(phantom: Phantom, base: Dataset, series: SeriesSpec, folder: Path,
                      key: str, syntax: UID, signed: bool, bits: int,
                      ) -> tuple[list[Path], float, float]:
    """The axial slices as one Legacy Converted Enhanced CT Image (PS3.3 A.70), via highdicom."""
    import highdicom as hd

    slices, thickness, step = _axial_slices(phantom, base, series, key, signed, bits)
    legacy = []
    for ds, stored in slices:
        ds.Rows, ds.Columns = int(stored.shape[0]), int(stored.shape[1])
        ds.PixelData = np.ascontiguousarray(stored).tobytes()
        ds["PixelData"].VR = "OW"
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        legacy.append(ds)
    ts = syntax if syntax in (ExplicitVRLittleEndian, JPEG2000Lossless, RLELossless,
                              JPEGLSLossless) else ExplicitVRLittleEndian
    mf = hd.legacy.LegacyConvertedEnhancedCTImage(
        legacy, series_instance_uid=str(base.SeriesInstanceUID),
        series_number=series.series_number, sop_instance_uid=_uid(key, series.name, "mf"),
        instance_number=1, transfer_syntax_uid=ts)
    # The single-frame sources are never written: do not reference them.
    if "ReferencedSeriesSequence" in mf:
        del mf.ReferencedSeriesSequence
    path = folder / "MF00001.dcm"
    mf.save_as(path, enforce_file_format=True)
    return [path], thickness, step


def _write_coronal(phantom: Phantom, base: Dataset, series: SeriesSpec, folder: Path, key: str,
                   syntax: UID, signed: bool, bits: int) -> tuple[list[Path], float, float]:
    """Coronal reformats averaged over ``thickness_mm`` (default 3 mm) along y."""
    sx, sy, sz = phantom.spacing
    nz, ny, _ = phantom.shape
    thick = series.thickness_mm or 3.0
    n = max(1, int(round(thick / sy)))
    step_n = max(1, int(round((series.spacing_mm or thick) / sy)))
    top = phantom.origin[2] + (nz - 1) * sz
    base.ImageType = list(series.image_type or ("DERIVED", "SECONDARY", "REFORMATTED"))
    base.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    base.PixelSpacing = [f"{sz:.6g}", f"{sx:.6g}"]
    base.SliceThickness = f"{n * sy:.6g}"
    base.SpacingBetweenSlices = f"{step_n * sy:.6g}"
    base.WindowCenter, base.WindowWidth = "40", "400"
    if not base.SeriesDescription:
        base.SeriesDescription = f"Chest Cor {n * sy:.3g}mm MPR"
    paths: list[Path] = []
    for inst, j0 in enumerate(range(0, ny - n + 1, step_n), start=1):
        ds = copy.deepcopy(base)
        plane = phantom.hu[::-1, j0:j0 + n, :].astype(np.float32).mean(axis=1)
        y = phantom.origin[1] + (j0 + (n - 1) / 2.0) * sy
        ds.ImagePositionPatient = [f"{phantom.origin[0]:.4f}", f"{y:.4f}", f"{top:.4f}"]
        ds.InstanceNumber = inst
        stored = _pixel_module(ds, np.rint(plane).astype(np.int16), signed, bits)
        path = folder / f"IM{inst:05d}.dcm"
        _finish(ds, _uid(key, series.name, inst), stored, syntax, path)
        paths.append(path)
    return paths, n * sy, step_n * sy


def _write_dose_screen(phantom: Phantom, base: Dataset, series: SeriesSpec, folder: Path,
                       key: str, syntax: UID) -> list[Path]:
    """A Secondary Capture 'patient protocol' page with CTDIvol and DLP, as scanners add."""
    import highdicom as hd
    from PIL import Image, ImageDraw

    nz = phantom.shape[0]
    length_cm = nz * phantom.spacing[2] / 10.0
    ctdi = 8.0
    lines = ["Patient Protocol", "", "Series  Type    CTDIvol  DLP",
             f"1       Topo    0.10     {0.1 * length_cm:.1f}",
             f"2       Spiral  {ctdi:.2f}     {ctdi * length_cm:.1f}",
             "", f"Total DLP [mGy*cm]: {ctdi * length_cm + 0.1 * length_cm:.1f}"]
    img = Image.new("L", (512, 512), 0)
    draw = ImageDraw.Draw(img)
    for i, text in enumerate(lines):
        draw.text((24, 24 + 22 * i), text, fill=255)
    sc = hd.sc.SCImage(
        pixel_array=np.asarray(img, dtype=np.uint8), photometric_interpretation="MONOCHROME2",
        bits_allocated=8, coordinate_system="PATIENT",
        study_instance_uid=str(base.StudyInstanceUID),
        series_instance_uid=str(base.SeriesInstanceUID), series_number=series.series_number,
        sop_instance_uid=_uid(key, series.name, 1), instance_number=1,
        manufacturer=str(base.Manufacturer), patient_id=str(base.PatientID),
        patient_name=base.PatientName, patient_birth_date=str(base.PatientBirthDate),
        patient_sex=str(base.PatientSex) or None, accession_number=str(base.AccessionNumber),
        study_id=str(base.StudyID), study_date=str(base.StudyDate),
        study_time=str(base.StudyTime), referring_physician_name="",
        patient_orientation=("L", "P"),
    )
    if "SpecificCharacterSet" in base:
        sc.SpecificCharacterSet = base.SpecificCharacterSet
    sc.Modality = "CT"  # scanners label their dose pages with the study's modality
    sc.BodyPartExamined = "CHEST"
    sc.SeriesDescription = base.SeriesDescription
    sc.ImageType = list(series.image_type or ("DERIVED", "SECONDARY", "OTHER"))
    sc.StudyDescription = base.StudyDescription
    path = folder / "IM00001.dcm"
    sc.save_as(path, enforce_file_format=True)
    return [path]


def localizer_image(phantom: Phantom) -> np.ndarray:
    """A frontal projection radiograph (rows = z from head down, columns = x), 0..4095."""
    mu = np.clip(phantom.hu.astype(np.float32) + 1000.0, 0.0, None) / 1000.0
    line = mu.sum(axis=1) * phantom.spacing[1] / 10.0  # water-equivalent cm, [z, x]
    img = np.clip(line * 110.0, 0.0, 4095.0)[::-1]
    return np.rint(img).astype(np.uint16)


def _write_localizer(phantom: Phantom, base: Dataset, series: SeriesSpec, folder: Path, key: str,
                     syntax: UID) -> list[Path]:
    sx, _, sz = phantom.spacing
    nz = phantom.shape[0]
    top = phantom.origin[2] + (nz - 1) * sz
    base.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    base.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    base.ImagePositionPatient = [f"{phantom.origin[0]:.4f}", "0", f"{top:.4f}"]
    base.PixelSpacing = [f"{sz:.6g}", f"{sx:.6g}"]
    base.SliceThickness = "0.6"
    base.WindowCenter, base.WindowWidth = "1600", "3200"
    base.InstanceNumber = 1
    base.PixelRepresentation = 0
    base.BitsStored = 12
    base.HighBit = 11
    base.RescaleIntercept = "0"
    base.RescaleSlope = "1"
    del base.RescaleType  # projection values are not HU
    path = folder / "IM00001.dcm"
    _finish(base, _uid(key, series.name, 1), localizer_image(phantom), syntax, path)
    return [path]


def write_dicom_study(
    phantom: Phantom,
    out_dir: Path | str,
    *,
    series: Sequence[SeriesSpec] = DEFAULT_SERIES,
    patient: PatientInfo | None = None,
    transfer_syntax: str = ExplicitVRLittleEndian,
    signed_pixels: bool = False,
    study_description: str = "CT CHEST",
    study_datetime: dt.datetime | None = None,
    accession_number: str = "",
    append_to: WrittenStudy | None = None,
    write_labels: bool = False,
) -> WrittenStudy:
    """Write ``phantom`` as a CT study under ``out_dir`` (one folder per series) plus truth.json.

    ``append_to`` adds the series to an already written study (same study and
    frame of reference, e.g. an arterial phase generated with the same seed and
    ``contrast=True``); truth.json then lists every series with its phase.
    ``write_labels`` also writes the tissue labels as ``labels.nii.gz`` (RAS).
    Raises PhantomWriteError for an unsupported transfer syntax, a series that
    cannot be reconstructed (thinner than the native slices), a clashing series
    name, or an encoder failure.
    """
    syntax = resolve_transfer_syntax(str(transfer_syntax))
    patient = patient or PatientInfo()
    names = [s.name for s in series]
    earlier = tuple(append_to.series) if append_to is not None else ()
    if len(set(names)) != len(names) or not names or set(names) & {w.name for w in earlier}:
        raise PhantomWriteError(f"series names must be unique and non-empty: {names}")
    out = Path(out_dir)
    if append_to is not None and out.resolve() != append_to.root.resolve():
        raise PhantomWriteError("append_to needs the same out_dir as the study it extends")
    out.mkdir(parents=True, exist_ok=True)
    when = study_datetime or dt.datetime(2024, 1, 15, 10, 30, 0)
    key = _study_key(phantom, patient)
    study = {
        "uid": append_to.study_uid if append_to else _uid(key, "study"),
        "for_uid": (append_to.frame_of_reference_uid if append_to
                    else _uid(key, "frame-of-reference")),
        "id": "1", "accession": accession_number, "description": study_description,
        "utf8": _needs_utf8(patient, [study_description, *[s.description for s in series]]),
    }
    # Bits Stored is fixed for the study: 12 unless metal needs the extended range.
    bits = 12 if int(phantom.hu.max()) + 1024 <= 4095 else 16
    written: list[WrittenSeries] = []
    for s in series:
        folder = out / s.name
        folder.mkdir(parents=True, exist_ok=True)
        series_uid = _uid(key, "series", s.name)
        base = _base_dataset(phantom, patient, key, study, s, series_uid, when)
        base.SeriesDescription = s.description or {
            SeriesKind.DOSE_SCREEN: "Patient Protocol", SeriesKind.LOCALIZER: "Topogram 0.6",
        }.get(s.kind, "")
        if s.kind is SeriesKind.LOCALIZER:
            paths = _write_localizer(phantom, base, s, folder, key, syntax)
            thickness, step = 0.6, 0.0
        elif s.kind is SeriesKind.DOSE_SCREEN:
            paths = _write_dose_screen(phantom, base, s, folder, key, syntax)
            thickness, step = 0.0, 0.0
        else:
            writer = {SeriesKind.AXIAL: _write_axial, SeriesKind.CORONAL: _write_coronal,
                      SeriesKind.MULTIFRAME: _write_multiframe}[s.kind]
            paths, thickness, step = writer(phantom, base, s, folder, key, syntax,
                                            signed_pixels, bits)
        written.append(WrittenSeries(
            name=s.name, kind=s.kind, series_uid=series_uid, series_number=s.series_number,
            description=str(base.SeriesDescription), kernel=s.kernel, thickness_mm=thickness,
            spacing_mm=step, paths=tuple(paths)))
    entries = [
        {"name": w.name, "kind": w.kind.value, "series_instance_uid": w.series_uid,
         "series_number": w.series_number, "description": w.description,
         "kernel": w.kernel, "slice_thickness_mm": w.thickness_mm,
         "slice_spacing_mm": w.spacing_mm, "instances": len(w.paths), "folder": w.name,
         "contrast": phantom.spec.contrast, "transfer_syntax_uid": str(syntax)}
        for w in written
    ]
    truth_path = out / "truth.json"
    if append_to is not None:
        truth = json.loads(append_to.truth_path.read_text(encoding="utf-8"))
        truth["dicom"]["series"].extend(entries)
    else:
        truth = dict(phantom.truth)
        truth["dicom"] = {
            "study_instance_uid": study["uid"],
            "frame_of_reference_uid": study["for_uid"],
            "transfer_syntax_uid": str(syntax),
            "series": entries,
        }
    if write_labels:
        _write_labels(phantom, out / "labels.nii.gz")
        truth["labels_file"] = "labels.nii.gz"
    truth_path.write_text(json.dumps(truth, indent=1, ensure_ascii=False), encoding="utf-8")
    logger.info("wrote phantom study %s: %d series, %d instances, %s", study["uid"],
                len(written), sum(len(w.paths) for w in written), syntax.name)
    return WrittenStudy(root=out, study_uid=str(study["uid"]),
                        frame_of_reference_uid=str(study["for_uid"]),
                        transfer_syntax_uid=str(syntax), series=earlier + tuple(written),
                        truth_path=truth_path)


def _write_labels(phantom: Phantom, path: Path) -> None:
    """Tissue labels as NIfTI (RAS affine; array indexed [x, y, z]) for segmentation scoring."""
    import nibabel as nib

    sx, sy, sz = phantom.spacing
    ox, oy, oz = phantom.origin
    affine = np.array([[-sx, 0, 0, -ox], [0, -sy, 0, -oy], [0, 0, sz, oz], [0, 0, 0, 1]])
    img = nib.Nifti1Image(np.ascontiguousarray(phantom.labels.transpose(2, 1, 0)), affine)
    img.header.set_data_dtype(np.uint8)
    nib.save(img, str(path))


def read_hu(path: Path | str) -> np.ndarray:
    """HU of one written axial instance (rescale applied), for tests and tools."""
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array.astype(np.float64)
    return arr * float(ds.RescaleSlope) + float(ds.RescaleIntercept)

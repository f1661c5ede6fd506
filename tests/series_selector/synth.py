"""Small synthetic CT series written with pydicom, for the selector's tests.

The anatomy is defined in patient space (LPS mm) and each slice is rendered
from its own position and orientation, so shuffled files, gantry tilt and
other orientations stay physically consistent: a marker is always at the
same LPS point. Kept tiny (96 x 96 pixels of 4 mm) so tests stay fast.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    generate_uid,
)

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"
ENCODED_BY_COMPRESS = {
    "1.2.840.10008.1.2.5",  # RLE Lossless
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
}

MARKER_LPS = (30.0, -20.0, 40.0)  # a 12 mm bright sphere at a known place
MARKER_HU = 600.0


@dataclass(frozen=True)
class Anatomy:
    """What the slices show: a chest (lungs over a z-range) or an abdomen (bowel gas)."""

    lungs_z: tuple[float, float] | None = (-1e9, 1e9)
    bowel_gas: bool = False


CHEST = Anatomy()
ABDOMEN = Anatomy(lungs_z=None, bowel_gas=True)


def render(points: np.ndarray, anatomy: Anatomy, rng: np.random.Generator) -> np.ndarray:
    """HU at LPS points [..., 3]."""
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    hu = np.full(x.shape, -1000.0)
    body = (x / 160.0) ** 2 + (y / 110.0) ** 2 <= 1.0
    hu[body] = 40.0
    if anatomy.lungs_z is not None:
        lo, hi = anatomy.lungs_z
        in_z = (z >= lo) & (z <= hi)
        for cx in (-70.0, 70.0):
            lung = ((x - cx) / 55.0) ** 2 + (y / 80.0) ** 2 <= 1.0
            hu[lung & in_z] = -850.0
    if anatomy.bowel_gas:
        gas = ((x - 20.0) ** 2 + (y - 30.0) ** 2) <= 25.0**2
        hu[gas] = -1000.0
    mx, my, mz = MARKER_LPS
    marker = (x - mx) ** 2 + (y - my) ** 2 + (z - mz) ** 2 <= 6.0**2
    hu[marker] = MARKER_HU
    hu += rng.normal(0.0, 5.0, size=hu.shape)
    return np.clip(np.round(hu), -1024, 3000)


def slice_points(position: np.ndarray, row: np.ndarray, col: np.ndarray, rows: int,
                 pixel_mm: float) -> np.ndarray:
    r, c = np.mgrid[0:rows, 0:rows].astype(float)
    return (position + c[..., None] * pixel_mm * row + r[..., None] * pixel_mm * col)


@dataclass
class SeriesSpec:
    """Everything a test may vary about one series."""

    study_uid: str
    series_uid: str = ""
    series_number: int = 2
    description: str = "Chest 3 mm"
    n: int = 40
    step: float = 3.5
    thickness: float | None = None
    rows: int = 96
    pixel_mm: float = 4.0
    z0: float = -60.0
    kernel: str = "B30f"
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "AXIAL")
    orientation: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    tilt_deg: float = 0.0
    anatomy: Anatomy = CHEST
    skip: Sequence[int] = ()
    duplicate_positions: Sequence[int] = ()  # extra instances (new UIDs) at these slices
    transfer_syntax: str = ExplicitVRLittleEndian
    sop_class: str = CT_IMAGE
    modality: str = "CT"
    contrast: str = ""
    padding_value: int | None = None  # stored value marking pixels outside the patient
    acquisition_number: int | None = 1
    preamble: bool = True
    extension: str = ".dcm"
    seed: int = 0


def _dataset(spec: SeriesSpec, sop_uid: str, k: int, position: np.ndarray,
             pixels: np.ndarray) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(spec.sop_class)
    ds.file_meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = spec.sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = spec.study_uid
    ds.SeriesInstanceUID = spec.series_uid
    ds.FrameOfReferenceUID = generate_uid(entropy_srcs=[spec.study_uid, "frame-of-reference"])
    ds.Modality = spec.modality
    ds.PatientName = "Test^Patient"
    ds.PatientID = "SYN001"
    ds.StudyDate = "20260101"
    ds.StudyTime = "120000"
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.SeriesNumber = spec.series_number
    ds.InstanceNumber = k + 1
    if spec.acquisition_number is not None:
        ds.AcquisitionNumber = spec.acquisition_number
    ds.SeriesDescription = spec.description
    ds.ImageType = list(spec.image_type)
    ds.ConvolutionKernel = spec.kernel
    if spec.contrast:
        ds.ContrastBolusAgent = spec.contrast
    ds.ImagePositionPatient = [f"{v:.4f}" for v in position]
    ds.ImageOrientationPatient = [f"{v:.6f}" for v in spec.orientation]
    ds.PixelSpacing = [spec.pixel_mm, spec.pixel_mm]
    ds.SliceThickness = spec.thickness if spec.thickness is not None else spec.step
    ds.GantryDetectorTilt = spec.tilt_deg
    ds.Rows = ds.Columns = spec.rows
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    stored = (pixels + 1024).astype(np.uint16)
    if spec.padding_value is not None:
        ds.PixelPaddingValue = spec.padding_value
        r, c = np.mgrid[0:spec.rows, 0:spec.rows] - (spec.rows - 1) / 2.0
        outside_fov = r**2 + c**2 > (spec.rows / 2.0) ** 2  # outside the reconstruction circle
        stored[outside_fov] = spec.padding_value
    ds.PixelData = stored.tobytes()
    return ds


def save(ds: Dataset, path: Path, transfer_syntax: str, preamble: bool = True) -> None:
    """Write ``ds`` in ``transfer_syntax`` (encoding pixels when the syntax compresses)."""
    ts = UID(transfer_syntax)
    if ts in ENCODED_BY_COMPRESS:
        kwargs: dict[str, Any] = {}
        if ts == "1.2.840.10008.1.2.4.91":
            kwargs["j2k_cr"] = [10]
        elif ts == "1.2.840.10008.1.2.4.81":
            kwargs["jls_error"] = 2
        ds.compress(ts, **kwargs)
    else:
        ds.file_meta.TransferSyntaxUID = ts
        if ts == ExplicitVRBigEndian:
            arr = np.frombuffer(ds.PixelData, dtype=np.uint16)
            ds.PixelData = arr.byteswap().tobytes()
    if preamble:
        ds.save_as(path, enforce_file_format=True)
    else:
        ds.preamble = None
        ds.save_as(path, enforce_file_format=False)


def write_series(folder: Path, spec: SeriesSpec) -> list[Path]:
    """Write the series as one file per slice, in shuffled order with opaque names."""
    folder.mkdir(parents=True, exist_ok=True)
    if not spec.series_uid:
        spec.series_uid = generate_uid()
    rng = np.random.default_rng(spec.seed)
    row = np.asarray(spec.orientation[:3], dtype=float)
    col = np.asarray(spec.orientation[3:6], dtype=float)
    normal = np.cross(row, col)
    half = spec.rows * spec.pixel_mm / 2.0
    shear = math.tan(math.radians(spec.tilt_deg))
    jobs: list[tuple[int, np.ndarray]] = []
    for k in range(spec.n):
        if k in spec.skip:
            continue
        along = spec.z0 + k * spec.step
        # centre the field on the patient axis; gantry tilt shears origins along the columns
        position = -half * row - half * col + along * normal + (along - spec.z0) * shear * col
        jobs.append((k, position))
        if k in spec.duplicate_positions:
            jobs.append((k, position))
    paths = []
    order = list(range(len(jobs)))
    random.Random(spec.seed).shuffle(order)
    for j, idx in enumerate(order):
        k, position = jobs[idx]
        pixels = render(slice_points(position, row, col, spec.rows, spec.pixel_mm), spec.anatomy,
                        rng)
        ds = _dataset(spec, generate_uid(), k, position, pixels)
        path = folder / f"IM{spec.series_number:02d}_{j:04d}{spec.extension}"
        save(ds, path, spec.transfer_syntax, spec.preamble)
        paths.append(path)
    return paths


def write_localizer(folder: Path, study_uid: str, series_number: int = 1) -> Path:
    """A single coronal scout image, as scanners send before the axial series."""
    spec = SeriesSpec(study_uid=study_uid, series_number=series_number, description="Topogram",
                      n=1, image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
                      orientation=(1.0, 0.0, 0.0, 0.0, 0.0, -1.0), kernel="T20f")
    return write_series(folder, spec)[0]


def _other_object(folder: Path, sop_class: str, study_uid: str, modality: str,
                  series_number: int, description: str) -> Dataset:
    """The header of an object that is not a CT image, in a new series of its own."""
    folder.mkdir(parents=True, exist_ok=True)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    uid = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = UID(sop_class)
    ds.file_meta.MediaStorageSOPInstanceUID = UID(uid)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = modality
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    return ds


def write_secondary_capture(folder: Path, study_uid: str, series_number: int = 998,
                            description: str = "Dose Report") -> Path:
    """A dose-report screenshot: Secondary Capture without CT geometry."""
    ds = _other_object(folder, SECONDARY_CAPTURE, study_uid, "CT", series_number, description)
    ds.ImageType = ["DERIVED", "SECONDARY", "OTHER"]
    ds.Rows = ds.Columns = 32
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(32 * 32)
    path = folder / "SC0001"
    ds.save_as(path, enforce_file_format=True)
    return path


def write_dose_sr(folder: Path, study_uid: str, series_number: int = 999) -> Path:
    """A minimal X-Ray Radiation Dose SR header (content is irrelevant to selection)."""
    ds = _other_object(folder, DOSE_SR, study_uid, "SR", series_number,
                       "Radiation Dose Information")
    path = folder / "SR0001"
    ds.save_as(path, enforce_file_format=True)
    return path

"""A tiny chest-like CT series written with pydicom, for the Orthanc door's tests.

Body ellipse of soft tissue with two aerated lungs: enough for series selection
to accept it as a chest CT. Small (64x64, 5 mm slices) to keep the real
pipeline fast on a busy 2-core machine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

ROOT = "1.2.826.0.1.3680043.8.498."


def _slice_hu(size: int, pixel_mm: float, lungs: bool) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    c = (size - 1) / 2.0
    x = (xx - c) * pixel_mm
    y = (yy - c) * pixel_mm
    hu = np.full((size, size), -1000, dtype=np.int16)
    body = (x / 160.0) ** 2 + (y / 110.0) ** 2 <= 1.0
    hu[body] = 40
    for side in (-1, 1) if lungs else ():
        lung = ((x - side * 75.0) / 55.0) ** 2 + (y / 80.0) ** 2 <= 1.0
        hu[lung] = -850
    return hu


def write_ct_series(
    out_dir: Path, study_uid: str | None = None, n_slices: int = 30, size: int = 64,
    modality: str = "CT", body_part: str = "CHEST", lungs: bool = True,
) -> tuple[str, list[Path]]:
    """Write one axial series; returns (study UID, files). ``lungs=False``: not a chest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    study_uid = study_uid or generate_uid(prefix=ROOT)
    series_uid = generate_uid(prefix=ROOT)
    frame_uid = generate_uid(prefix=ROOT)
    pixel_mm = 360.0 / size
    hu = _slice_hu(size, pixel_mm, lungs)
    paths = []
    for i in range(n_slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid(prefix=ROOT)
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.PatientName = "Test^Orthanc"
        ds.PatientID = "ORTH-TEST-1"
        ds.PatientBirthDate = "19700101"
        ds.PatientSex = "O"
        ds.StudyDate = ds.SeriesDate = "20260101"
        ds.StudyTime = ds.SeriesTime = "120000"
        ds.AccessionNumber = "ACC1"
        ds.StudyID = "1"
        ds.ReferringPhysicianName = ""
        ds.Modality = modality
        ds.Manufacturer = "TestScanner"
        ds.BodyPartExamined = body_part
        ds.StudyDescription = "Chest"
        ds.SeriesDescription = "Chest 5mm"
        ds.SeriesNumber = 2
        ds.InstanceNumber = i + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.KVP = 120
        ds.ConvolutionKernel = "B30f"
        ds.SliceThickness = 5.0
        ds.PixelSpacing = [pixel_mm, pixel_mm]
        ds.ImagePositionPatient = [-180.0, -180.0, -float(i) * 5.0]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PatientPosition = "HFS"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = ds.Columns = size
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = 0
        ds.RescaleSlope = 1
        ds.PixelData = hu.tobytes()
        path = out_dir / f"ct{i:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return study_uid, paths

"""A tiny chest-like CT series written with pydicom, for the Orthanc door's tests.

Body ellipse of soft tissue with two aerated lungs: enough for series selection
to accept it as a chest CT. Small (64x64, 5 mm slices) to keep the real
pipeline fast on a busy 2-core machine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.uid import generate_uid

from tests.helpers import ct_slice

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
        ds = ct_slice(
            hu, study_uid=study_uid, series_uid=series_uid, frame_uid=frame_uid,
            instance_number=i + 1, series_number=2,
            position=[-180.0, -180.0, -float(i) * 5.0], pixel_mm=pixel_mm, thickness_mm=5.0,
            sop_uid=generate_uid(prefix=ROOT),
            PatientName="Test^Orthanc", PatientID="ORTH-TEST-1", PatientBirthDate="19700101",
            SeriesDate="20260101", SeriesTime="120000", AccessionNumber="ACC1",
            Modality=modality, Manufacturer="TestScanner", BodyPartExamined=body_part,
            StudyDescription="Chest", SeriesDescription="Chest 5mm",
            ConvolutionKernel="B30f", PatientPosition="HFS",
        )
        path = out_dir / f"ct{i:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return study_uid, paths

"""Helpers shared by several test packages (and the benchmarks): ports, polling,
stopping processes, zipping a study for upload, and one tiny pydicom CT slice.

Plain functions, no fixtures: each package's ``conftest.py`` builds its own
fixtures on them, so one copy decides how a free port is found or how a
process is stopped.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian, generate_uid


def zip_folder(folder: Path, archive: Path) -> Path:
    """ZIP every file under ``folder`` (nested paths kept), as a user would upload it."""
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return archive


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it; a race is unlikely in tests)."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    """Poll until ``predicate`` returns something truthy and return it; fail naming ``what``.

    ``predicate`` may raise (e.g. when the process it waits for has exited) to fail at once.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def stop_process(proc: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    """SIGTERM (a clean shutdown), then SIGKILL after ``timeout`` s; no-op if it has exited."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        kill_process(proc)


def kill_process(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL (a crash: no chance to clean up) and reap it; no-op if it has exited."""
    if proc.poll() is not None:
        return
    proc.kill()
    proc.wait(10)


def ct_slice(
    hu: np.ndarray,
    *,
    study_uid: str,
    series_uid: str,
    frame_uid: str,
    instance_number: int,
    position: Sequence[float],
    pixel_mm: float,
    thickness_mm: float,
    series_number: int = 1,
    sop_uid: str | None = None,
    rescale_intercept: int = 0,
    **attributes: Any,
) -> Dataset:
    """One axial CT Image Storage slice (Explicit VR Little Endian, signed 16-bit pixels).

    ``hu`` [rows, columns] is stored as ``hu - rescale_intercept`` (slope 1).
    ``attributes`` (DICOM keywords) are set last, so they override the neutral
    patient/study values here; each caller names the ones its tests look at.
    """
    sop_uid = UID(sop_uid) if sop_uid else generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = frame_uid
    ds.PatientName = "Test^Patient"
    ds.PatientID = "TEST0001"
    ds.PatientBirthDate = "19600101"
    ds.PatientSex = "O"
    ds.StudyDate = "20260101"
    ds.StudyTime = "120000"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.Modality = "CT"
    ds.SeriesNumber = series_number
    ds.InstanceNumber = instance_number
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ImagePositionPatient = list(position)
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [pixel_mm, pixel_mm]
    ds.SliceThickness = thickness_mm
    ds.Rows, ds.Columns = int(hu.shape[0]), int(hu.shape[1])
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = rescale_intercept
    ds.RescaleSlope = 1
    ds.KVP = 120
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    stored = hu.astype(np.int32) - rescale_intercept if rescale_intercept else hu
    ds.PixelData = np.ascontiguousarray(stored, dtype=np.int16).tobytes()
    return ds

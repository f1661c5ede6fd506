"""The memory a study's analysis will need, estimated from headers before any pixel is read.

A header can declare a volume far larger than its file (a 77-byte NIfTI
declaring 1400x1400x560 voxels, a multi-frame DICOM of zeros): the volume is
refused before it is allocated, with a sentence a user can act on, when the
estimated peak exceeds the per-study budget (``LimitsSettings.study_memory_mb``).

The estimate is ``FIXED_BYTES`` + voxels x ``PEAK_BYTES_PER_VOXEL``: an upper
envelope of the peak resident memory of whole pipeline runs (decode, volume,
analyzer) measured over the process's baseline with ``benchmarks/probes.py
--fit`` on three phantom volumes: 3.0, 15.3 and 42.9 million voxels needed
0.23, 0.57 and 0.43 GB (the analyzer works on a grid fixed in millimetres,
so its share does not grow with the voxel count; decoding and the volume
do). A 512 x 512 x 600 chest CT is estimated at 3.1 GB, within the default
4 GB; 1400 x 1400 x 560 voxels at 18 GB.
"""

from __future__ import annotations

from series_selector.errors import SelectionError
from series_selector.types import DicomIndex, SelectionReport

#: Peak bytes per voxel and fixed part of a pipeline run (see the module docstring).
PEAK_BYTES_PER_VOXEL = 16.0
FIXED_BYTES = 600e6
#: NIfTI data may be stored as float64 and scaled: one more raw copy of that size.
_NIFTI_RAW_BYTES_PER_VOXEL = 8.0


class StudyTooLargeError(SelectionError):
    """The study would need more memory than the per-study budget."""

    code = "study_too_large"


def dicom_series_voxels(index: DicomIndex, report: SelectionReport) -> int:
    """Voxels of the chosen series, from Rows x Columns x frames of its instances."""
    if report.chosen_series_uid is None:
        return 0
    return sum((h.rows or 0) * (h.columns or 0) * max(1, h.number_of_frames or 1)
               for h in index.instances if h.series_uid == report.chosen_series_uid)


def estimate_bytes(voxels: int, *, nifti: bool = False) -> int:
    """Estimated peak memory of analysing a volume of ``voxels`` voxels."""
    per_voxel = PEAK_BYTES_PER_VOXEL + (_NIFTI_RAW_BYTES_PER_VOXEL if nifti else 0.0)
    return int(FIXED_BYTES + voxels * per_voxel)


def check_budget(voxels: int, budget_bytes: int, *, nifti: bool = False) -> None:
    """Raise StudyTooLargeError when a volume of ``voxels`` would exceed ``budget_bytes``."""
    need = estimate_bytes(voxels, nifti=nifti)
    if need > budget_bytes:
        raise StudyTooLargeError(
            f"the volume has {voxels / 1e6:.0f} million voxels and would need about "
            f"{need / 1e9:.1f} GB to analyse; this node's budget per study is "
            f"{budget_bytes / 1e9:.1f} GB (setting limits.study_memory_mb)")


def check_dicom_budget(index: DicomIndex, report: SelectionReport, budget_bytes: int) -> None:
    """The pre-load check of the chosen DICOM series (called before ``load_volume``)."""
    check_budget(dicom_series_voxels(index, report), budget_bytes)

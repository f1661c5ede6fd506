"""Types that leave the series selector: what was read, what was decided, the volume.

These cross package borders (inference, sr_writer and every door use them), so
they are frozen dataclasses that check themselves at construction.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MISSING_UID_PREFIX = "missing:"


def is_stand_in_uid(uid: str) -> bool:
    """True for the placeholder the reader puts where a file had no UID."""
    return uid.startswith(MISSING_UID_PREFIX)


@dataclass(frozen=True, slots=True)
class FrameInfo:
    """Geometry and rescale of one frame of a multi-frame (Enhanced CT) instance.

    Taken from the per-frame functional groups, falling back to the shared ones
    (PS3.3 C.7.6.16).
    """

    image_position: tuple[float, float, float] | None
    image_orientation: tuple[float, float, float, float, float, float] | None
    pixel_spacing: tuple[float, float] | None
    slice_thickness: float | None
    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0


@dataclass(frozen=True, slots=True)
class PixelLayout:
    """Where and how a file stores native little-endian pixel data (PS3.5 8.1.1).

    Learned while indexing, so that loading the chosen series reads the pixel
    bytes directly instead of parsing every header a second time. Only set for
    uncompressed, greyscale data of 8, 16 or 32 bits; everything else is decoded
    through pydicom.
    """

    value_offset: int  # file offset of the first byte of the PixelData value
    value_length: int
    rows: int
    columns: int
    frames: int
    bits_allocated: int
    bits_stored: int
    signed: bool  # PixelRepresentation 1
    photometric_interpretation: str
    rescale_slope: float
    rescale_intercept: float
    padding_value: int | None = None
    padding_range_limit: int | None = None

    def __post_init__(self) -> None:
        if self.bits_allocated not in (8, 16, 32):
            raise ValueError("PixelLayout.bits_allocated must be 8, 16 or 32")
        if not 0 < self.bits_stored <= self.bits_allocated:
            raise ValueError("PixelLayout.bits_stored must be in 1..bits_allocated")
        if min(self.rows, self.columns, self.frames) < 1 or self.value_offset < 0:
            raise ValueError("PixelLayout rows, columns, frames and value_offset must be positive")
        if self.value_length < self.rows * self.columns * self.frames * self.bits_allocated // 8:
            raise ValueError("PixelLayout.value_length is shorter than the pixels it must hold")


@dataclass(frozen=True, slots=True)
class InstanceHeader:
    """The header facts of one DICOM instance that selection needs (no pixels).

    Geometry is in the DICOM patient coordinate system (LPS, mm).
    """

    path: Path
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    modality: str
    transfer_syntax_uid: str
    image_type: tuple[str, ...] = ()
    series_description: str = ""
    series_number: int | None = None
    instance_number: int | None = None
    acquisition_number: int | None = None
    body_part_examined: str = ""
    convolution_kernel: str = ""
    contrast_agent: str = ""
    kvp: float | None = None
    manufacturer: str = ""
    image_position: tuple[float, float, float] | None = None
    image_orientation: tuple[float, float, float, float, float, float] | None = None
    pixel_spacing: tuple[float, float] | None = None
    slice_thickness: float | None = None
    rows: int | None = None
    columns: int | None = None
    number_of_frames: int = 1
    gantry_tilt: float = 0.0
    frame_of_reference_uid: str = ""
    frames: tuple[FrameInfo, ...] = ()  # per-frame geometry; empty for single-frame
    # UIDs absent from the file (over-eager de-identification): the UID fields then hold a
    # stand-in starting with MISSING_UID_PREFIX so grouping still works; never written out.
    missing_uids: tuple[str, ...] = ()
    pixel_layout: PixelLayout | None = None  # None: decode through pydicom

    def __post_init__(self) -> None:
        for name in ("study_uid", "series_uid", "sop_instance_uid"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"InstanceHeader.{name} must be a non-empty string")
        if not isinstance(self.path, Path):
            raise TypeError("InstanceHeader.path must be a pathlib.Path")


@dataclass(frozen=True, slots=True)
class UnreadableFile:
    """A file in the input that is not a DICOM instance we can use, and why."""

    path: Path
    reason: str


@dataclass(frozen=True, slots=True)
class DicomIndex:
    """Everything found in an input, headers only."""

    instances: tuple[InstanceHeader, ...]
    unreadable: tuple[UnreadableFile, ...] = ()
    dicomdir_files: int = 0

    @property
    def study_uids(self) -> tuple[str, ...]:
        """Distinct StudyInstanceUIDs, sorted for determinism."""
        return tuple(sorted({i.study_uid for i in self.instances}))


class Verdict(enum.Enum):
    """Outcome of one selection rule for one series."""

    PASS = "pass"
    WARN = "warn"  # acceptable, but worth saying (e.g. a 5 mm series is thick)
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class RuleResult:
    """What one rule said about one series: a machine code and a sentence for people."""

    rule: str
    verdict: Verdict
    code: str
    reason: str

    def __post_init__(self) -> None:
        if not isinstance(self.verdict, Verdict):
            raise TypeError("RuleResult.verdict must be a Verdict")
        if not self.reason:
            raise ValueError("RuleResult.reason must say why")


@dataclass(frozen=True, slots=True)
class SeriesDecision:
    """One series (or one geometric sub-stack of it) and what selection decided."""

    series_uid: str
    description: str
    n_instances: int
    modality: str
    slice_thickness_mm: float | None
    coverage_mm: float | None
    convolution_kernel: str
    accepted: bool
    results: tuple[RuleResult, ...]
    rank: int | None = None  # 1 = chosen; None for rejected series
    series_number: int | None = None
    stack_id: str = ""  # distinguishes sub-stacks split from one series
    n_slices: int | None = None  # frames in the stack (differs from n_instances for Enhanced CT)

    @property
    def reasons(self) -> tuple[str, ...]:
        """The sentences of every failed or warned rule."""
        return tuple(r.reason for r in self.results if r.verdict is not Verdict.PASS)

    def to_json(self) -> dict[str, Any]:
        return {
            "series_uid": self.series_uid,
            "stack_id": self.stack_id,
            "series_number": self.series_number,
            "description": self.description,
            "modality": self.modality,
            "n_instances": self.n_instances,
            "n_slices": self.n_slices,
            "slice_thickness_mm": self.slice_thickness_mm,
            "coverage_mm": None if self.coverage_mm is None else round(self.coverage_mm, 1),
            "convolution_kernel": self.convolution_kernel,
            "accepted": self.accepted,
            "rank": self.rank,
            "reasons": list(self.reasons),
            "rules": [
                {"rule": r.rule, "verdict": r.verdict.value, "code": r.code, "reason": r.reason}
                for r in self.results
            ],
        }


@dataclass(frozen=True, slots=True)
class SelectionReport:
    """Which series was chosen and why every other one was not."""

    study_uid: str
    series: tuple[SeriesDecision, ...]
    chosen_series_uid: str | None
    chosen_stack_id: str = ""
    n_files: int = 0
    n_unreadable: int = 0
    unreadable_reasons: tuple[str, ...] = ()
    explanation: str = ""

    @property
    def chosen(self) -> SeriesDecision | None:
        for decision in self.series:
            if decision.rank == 1:
                return decision
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "study_uid": self.study_uid,
            "chosen_series_uid": self.chosen_series_uid,
            "explanation": self.explanation,
            "n_files": self.n_files,
            "n_unreadable": self.n_unreadable,
            "unreadable_reasons": list(self.unreadable_reasons),
            "series": [s.to_json() for s in self.series],
        }


@dataclass(frozen=True, slots=True)
class AcquisitionInfo:
    """Header facts about how the volume was acquired and reconstructed.

    Header values are hints only (often empty, vendor-specific or wrong): the
    analyzer measures contrast phase, kernel sharpness and field of view on the
    image and uses these to explain or break ties.
    """

    kvp: float | None = None
    convolution_kernel: str = ""
    contrast_agent: str = ""  # ContrastBolusAgent, "APPLIED" for Enhanced CT usage
    manufacturer: str = ""
    series_description: str = ""
    body_part_examined: str = ""


@dataclass(frozen=True, slots=True, eq=False)
class HUVolume:
    """A CT volume in Hounsfield units with its place in patient space.

    ``voxels`` is indexed ``[z, y, x]`` (slice, row, column) as SimpleITK's
    ``GetArrayFromImage`` returns it. ``direction`` is SimpleITK's row-major 3x3
    matrix whose columns are the x (column), y (row) and z (slice) axes in LPS;
    ``origin`` is the LPS position of voxel [0, 0, 0]; ``spacing`` is (x, y, z) mm
    in SimpleITK's order.
    """

    voxels: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]
    study_uid: str = ""
    series_uid: str = ""
    frame_of_reference_uid: str = ""
    slice_sop_instance_uids: tuple[str, ...] = ()
    source_paths: tuple[Path, ...] = ()
    sop_class_uid: str = ""
    slice_thickness_mm: float | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    slice_frame_numbers: tuple[int, ...] = ()  # 1-based frame per slice (multi-frame input)
    acquisition: AcquisitionInfo = field(default_factory=AcquisitionInfo)

    def __post_init__(self) -> None:
        if not isinstance(self.voxels, np.ndarray) or self.voxels.ndim != 3:
            raise TypeError("HUVolume.voxels must be a 3-D numpy array [z, y, x]")
        if len(self.spacing) != 3 or min(self.spacing) <= 0:
            raise ValueError("HUVolume.spacing must be three positive numbers (x, y, z) mm")
        if len(self.direction) != 9:
            raise ValueError("HUVolume.direction must have 9 values (row-major 3x3)")
        if self.slice_sop_instance_uids and len(self.slice_sop_instance_uids) != self.shape[0]:
            raise ValueError("HUVolume.slice_sop_instance_uids must name one UID per slice")

    @property
    def shape(self) -> tuple[int, int, int]:
        z, y, x = self.voxels.shape
        return int(z), int(y), int(x)

    @property
    def voxel_volume_ml(self) -> float:
        sx, sy, sz = self.spacing
        return sx * sy * sz / 1000.0

    def index_to_lps(self, z: float, y: float, x: float) -> tuple[float, float, float]:
        """LPS position (mm) of a continuous voxel index ``[z, y, x]``."""
        d = np.asarray(self.direction, dtype=float).reshape(3, 3)
        ijk = np.array([x, y, z], dtype=float) * np.asarray(self.spacing, dtype=float)
        p = np.asarray(self.origin, dtype=float) + d @ ijk
        return float(p[0]), float(p[1]), float(p[2])

"""Group indexed instances into studies, series and geometric stacks.

A series is the unit a PACS shows, but not always one volume: vendors put
several orientations (a localizer and its axial stack) or repeated acquisitions
of the same range in one series. Those are split into stacks so that each
stack is one candidate volume with its own decision. Enhanced CT instances are
expanded into one slice per frame.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from series_selector.errors import MultipleStudiesError, NoDicomError
from series_selector.types import DicomIndex, InstanceHeader, is_stand_in_uid

logger = logging.getLogger(__name__)

_ORIENTATION_DECIMALS = 2  # direction cosines equal to 0.01 (about 0.6 degrees) = same plane
_SAME_POSITION_MM = 0.01


@dataclass(frozen=True, slots=True)
class Slice:
    """One 2-D image: a single-frame instance or one frame of a multi-frame one."""

    header: InstanceHeader
    frame_index: int | None  # 0-based frame of a multi-frame instance, else None
    position: tuple[float, float, float] | None
    orientation: tuple[float, float, float, float, float, float] | None
    pixel_spacing: tuple[float, float] | None
    thickness: float | None
    rescale_slope: float | None = None  # None: take it from the file when decoding
    rescale_intercept: float | None = None

    @property
    def frame_number(self) -> int | None:
        """1-based frame number as DICOM counts frames (for references)."""
        return None if self.frame_index is None else self.frame_index + 1


@dataclass(frozen=True, slots=True)
class Stack:
    """The slices of one series that form one candidate volume."""

    study_uid: str
    series_uid: str
    stack_id: str
    slices: tuple[Slice, ...]
    duplicates_dropped: int = 0

    @property
    def first(self) -> InstanceHeader:
        return self.slices[0].header

    @property
    def n_instances(self) -> int:
        return len({s.header.sop_instance_uid for s in self.slices})


def ensure_single_study(index: DicomIndex) -> str:
    """The one StudyInstanceUID of the index, or the error a door reports."""
    if not index.instances:
        reasons = sorted({u.reason.split(":")[0] for u in index.unreadable})
        detail = f" ({len(index.unreadable)} unreadable files: {', '.join(reasons)})" if (
            index.unreadable) else ""
        raise NoDicomError(f"No readable DICOM instance found in the input{detail}.")
    studies = index.study_uids
    if len(studies) > 1:
        names = [u if not is_stand_in_uid(u) else "files without StudyInstanceUID"
                 for u in studies]
        raise MultipleStudiesError(
            f"The input holds {len(studies)} studies ({', '.join(names)}); "
            "send one study at a time."
        )
    return studies[0]


def group_stacks(index: DicomIndex) -> list[Stack]:
    """Every stack of every series, in a deterministic order."""
    by_series: dict[tuple[str, str], list[InstanceHeader]] = defaultdict(list)
    for header in index.instances:
        by_series[(header.study_uid, header.series_uid)].append(header)
    stacks: list[Stack] = []
    for (study_uid, series_uid), headers in sorted(by_series.items()):
        stacks.extend(_split_series(study_uid, series_uid, headers))
    return stacks


def _expand(header: InstanceHeader) -> list[Slice]:
    if header.frames:
        return [
            Slice(header, i, f.image_position or header.image_position,
                  f.image_orientation or header.image_orientation,
                  f.pixel_spacing or header.pixel_spacing,
                  f.slice_thickness if f.slice_thickness is not None else header.slice_thickness,
                  f.rescale_slope, f.rescale_intercept)
            for i, f in enumerate(header.frames)
        ]
    frame_index = 0 if header.number_of_frames > 1 else None
    return [Slice(header, frame_index, header.image_position, header.image_orientation,
                  header.pixel_spacing, header.slice_thickness)]


def _orientation_key(s: Slice) -> tuple[float, ...] | None:
    if s.orientation is None:
        return None
    return tuple(round(v, _ORIENTATION_DECIMALS) + 0.0 for v in s.orientation)


def _split_series(study_uid: str, series_uid: str, headers: list[InstanceHeader]) -> list[Stack]:
    seen: set[tuple[str, int | None]] = set()
    slices: list[Slice] = []
    dropped = 0
    for header in sorted(headers, key=lambda h: (h.instance_number or 0, str(h.path))):
        for s in _expand(header):
            key = (header.sop_instance_uid, s.frame_index)
            if key in seen:
                dropped += 1  # the same instance sent twice (a copy of a file)
                continue
            seen.add(key)
            slices.append(s)
    groups: dict[tuple[str, tuple[float, ...] | None], list[Slice]] = defaultdict(list)
    for s in slices:
        groups[(s.header.sop_class_uid, _orientation_key(s))].append(s)
    parts: list[list[Slice]] = []
    for group_key in sorted(groups, key=repr):
        parts.extend(_split_overlapping_acquisitions(groups[group_key]))
    parts.sort(key=lambda p: (min(s.header.instance_number or 0 for s in p),
                              str(p[0].header.path)))
    if len(parts) > 1:
        logger.info("series %s split into %d stacks", series_uid, len(parts))
    return [
        Stack(study_uid, series_uid, "" if len(parts) == 1 else f"stack{i + 1}", tuple(part),
              dropped if i == 0 else 0)
        for i, part in enumerate(parts)
    ]


def _split_overlapping_acquisitions(slices: list[Slice]) -> list[list[Slice]]:
    """Split by AcquisitionNumber only when acquisitions repeat the same positions.

    Some scanners number every rotation of a sequential scan as its own
    acquisition; those slices still form one volume and must stay together.
    """
    acquisitions: dict[int | None, list[Slice]] = defaultdict(list)
    for s in slices:
        acquisitions[s.header.acquisition_number].append(s)
    if len(acquisitions) < 2 or not _has_repeated_positions(slices):
        return [slices]
    return [acquisitions[k] for k in sorted(acquisitions, key=lambda a: (a is None, a or 0))]


def _has_repeated_positions(slices: list[Slice]) -> bool:
    if any(s.position is None or s.orientation is None for s in slices):
        return False
    normal = slice_normal(slices[0].orientation)  # type: ignore[arg-type]
    d = np.sort(np.array([np.dot(normal, s.position) for s in slices]))  # type: ignore[arg-type]
    return bool(np.any(np.diff(d) < _SAME_POSITION_MM))


def slice_normal(orientation: tuple[float, ...]) -> np.ndarray:
    """Unit normal of the image plane: row direction x column direction (PS3.3 C.7.6.2.1.1)."""
    row = np.asarray(orientation[:3], dtype=float)
    col = np.asarray(orientation[3:6], dtype=float)
    n = np.cross(row, col)
    norm = np.linalg.norm(n)
    if norm == 0:
        raise ValueError("ImageOrientationPatient has parallel row and column vectors")
    return n / norm

"""Geometry of a stack from its headers: order, steps, gaps, coverage, tilt.

Slices are ordered by their position projected on the slice normal, never by
InstanceNumber (PS3.3 C.7.6.2.1.1: the position and orientation define where an
image lies; numbers are only labels and vendors reverse or restart them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from series_selector.grouping import Slice, Stack, slice_normal

_PATIENT_Z = np.array([0.0, 0.0, 1.0])
_SAME_POSITION_MM = 0.01


@dataclass(frozen=True, slots=True)
class Gap:
    """A missing stretch between two neighbouring slices."""

    before: Slice
    after: Slice
    z_before: float
    z_after: float
    missing: int  # estimated number of absent slices


@dataclass(frozen=True, slots=True)
class StackGeometry:
    """Everything the geometric rules and the volume builder need."""

    order: tuple[int, ...]  # indices into stack.slices, sorted along the normal
    normal: np.ndarray
    distances: np.ndarray  # position along the normal (mm), sorted ascending
    median_step: float | None
    coverage_mm: float
    axial_angle_deg: float  # angle between slice normal and patient head-feet axis
    tilt_deg: float  # angle between the stacking direction and the slice normal
    gaps: tuple[Gap, ...]
    irregular_steps: int
    duplicate_positions: int
    consistent: bool
    inconsistency: str

    def sorted_slices(self, stack: Stack) -> list[Slice]:
        return [stack.slices[i] for i in self.order]


def has_geometry(stack: Stack) -> bool:
    return all(s.position is not None and s.orientation is not None for s in stack.slices)


def stack_geometry(stack: Stack, gap_factor: float, tolerance: float) -> StackGeometry | None:
    """The stack's geometry, or None when some slice lacks position/orientation."""
    if not has_geometry(stack):
        return None
    slices = stack.slices
    normal = slice_normal(slices[0].orientation)  # type: ignore[arg-type]
    raw = np.array([float(np.dot(normal, s.position)) for s in slices])  # type: ignore[arg-type]
    order = np.lexsort((np.arange(len(slices)), raw))
    distances = raw[order]
    steps = np.diff(distances)
    duplicates = int(np.sum(steps < _SAME_POSITION_MM))
    real_steps = steps[steps >= _SAME_POSITION_MM]
    median = float(np.median(real_steps)) if real_steps.size else None
    gaps: list[Gap] = []
    irregular = 0
    if median is not None:
        for i, step in enumerate(steps):
            if step < _SAME_POSITION_MM:
                continue
            if step > gap_factor * median:
                a, b = slices[order[i]], slices[order[i + 1]]
                gaps.append(Gap(a, b, float(distances[i]), float(distances[i + 1]),
                                max(1, int(round(step / median)) - 1)))
            elif abs(step - median) > tolerance * median:
                irregular += 1
    coverage = float(distances[-1] - distances[0]) if len(distances) > 1 else 0.0
    axial = math.degrees(math.acos(min(1.0, abs(float(np.dot(normal, _PATIENT_Z))))))
    tilt = _tilt_deg(slices, order, normal)
    consistent, why = _consistency(slices)
    return StackGeometry(tuple(int(i) for i in order), normal, distances, median, coverage,
                         axial, tilt, tuple(gaps), irregular, duplicates, consistent, why)


def _tilt_deg(slices: tuple[Slice, ...], order: np.ndarray, normal: np.ndarray) -> float:
    """Angle between the line through the slice origins and the normal (gantry tilt).

    With a tilted gantry, vendors keep axial orientation cosines but shift each
    slice's origin along the column direction, so the stack is sheared.
    """
    if len(slices) < 2:
        return 0.0
    first = np.asarray(slices[order[0]].position, dtype=float)
    last = np.asarray(slices[order[-1]].position, dtype=float)
    v = last - first
    norm = np.linalg.norm(v)
    if norm < _SAME_POSITION_MM:
        return 0.0
    return math.degrees(math.acos(min(1.0, abs(float(np.dot(v / norm, normal))))))


def _consistency(slices: tuple[Slice, ...]) -> tuple[bool, str]:
    """Whether every slice has the same matrix, pixel spacing and orientation."""
    if _all_alike(slices):  # the usual case, checked for the whole stack at once
        return True, ""
    first = slices[0]
    for s in slices[1:]:
        if (s.header.rows, s.header.columns) != (first.header.rows, first.header.columns):
            return False, (f"image size varies ({first.header.rows}x{first.header.columns} vs "
                           f"{s.header.rows}x{s.header.columns})")
        if s.pixel_spacing is None or first.pixel_spacing is None:
            if s.pixel_spacing != first.pixel_spacing:
                return False, "pixel spacing missing on some slices"
        elif not np.allclose(s.pixel_spacing, first.pixel_spacing, atol=1e-3):
            return False, (f"pixel spacing varies ({first.pixel_spacing[0]:.3f} vs "
                           f"{s.pixel_spacing[0]:.3f} mm)")
        if not np.allclose(s.orientation, first.orientation, atol=1e-3):  # type: ignore[arg-type]
            return False, "image orientation varies between slices"
    return True, ""


def _all_alike(slices: tuple[Slice, ...]) -> bool:
    """``_consistency``'s test, vectorised: the same tolerance as ``np.allclose(atol=1e-3)``.

    False also when a value is missing or not finite: the slice-by-slice loop
    then finds the first difference and says what it is.
    """
    first = slices[0]
    if first.pixel_spacing is None or first.orientation is None:
        return False
    if any(s.pixel_spacing is None or s.orientation is None for s in slices):
        return False
    if len({(s.header.rows, s.header.columns) for s in slices}) != 1:
        return False

    def close(values: list[tuple[float, ...]], ref: tuple[float, ...]) -> bool:
        a, b = np.asarray(values, dtype=float), np.asarray(ref, dtype=float)
        return bool(np.all(np.abs(a - b) <= 1e-3 + 1e-5 * np.abs(b)))

    return (close([s.pixel_spacing for s in slices], first.pixel_spacing)  # type: ignore[misc]
            and close([s.orientation for s in slices], first.orientation))  # type: ignore[misc]


def in_plane_offsets(slices: list[Slice], normal: np.ndarray) -> np.ndarray:
    """Per-slice in-plane shift (rows, cols, in pixels) of each origin relative to the first.

    Non-zero for a gantry-tilted stack; shifting each slice back by it yields an
    orthogonal grid (shear correction).
    """
    o = slices[0].orientation
    row_dir = np.asarray(o[:3], dtype=float)  # type: ignore[index]
    col_dir = np.asarray(o[3:6], dtype=float)  # type: ignore[index]
    sy, sx = slices[0].pixel_spacing or (1.0, 1.0)  # PixelSpacing is (row step, column step)
    p0 = np.asarray(slices[0].position, dtype=float)
    out = np.zeros((len(slices), 2))
    for k, s in enumerate(slices):
        d = np.asarray(s.position, dtype=float) - p0
        in_plane = d - float(np.dot(d, normal)) * normal
        out[k, 0] = float(np.dot(in_plane, col_dir)) / sy  # along columns = down the rows
        out[k, 1] = float(np.dot(in_plane, row_dir)) / sx
    return out

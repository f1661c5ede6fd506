"""Build the HU volume of the chosen series: pixels are decoded only here.

Slices are ordered along the slice normal (PS3.3 C.7.6.2.1.1), not by
InstanceNumber; spacing along z comes from the positions, not from
SliceThickness or SpacingBetweenSlices (which vendors fill inconsistently).
A gantry-tilted stack is shear-corrected by shifting each slice in-plane; an
irregularly spaced one is interpolated onto its median step.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage

from series_selector.errors import VolumeError
from series_selector.geometry import StackGeometry, in_plane_offsets, stack_geometry
from series_selector.grouping import Slice, group_stacks
from series_selector.pixels import AIR_HU, iter_decoded
from series_selector.rules import StackFacts
from series_selector.types import (
    AcquisitionInfo,
    DicomIndex,
    HUVolume,
    SelectionReport,
    is_stand_in_uid,
)

logger = logging.getLogger(__name__)

_GAP_FACTOR = 1.5  # only the order and steps are used here; gaps were judged at selection
_OFF_GRID = 0.1  # a slice further than this fraction of a step from a uniform grid: regrid
_TILT_DEG = 0.5
_THICK_FOR_NODULES_MM = 2.5


def load_volume(index: DicomIndex, report: SelectionReport) -> HUVolume:
    """The chosen series of ``report`` as an HU volume in LPS.

    Raises ``VolumeError`` when nothing was chosen, the chosen stack is not in
    the index, or its pixels cannot be decoded.
    """
    if report.chosen_series_uid is None:
        raise VolumeError(f"No series was chosen. {report.explanation}")
    facts = _find(index, report.chosen_series_uid, report.chosen_stack_id)
    g = facts.geometry
    if g is None:
        raise VolumeError("The chosen series lacks image position or orientation.")
    slices = g.sorted_slices(facts.stack)
    hu, padded, clipped = _decode_all(slices)
    notes: list[str] = []
    if g.tilt_deg >= _TILT_DEG:
        hu = _shear_correct(hu, slices, g)
        notes.append(f"gantry tilt {g.tilt_deg:.1f} deg corrected by in-plane shift")
    n = len(slices)
    # the step that best fits all positions: averages the rounding of ImagePositionPatient
    step = (float(g.distances[-1] - g.distances[0]) / (n - 1) if n > 1 and g.coverage_mm > 0
            else float(facts.thickness_mm or 1.0))
    z_index = np.arange(n, dtype=float)
    grid = g.distances[0] + step * z_index
    if n > 1 and np.max(np.abs(g.distances - grid)) > _OFF_GRID * step:
        step = g.median_step or step
        hu, z_index = _regrid_z(hu, g.distances, step)
        notes.append(f"irregular slice positions interpolated onto a {step:.2f} mm grid")
    if padded:
        notes.append(f"{padded} padding pixels (outside the patient) set to air")
    if clipped:
        notes.append(f"{clipped} pixels below -1024 HU (outside the reconstruction field) "
                     "set to -1024 HU")
    thickness = facts.thickness_mm
    if thickness is not None and thickness > _THICK_FOR_NODULES_MM:
        notes.append(f"{thickness:g} mm slices: thick for nodule detection")
    missing = sorted({m for sl in slices for m in sl.header.missing_uids})
    if missing:
        notes.append(f"source files lack {', '.join(missing)}: results cannot reference them")
    if facts.stack.duplicates_dropped:
        notes.append(f"{facts.stack.duplicates_dropped} duplicate instances ignored")
    voxels = hu
    nearest = [slices[int(round(z))] for z in z_index]
    first = slices[0]
    row_dir, col_dir = _orthonormal(first.orientation)  # type: ignore[arg-type]
    normal = g.normal
    direction = tuple(float(v) for v in np.column_stack([row_dir, col_dir, normal]).ravel())
    ps = first.pixel_spacing or (1.0, 1.0)
    voxels, origin, direction, nearest = _canonical_flips(
        voxels, (float(ps[1]), float(ps[0]), float(step)),
        _position(first), direction, nearest)
    frame_numbers = tuple(s.frame_number or 0 for s in nearest) if any(
        s.frame_number for s in nearest) else ()
    volume = HUVolume(
        voxels=voxels,
        spacing=(float(ps[1]), float(ps[0]), float(step)),
        origin=origin,
        direction=direction,
        study_uid=_real(facts.stack.study_uid),
        series_uid=_real(facts.stack.series_uid),
        frame_of_reference_uid=first.header.frame_of_reference_uid,
        slice_sop_instance_uids=tuple(_real(s.header.sop_instance_uid) for s in nearest),
        source_paths=tuple(s.header.path for s in nearest),
        sop_class_uid=first.header.sop_class_uid,
        slice_thickness_mm=thickness,
        notes=tuple(notes),
        slice_frame_numbers=frame_numbers,
        acquisition=AcquisitionInfo(
            kvp=first.header.kvp,
            convolution_kernel=first.header.convolution_kernel,
            contrast_agent=first.header.contrast_agent,
            manufacturer=first.header.manufacturer,
            series_description=first.header.series_description,
            body_part_examined=first.header.body_part_examined,
        ),
    )
    logger.info("volume of series %s: %s voxels, spacing %s mm", volume.series_uid,
                volume.shape, tuple(round(v, 3) for v in volume.spacing))
    return volume


def _position(s: Slice) -> tuple[float, float, float]:
    if s.position is None:
        raise VolumeError("A slice of the chosen series has no ImagePositionPatient.")
    x, y, z = s.position
    return float(x), float(y), float(z)


def _real(uid: str) -> str:
    """A UID the file really had, or '' for the reader's stand-in."""
    return "" if is_stand_in_uid(uid) else uid


def _find(index: DicomIndex, series_uid: str, stack_id: str) -> StackFacts:
    # Stacks are split within a series, so grouping the chosen series alone gives its stacks.
    chosen = DicomIndex(tuple(h for h in index.instances if h.series_uid == series_uid))
    for stack in group_stacks(chosen):
        if stack.series_uid == series_uid and stack.stack_id == stack_id:
            return StackFacts(stack, stack_geometry(stack, _GAP_FACTOR, 0.1))
    raise VolumeError(f"Series {series_uid} {stack_id} is not in the index.")


def _orthonormal(orientation: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Row and column directions made exactly orthonormal (headers round to ~6 digits)."""
    row = np.asarray(orientation[:3], dtype=float)
    row /= np.linalg.norm(row)
    col = np.asarray(orientation[3:6], dtype=float)
    col -= np.dot(col, row) * row
    col /= np.linalg.norm(col)
    return row, col


def _shear_correct(hu: np.ndarray, slices: list[Slice], g: StackGeometry) -> np.ndarray:
    """Shift every slice so that all slice origins lie on the normal through the first."""
    offsets = in_plane_offsets(slices, g.normal)
    out = np.empty(hu.shape, dtype=np.float32)  # interpolated HU are not whole numbers
    for k in range(hu.shape[0]):
        dy, dx = offsets[k]
        # content at pixel (r, c) of slice k sits at (r + dy, c + dx) in the grid of slice 0
        out[k] = ndimage.shift(hu[k].astype(np.float32), (dy, dx), order=1, mode="constant",
                               cval=AIR_HU)
    return out


def _regrid_z(hu: np.ndarray, distances: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation along z onto a uniform grid; also the source index of each slice."""
    n = int(round((distances[-1] - distances[0]) / step)) + 1
    targets = distances[0] + step * np.arange(n)
    src = np.interp(targets, distances, np.arange(len(distances), dtype=float))
    lo = np.clip(np.floor(src).astype(int), 0, len(distances) - 1)
    hi = np.clip(lo + 1, 0, len(distances) - 1)
    w = (src - lo).astype(np.float32)[:, None, None]
    out = hu[lo] * (1 - w) + hu[hi] * w
    return out.astype(np.float32), src


def _canonical_flips(
    voxels: np.ndarray, spacing: tuple[float, float, float], origin: tuple[float, float, float],
    direction: tuple[float, ...], per_slice: list[Slice],
) -> tuple[np.ndarray, tuple[float, float, float], tuple[float, ...], list[Slice]]:
    """Flip axes that run against L, P or S, so every volume has the same handedness.

    Only exact flips (no interpolation): an axis whose dominant LPS component is
    its own axis and negative is reversed, e.g. a series stored right-to-left.
    """
    d = np.asarray(direction, dtype=float).reshape(3, 3).copy()
    o = np.asarray(origin, dtype=float)
    n = voxels.shape[::-1]  # x, y, z sizes
    array_axis = {0: 2, 1: 1, 2: 0}  # direction column -> numpy axis of [z, y, x]
    for j in range(3):
        col = d[:, j]
        if int(np.argmax(np.abs(col))) == j and col[j] < 0:
            o = o + col * spacing[j] * (n[j] - 1)
            d[:, j] = -col
            voxels = np.flip(voxels, axis=array_axis[j])
            if j == 2:
                per_slice = per_slice[::-1]
    return (np.ascontiguousarray(voxels), (float(o[0]), float(o[1]), float(o[2])),
            tuple(float(v) for v in d.ravel()), per_slice)


def _decode_all(slices: list[Slice]) -> tuple[np.ndarray, int, int]:
    """Decode every slice into one array: int16 while HU are whole numbers in range.

    HU are whole when RescaleSlope and RescaleIntercept are integers (the usual
    1 and -1024); otherwise the array switches to float32, never truncating.
    """
    out: np.ndarray | None = None
    padded = clipped = 0
    for k, d in enumerate(iter_decoded(slices)):
        if out is None:
            out = np.empty((len(slices), *d.hu.shape), dtype=np.int16)
        if d.hu.shape != out.shape[1:]:
            raise VolumeError(f"The chosen series mixes image sizes {out.shape[1:]} and "
                              f"{d.hu.shape}.")
        if out.dtype == np.int16 and not (d.integral and d.hu.max(initial=0) <= 32767):
            out = out.astype(np.float32)
        out[k] = d.hu
        padded += d.padded_pixels
        clipped += d.clipped_pixels
    if out is None:
        raise VolumeError("The chosen series has no slices.")
    return out, padded, clipped

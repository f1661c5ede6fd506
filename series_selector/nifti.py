"""NIfTI input: a volume in RAS voxel space turned into the LPS HUVolume.

NIfTI's affine maps voxel (i, j, k) to RAS+ millimetres; DICOM and SimpleITK
use LPS+. The data are reoriented so the voxel axes run towards patient left,
posterior and superior (direction close to identity, as a DICOM axial series
sorted along its normal), then stored [z, y, x].
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel import orientations

from series_selector.budget import check_budget
from series_selector.errors import VolumeError
from series_selector.types import HUVolume

logger = logging.getLogger(__name__)

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
# LPS voxel axes expressed in RAS axis codes: +x towards L, +y towards P, +z towards S.
_TARGET_AXCODES = ("L", "P", "S")


def load_nifti(path: Path, max_bytes: int | None = None) -> HUVolume:
    """Read ``.nii`` / ``.nii.gz`` as an HU volume; raises ``VolumeError`` if unusable.

    The header's dimensions are checked before any voxel is read: a volume
    whose analysis would exceed ``max_bytes`` raises ``StudyTooLargeError``
    (a gzip stream is then never inflated; otherwise nibabel reads exactly
    the bytes the header declares, so the stream is bounded by them too).
    """
    try:
        image: Any = nib.load(str(path))  # Nifti1Image / Nifti2Image; reads the header only
        shape = tuple(int(n) for n in image.shape)
    except Exception as exc:
        raise VolumeError(f"Cannot read NIfTI file {Path(path).name}: {exc}") from exc
    if len(shape) not in (3, 4) or (len(shape) == 4 and shape[3] != 1) or min(shape) < 1:
        raise VolumeError(f"NIfTI volume must be 3-D, got shape {shape}")
    if max_bytes is not None:
        check_budget(int(np.prod(shape, dtype=np.int64)), max_bytes, nifti=True)
    try:
        data = np.asanyarray(image.dataobj)
    except Exception as exc:
        raise VolumeError(f"Cannot read NIfTI file {Path(path).name}: {exc}") from exc
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise VolumeError(f"NIfTI volume must be 3-D, got shape {data.shape}")
    affine = image.affine
    if affine is None or not np.all(np.isfinite(affine)) or (
            abs(np.linalg.det(affine[:3, :3])) < 1e-9):
        raise VolumeError("NIfTI file has no usable orientation (affine)")
    current = orientations.io_orientation(affine)
    if np.isnan(current).any():  # an axis maps to no direction (found by fuzzing)
        raise VolumeError("NIfTI file has no usable orientation (an axis of its affine is "
                          "degenerate)")
    target = orientations.axcodes2ornt(_TARGET_AXCODES)
    transform = orientations.ornt_transform(current, target)
    data = orientations.apply_orientation(data, transform)
    affine = affine @ orientations.inv_ornt_aff(transform, image.shape[:3])
    lps = _RAS_TO_LPS @ affine
    axes = lps[:3, :3]
    spacing = np.linalg.norm(axes, axis=0)
    direction = axes / spacing
    voxels = np.ascontiguousarray(np.transpose(data, (2, 1, 0)))
    voxels = _as_hu_dtype(voxels)
    volume = HUVolume(
        voxels=voxels,
        spacing=(float(spacing[0]), float(spacing[1]), float(spacing[2])),
        origin=(float(lps[0, 3]), float(lps[1, 3]), float(lps[2, 3])),
        direction=tuple(float(v) for v in direction.ravel()),
        source_paths=(Path(path),),
        slice_thickness_mm=float(spacing[2]),
        notes=("NIfTI input: no DICOM identifiers",),
    )
    # no file name in the log: exported names often carry the patient's name
    logger.info("NIfTI volume: %s voxels, spacing %s mm", volume.shape,
                tuple(round(v, 3) for v in volume.spacing))
    return volume


def _as_hu_dtype(voxels: np.ndarray) -> np.ndarray:
    """int16 when the values are whole HU in range, else float32."""
    if np.issubdtype(voxels.dtype, np.integer) and voxels.size and (
            voxels.min() >= -32768 and voxels.max() <= 32767):
        return voxels.astype(np.int16)
    as_float = voxels.astype(np.float32)
    if as_float.size and np.array_equal(as_float, np.round(as_float)) and (
            as_float.min() >= -32768 and as_float.max() <= 32767):
        return as_float.astype(np.int16)
    return as_float

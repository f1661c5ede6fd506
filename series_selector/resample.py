"""Canonical resampling for models: one place that knows SimpleITK's conventions.

Models are trained at a fixed voxel size (e.g. 1.5 mm isotropic, or CT-RATE's
0.75 x 0.75 x 1.5 mm); they call ``resample_to`` instead of resampling on their
own so that geometry (origin, direction) is kept exactly.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import SimpleITK as sitk

from series_selector.types import HUVolume

logger = logging.getLogger(__name__)

_INTERPOLATORS = {
    "linear": sitk.sitkLinear,
    "nearest": sitk.sitkNearestNeighbor,
    "bspline": sitk.sitkBSpline,
}


def to_sitk(volume: HUVolume) -> sitk.Image:
    """The volume as a SimpleITK image with spacing, origin and direction set."""
    image = sitk.GetImageFromArray(volume.voxels)
    image.SetSpacing(tuple(float(v) for v in volume.spacing))
    image.SetOrigin(tuple(float(v) for v in volume.origin))
    image.SetDirection(tuple(float(v) for v in volume.direction))
    return image


def resample_to(
    volume: HUVolume,
    spacing_mm: tuple[float, float, float] = (1.5, 1.5, 1.5),
    interpolator: str = "linear",
    default_hu: float = -1024.0,
    dtype: type = np.float32,
) -> HUVolume:
    """Resample onto ``spacing_mm`` (x, y, z) over the same physical extent.

    The origin and direction are kept; the grid covers the original field
    (size rounded to whole voxels). Per-slice references are dropped when the
    z-grid changes because a new slice no longer maps to one source instance.
    """
    if interpolator not in _INTERPOLATORS:
        raise ValueError(f"interpolator must be one of {sorted(_INTERPOLATORS)}")
    if len(spacing_mm) != 3 or min(spacing_mm) <= 0:
        raise ValueError("spacing_mm must be three positive numbers (x, y, z)")
    image = to_sitk(volume)
    old_size = np.array(image.GetSize(), dtype=float)  # x, y, z
    old_spacing = np.array(volume.spacing, dtype=float)
    new_spacing = np.array(spacing_mm, dtype=float)
    new_size = np.maximum(1, np.round((old_size - 1) * old_spacing / new_spacing) + 1).astype(int)
    out = sitk.Resample(
        sitk.Cast(image, sitk.sitkFloat32),
        [int(v) for v in new_size],
        sitk.Transform(),
        _INTERPOLATORS[interpolator],
        image.GetOrigin(),
        tuple(float(v) for v in new_spacing),
        image.GetDirection(),
        float(default_hu),
        sitk.sitkFloat32,
    )
    voxels = sitk.GetArrayFromImage(out)
    if np.issubdtype(dtype, np.integer):
        voxels = np.round(voxels)
    voxels = voxels.astype(dtype)
    same_z = new_size[2] == old_size[2] and np.isclose(new_spacing[2], old_spacing[2])
    return dataclasses.replace(
        volume,
        voxels=voxels,
        spacing=tuple(float(v) for v in new_spacing),  # type: ignore[arg-type]
        slice_sop_instance_uids=volume.slice_sop_instance_uids if same_z else (),
        source_paths=volume.source_paths,
        slice_frame_numbers=volume.slice_frame_numbers if same_z else (),
        notes=volume.notes + (f"resampled to {tuple(round(v, 3) for v in new_spacing)} mm",),
    )

"""Evidence from a work-grid component: key slice, LPS centre, volume, full-size mask."""

from __future__ import annotations

import numpy as np

from inference.analyzer.grid import full_bbox, upsample_mask
from inference.analyzer.morphology import crop_box
from inference.analyzer.types import WorkGrid
from inference.types import Evidence


def component_evidence(grid: WorkGrid, component: np.ndarray, description: str,
                       diameter_mm: float | None = None, with_mask: bool = True) -> Evidence:
    """Evidence for one component of the working grid.

    The key slice is the full-resolution slice through the component's largest
    cross-section (what a radiologist would scroll to); the centre is the
    centroid in LPS; the mask is the component at full resolution over its box.
    """
    box = crop_box(component)
    if box is None:
        raise ValueError("component_evidence needs a non-empty component")
    sub = component[box]
    zs, ys, xs = np.nonzero(sub)
    cz = zs.mean() + box[0].start
    cy = ys.mean() + box[1].start
    cx = xs.mean() + box[2].start
    areas = sub.sum(axis=(1, 2))
    key_work = int(np.argmax(areas)) + box[0].start
    fz = grid.factors[0]
    key_full = min(grid.source.shape[0] - 1, key_work * fz + (fz - 1) // 2)
    wb = (box[0].start, box[1].start, box[2].start, box[0].stop, box[1].stop, box[2].stop)
    bbox = None
    mask = None
    if with_mask:
        fb = full_bbox(wb, grid)
        bbox = (int(fb[0]), int(fb[1]), int(fb[2]), int(fb[3]), int(fb[4]), int(fb[5]))
        full = _upsample_crop(sub, grid, bbox)
        mask = full
    return Evidence(
        description=description,
        slice_index=int(key_full),
        center_lps=grid.to_lps(cz, cy, cx),
        volume_ml=float(sub.sum()) * grid.voxel_ml,
        diameter_mm=diameter_mm,
        bbox=bbox,
        mask=mask,
    )


def _upsample_crop(sub: np.ndarray, grid: WorkGrid, bbox: tuple[int, ...]) -> np.ndarray:
    """The cropped work mask at full resolution, cut to the full-resolution box."""
    fz, fy, fx = grid.factors
    full = np.repeat(np.repeat(np.repeat(sub, fz, axis=0), fy, axis=1), fx, axis=2)
    z0, y0, x0, z1, y1, x1 = bbox
    return np.ascontiguousarray(full[: z1 - z0, : y1 - y0, : x1 - x0]).astype(bool)


__all__ = ["component_evidence", "upsample_mask"]

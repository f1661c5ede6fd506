"""The working grid: block-averaged copy of the volume, and the way back to full size."""

from __future__ import annotations

import logging

import numpy as np

from inference.analyzer.types import WorkGrid
from series_selector.types import HUVolume

logger = logging.getLogger(__name__)


def block_factors(volume: HUVolume, in_plane_mm: float, slice_mm: float) -> tuple[int, int, int]:
    """Integer block sizes (z, y, x) that bring the spacing near the targets, never below 1."""
    sx, sy, sz = volume.spacing
    return (
        max(1, int(round(slice_mm / sz))),
        max(1, int(round(in_plane_mm / sy))),
        max(1, int(round(in_plane_mm / sx))),
    )


def make_work_grid(volume: HUVolume, in_plane_mm: float, slice_mm: float) -> WorkGrid:
    """Block-average the volume to about ``in_plane_mm`` x ``slice_mm`` voxels."""
    factors = block_factors(volume, in_plane_mm, slice_mm)
    out = block_mean(volume, factors)
    logger.debug("work grid %s from %s (factors %s)", out.shape, volume.shape, factors)
    return WorkGrid(hu=out, factors=factors, source=volume)


def block_mean(volume: HUVolume, factors: tuple[int, int, int]) -> np.ndarray:
    """The mean of each (fz, fy, fx) block, slab by slab to keep peak memory near the
    input's size; a partial last block repeats its edge voxels."""
    fz, fy, fx = factors
    nz, ny, nx = volume.shape
    oz, oy, ox = -(-nz // fz), -(-ny // fy), -(-nx // fx)
    out = np.empty((oz, oy, ox), dtype=np.float32)
    if _exact_in_float32(volume.voxels.dtype, fz * fy * fx):
        _integer_block_mean(volume.voxels, factors, out)
        return out
    for k in range(oz):
        slab = volume.voxels[k * fz:(k + 1) * fz].astype(np.float32)
        slab = _pad_to(slab, (fz, oy * fy, ox * fx))
        out[k] = slab.reshape(fz, oy, fy, ox, fx).mean(axis=(0, 2, 4))
    return out


def _exact_in_float32(dtype: np.dtype, count: int) -> bool:
    """Whether every sum of ``count`` voxels of this (integer) type is a float32 integer:
    16-bit or narrower, and at most 2**24 in magnitude."""
    if not np.issubdtype(dtype, np.integer) or dtype.itemsize > 2:
        return False
    info = np.iinfo(dtype)
    return max(-int(info.min), int(info.max)) * count <= 2 ** 24


def _integer_block_mean(voxels: np.ndarray, factors: tuple[int, int, int],
                        out: np.ndarray) -> None:
    """``block_mean`` of 16-bit integer voxels, from exact integer block sums.

    The same values: summed in float32 the integers stay exact (no block sum exceeds
    2**24, ``_exact_in_float32``), and numpy's mean divides that sum by the block's voxel
    count in float64 before rounding to float32, as here. The sum of strided views costs
    a fraction of a float mean over three axes, and the work grid is made before anything
    else can run.
    """
    fz, fy, fx = factors
    oz, oy, ox = out.shape
    count = np.intp(fz * fy * fx)
    for k in range(oz):
        slab = _pad_to(voxels[k * fz:(k + 1) * fz], (fz, oy * fy, ox * fx))
        acc = np.zeros((oy, ox), dtype=np.int32)
        for dz in range(fz):
            for dy in range(fy):
                for dx in range(fx):
                    acc += slab[dz, dy::fy, dx::fx]
        out[k] = np.true_divide(acc, count)


def _pad_to(a: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Edge-pad ``a`` up to ``shape`` (a partial last block repeats its edge voxels)."""
    pads = [(0, max(0, t - s)) for s, t in zip(a.shape, shape, strict=True)]
    if any(p[1] for p in pads):
        a = np.pad(a, pads, mode="edge")
    return a


def upsample_mask(mask: np.ndarray, grid: WorkGrid) -> np.ndarray:
    """A work-grid mask at full resolution (nearest neighbour), cropped to the volume."""
    fz, fy, fx = grid.factors
    nz, ny, nx = grid.source.shape
    full = mask
    if fz > 1:
        full = np.repeat(full, fz, axis=0)
    if fy > 1:
        full = np.repeat(full, fy, axis=1)
    if fx > 1:
        full = np.repeat(full, fx, axis=2)
    return full[:nz, :ny, :nx]


def full_bbox(bbox: tuple[int, int, int, int, int, int], grid: WorkGrid) -> tuple[int, ...]:
    """A work-grid box (z0, y0, x0, z1, y1, x1, half-open) in full-resolution indices."""
    fz, fy, fx = grid.factors
    nz, ny, nx = grid.source.shape
    z0, y0, x0, z1, y1, x1 = bbox
    return (z0 * fz, y0 * fy, x0 * fx, min(nz, z1 * fz), min(ny, y1 * fy), min(nx, x1 * fx))


def axis_signs(volume: HUVolume) -> tuple[int, int, int]:
    """(cranial, left, anterior) sign of the (z, x, y) index axes in LPS.

    LPS: +x is patient left, +y posterior, +z superior (cranial). The columns of
    ``direction`` are the x, y, z index axes.
    """
    d = np.asarray(volume.direction, dtype=float).reshape(3, 3)
    cranial = 1 if d[2, 2] >= 0 else -1
    left = 1 if d[0, 0] >= 0 else -1
    anterior = -1 if d[1, 1] >= 0 else 1
    return cranial, left, anterior

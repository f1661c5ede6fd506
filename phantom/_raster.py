"""Voxel grid and vectorised rasterisers (capsules, ellipsoids) with partial-volume fractions.

Every shape is drawn inside its own bounding box, so cost scales with the
shape, not the volume. Fractions approximate partial-volume averaging: a voxel
whose centre lies exactly on the surface gets 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Box = tuple[slice, slice, slice]


@dataclass(frozen=True, slots=True)
class Grid:
    """The voxel grid: shape (z, y, x), spacing (x, y, z) mm, origin LPS of voxel 0."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]

    @property
    def x(self) -> np.ndarray:
        return (self.origin[0] + np.arange(self.shape[2]) * self.spacing[0]).astype(np.float32)

    @property
    def y(self) -> np.ndarray:
        return (self.origin[1] + np.arange(self.shape[1]) * self.spacing[1]).astype(np.float32)

    @property
    def z(self) -> np.ndarray:
        return (self.origin[2] + np.arange(self.shape[0]) * self.spacing[2]).astype(np.float32)

    @property
    def voxel_ml(self) -> float:
        return self.spacing[0] * self.spacing[1] * self.spacing[2] / 1000.0

    @property
    def blur_mm(self) -> float:
        """Width over which an edge is partial-volumed (geometric mean voxel size)."""
        return float(np.prod(self.spacing) ** (1.0 / 3.0))

    def box(self, lo: np.ndarray, hi: np.ndarray) -> Box | None:
        """Index box covering the LPS box [lo, hi] (x, y, z), or None when outside the grid."""
        out = []
        for axis_xyz, axis_zyx in ((2, 0), (1, 1), (0, 2)):
            a = int(np.floor((lo[axis_xyz] - self.origin[axis_xyz]) / self.spacing[axis_xyz]))
            b = int(np.ceil((hi[axis_xyz] - self.origin[axis_xyz]) / self.spacing[axis_xyz])) + 1
            a, b = max(a, 0), min(b, self.shape[axis_zyx])
            if a >= b:
                return None
            out.append(slice(a, b))
        return (out[0], out[1], out[2])

    def coords(self, box: Box) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Broadcastable (Z, Y, X) mm coordinates of a box, shaped (n,1,1), (1,n,1), (1,1,n)."""
        zs = self.z[box[0]][:, None, None]
        ys = self.y[box[1]][None, :, None]
        xs = self.x[box[2]][None, None, :]
        return zs, ys, xs

    def to_index(self, p: np.ndarray) -> tuple[int, int, int]:
        """Nearest (z, y, x) index of an LPS point, clipped into the grid."""
        idx = []
        for axis_xyz, axis_zyx in ((2, 0), (1, 1), (0, 2)):
            i = int(round((p[axis_xyz] - self.origin[axis_xyz]) / self.spacing[axis_xyz]))
            idx.append(min(max(i, 0), self.shape[axis_zyx] - 1))
        return (idx[0], idx[1], idx[2])

    def to_lps(self, k: float, j: float, i: float) -> np.ndarray:
        return np.array(
            [
                self.origin[0] + i * self.spacing[0],
                self.origin[1] + j * self.spacing[1],
                self.origin[2] + k * self.spacing[2],
            ]
        )


def capsule(
    grid: Grid, p0: np.ndarray, p1: np.ndarray, r0: float, r1: float | None = None
) -> tuple[Box, np.ndarray] | None:
    """Fraction (0..1) of each voxel inside a tapered capsule from p0 (radius r0) to p1 (r1)."""
    r1 = r0 if r1 is None else r1
    p0 = np.asarray(p0, dtype=np.float64)
    p1 = np.asarray(p1, dtype=np.float64)
    rmax = max(r0, r1)
    pad = rmax + grid.blur_mm
    box = grid.box(np.minimum(p0, p1) - pad, np.maximum(p0, p1) + pad)
    if box is None:
        return None
    zs, ys, xs = grid.coords(box)
    d = (p1 - p0).astype(np.float32)
    dd = float(d @ d)
    vx, vy, vz = xs - np.float32(p0[0]), ys - np.float32(p0[1]), zs - np.float32(p0[2])
    if dd > 1e-9:
        t = np.clip((vx * d[0] + vy * d[1] + vz * d[2]) / np.float32(dd), 0.0, 1.0)
        dist = np.sqrt((vx - t * d[0]) ** 2 + (vy - t * d[1]) ** 2 + (vz - t * d[2]) ** 2)
        r = np.float32(r0) + t * np.float32(r1 - r0)
    else:
        dist = np.sqrt(vx**2 + vy**2 + vz**2)
        r = np.float32(r0)
    frac = np.clip((r - dist) / np.float32(grid.blur_mm) + 0.5, 0.0, 1.0).astype(np.float32)
    return box, frac


def ellipsoid_distance(
    grid: Grid, center: np.ndarray, radii: np.ndarray, axes: np.ndarray, margin: float
) -> tuple[Box, np.ndarray] | None:
    """Approximate signed distance (mm, negative inside) to a rotated ellipsoid, in its box.

    ``axes`` rows are the unit vectors of the ellipsoid's own axes (LPS);
    ``margin`` extends the box so outer shells (e.g. pericardium) fit.
    """
    ext = float(np.max(radii)) + margin + grid.blur_mm
    box = grid.box(center - ext, center + ext)
    if box is None:
        return None
    zs, ys, xs = grid.coords(box)
    vx, vy, vz = xs - np.float32(center[0]), ys - np.float32(center[1]), zs - np.float32(center[2])
    q2 = np.zeros(np.broadcast_shapes(vx.shape, vy.shape, vz.shape), dtype=np.float32)
    g2 = np.zeros_like(q2)
    for k in range(3):
        a = axes[k].astype(np.float32)
        u = vx * a[0] + vy * a[1] + vz * a[2]
        q2 += (u / np.float32(radii[k])) ** 2
        g2 += (u / np.float32(radii[k] ** 2)) ** 2
    q = np.sqrt(q2)
    grad = np.sqrt(g2) / np.maximum(q, 1e-6)
    dist = (q - 1.0) / np.maximum(grad, 1e-6)
    # Deep inside, the gradient approximation collapses: bound by the smallest radius.
    dist = np.maximum(dist, -float(np.min(radii)))
    return box, dist.astype(np.float32)


def fraction_from_distance(dist: np.ndarray, blur_mm: float) -> np.ndarray:
    """Partial-volume fraction inside a surface given a signed distance field (mm)."""
    return np.clip(0.5 - dist / np.float32(blur_mm), 0.0, 1.0).astype(np.float32)


def member_mask(labels: np.ndarray, tissues: tuple[int, ...] | np.ndarray) -> np.ndarray:
    """Boolean mask of voxels whose uint8 label is one of ``tissues`` (a table look-up)."""
    lut = np.zeros(256, dtype=bool)
    lut[np.asarray(tissues, dtype=np.intp)] = True
    return lut[labels]

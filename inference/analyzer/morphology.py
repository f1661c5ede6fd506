"""Small morphology helpers shared by the anatomy modules (work-grid voxels)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import convex_hull_image


def disk(radius: int) -> np.ndarray:
    """A 2-D disk structuring element lifted to 3-D (1, 2r+1, 2r+1): acts slice by slice."""
    r = max(0, int(radius))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return (yy * yy + xx * xx <= r * r)[None]


def ellipsoid(rz: int, ry: int, rx: int) -> np.ndarray:
    """A 3-D ellipsoid structuring element with semi-axes in voxels (0 allowed)."""
    zz, yy, xx = np.mgrid[-rz:rz + 1, -ry:ry + 1, -rx:rx + 1]
    return ((zz / max(rz, 0.5)) ** 2 + (yy / max(ry, 0.5)) ** 2
            + (xx / max(rx, 0.5)) ** 2) <= 1.0


def ball_radii(radius_mm: float, spacing_zyx: tuple[float, float, float]
               ) -> tuple[int, int, int]:
    """Semi-axes (voxels z, y, x) of ``ball_mm``."""
    dz, dy, dx = spacing_zyx
    return int(round(radius_mm / dz)), int(round(radius_mm / dy)), int(round(radius_mm / dx))


def ball_mm(radius_mm: float, spacing_zyx: tuple[float, float, float]) -> np.ndarray:
    """An ellipsoid that is a ball of ``radius_mm`` in physical space on this grid."""
    return ellipsoid(*ball_radii(radius_mm, spacing_zyx))


def dilate_ball(mask: np.ndarray, radius_mm: float, spacing_zyx: tuple[float, float, float]
                ) -> np.ndarray:
    """``ndi.binary_dilation(mask, ball_mm(radius_mm, spacing_zyx))`` by one distance transform.

    The same voxels: measured in units of each semi-axis, the ellipsoid is the unit
    ball, so a voxel is reached when its scaled distance to the mask is at most 1.
    A 15 mm ball has ~2000 voxels, and a dilation by it costs that many tests per
    voxel; the distance transform is linear. Worked in the mask's grown box.
    """
    radii = ball_radii(radius_mm, spacing_zyx)
    out = np.zeros(mask.shape, dtype=bool)
    box = crop_box(mask, margin=radii)
    if box is None:
        return out
    scale = [1.0 / max(r, 0.5) for r in radii]
    out[box] = ndi.distance_transform_edt(~mask[box], sampling=scale) <= 1.0 + 1e-9
    return out


def convex_hull_2d(mask2d: np.ndarray) -> np.ndarray:
    """``skimage.morphology.convex_hull_image`` computed in the mask's bounding box.

    The same pixels (the hull reaches half a pixel past the outermost pixel centres, so
    nothing outside the box is inside it); the point-in-polygon test over the whole
    slice was the costliest part of the per-slice hulls.
    """
    out = np.zeros_like(mask2d, dtype=bool)
    box = ndi.find_objects(mask2d.astype(np.int8))
    if not box or box[0] is None:
        return out
    out[box[0]] = convex_hull_image(mask2d[box[0]])
    return out


IN_PLANE_4 = np.zeros((3, 3, 3), dtype=bool)
IN_PLANE_4[1] = ndi.generate_binary_structure(2, 1)
"""4-connectivity within each slice and none across slices: slice-by-slice labelling."""


def fill_holes_2d(mask: np.ndarray) -> np.ndarray:
    """Fill holes slice by slice (a hole = background not reaching the slice border).

    The same voxels as ``ndi.binary_fill_holes`` on each slice (background
    4-connected to the border stays), from one labelling of the whole stack:
    the per-slice fill grows the border inwards one pixel per pass, which cost
    over a second per volume on large slices.
    """
    labels, n = ndi.label(~mask, structure=IN_PLANE_4)
    if n == 0:
        return mask.copy()
    border = np.zeros(n + 1, dtype=bool)
    for face in (labels[:, 0, :], labels[:, -1, :], labels[:, :, 0], labels[:, :, -1]):
        border[face] = True
    border[0] = False
    return ~border[labels]


def largest_component(mask: np.ndarray, structure: np.ndarray | None = None) -> np.ndarray:
    """The largest connected component (empty mask stays empty)."""
    labels, n = ndi.label(mask, structure=structure)
    if n == 0:
        return np.zeros_like(mask)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def crop_box(mask: np.ndarray, margin: int | tuple[int, int, int] = 0
             ) -> tuple[slice, slice, slice] | None:
    """Slices of the bounding box of ``mask`` grown by ``margin`` (voxels, one for all axes
    or one per axis z, y, x); None if empty."""
    idx = np.nonzero(mask.any(axis=(1, 2)))[0]
    if idx.size == 0:
        return None
    iy = np.nonzero(mask.any(axis=(0, 2)))[0]
    ix = np.nonzero(mask.any(axis=(0, 1)))[0]
    mz, my, mx = (margin, margin, margin) if isinstance(margin, int) else margin
    return (
        slice(max(0, idx[0] - mz), min(mask.shape[0], idx[-1] + 1 + mz)),
        slice(max(0, iy[0] - my), min(mask.shape[1], iy[-1] + 1 + my)),
        slice(max(0, ix[0] - mx), min(mask.shape[2], ix[-1] + 1 + mx)),
    )


def distance_to(target: np.ndarray, near: np.ndarray, reach_mm: float,
                spacing_zyx: tuple[float, float, float]) -> np.ndarray:
    """Distance (mm) to the nearest ``target`` voxel, computed in the box of ``near`` grown
    by ``reach_mm``; +inf outside that box.

    Exact for every voxel of ``near``'s box whose distance is at most ``reach_mm`` (its
    nearest target lies inside the grown box), and everywhere in the grown box when all
    of ``target`` lies inside it. A whole-volume distance transform costs ~1-2 s; the
    callers only read it near the lungs.
    """
    out = np.full(target.shape, np.inf)
    mz, my, mx = (int(np.ceil(reach_mm / s)) + 1 for s in spacing_zyx)
    box = crop_box(near, margin=(mz, my, mx))
    if box is None or not target[box].any():
        return out
    out[box] = ndi.distance_transform_edt(~target[box], sampling=spacing_zyx)
    return out


def dilate(mask: np.ndarray, structure: np.ndarray) -> np.ndarray:
    """``ndi.binary_dilation(mask, structure)``, computed in the mask's bounding box grown
    by the structure's half-size (nothing outside it can be reached): the same voxels."""
    out = np.zeros(mask.shape, dtype=bool)
    box = crop_box(mask, margin=max(structure.shape) // 2)
    if box is not None:
        out[box] = ndi.binary_dilation(mask[box], structure=structure)
    return out


def erode(mask: np.ndarray, structure: np.ndarray) -> np.ndarray:
    """``ndi.binary_erosion(mask, structure)``, computed in the mask's bounding box: the
    same voxels (outside the box the mask is empty, as scipy takes the image border)."""
    out = np.zeros(mask.shape, dtype=bool)
    box = crop_box(mask)
    if box is not None:
        out[box] = ndi.binary_erosion(mask[box], structure=structure)
    return out


CROSS = ndi.generate_binary_structure(3, 1)
"""6-connectivity: scipy's default structure of a 3-D binary dilation or erosion."""


def grow(mask: np.ndarray, iterations: int = 1, mask_in: np.ndarray | None = None
         ) -> np.ndarray:
    """``ndi.binary_dilation(mask, iterations=iterations, mask=mask_in)`` (``CROSS``, one
    voxel per iteration), computed in the mask's bounding box grown by ``iterations``.

    The same voxels: a voxel is reached along at most ``iterations`` steps from the mask,
    all of them inside that box, and nothing beyond it is reached.
    """
    out = np.zeros(mask.shape, dtype=bool)
    box = crop_box(mask, margin=iterations)
    if box is not None:
        out[box] = ndi.binary_dilation(mask[box], iterations=iterations,
                                       mask=None if mask_in is None else mask_in[box])
    return out


def shrink(mask: np.ndarray, iterations: int = 1, structure: np.ndarray | None = None
           ) -> np.ndarray:
    """``ndi.binary_erosion(mask, structure, iterations)``, computed in the mask's bounding
    box: the same voxels (outside the box the mask is empty, as scipy takes the image
    border, so every step gives the same answer there)."""
    out = np.zeros(mask.shape, dtype=bool)
    box = crop_box(mask)
    if box is not None:
        out[box] = ndi.binary_erosion(mask[box], structure=structure, iterations=iterations)
    return out


def dilate_near(mask: np.ndarray, structure: np.ndarray, near: np.ndarray) -> np.ndarray:
    """``ndi.binary_dilation(mask, structure)`` inside the bounding box of ``near``
    (False outside it): the same voxels there, at a fraction of the cost.

    A voxel's dilation depends only on the mask within the structure's half-size of it,
    so the box grown by that half-size suffices. Whole-volume dilations of bone or the
    chest wall by 5-8 mm balls cost seconds, and the callers read them only near the heart.
    """
    box = crop_box(near)
    if box is None:
        return np.zeros(mask.shape, dtype=bool)
    return dilate_within(mask, structure, box)


def dilate_within(mask: np.ndarray, structure: np.ndarray, box: tuple[slice, ...]
                  ) -> np.ndarray:
    """``ndi.binary_dilation(mask, structure)`` inside ``box`` (False outside it), from the
    mask within the box grown by the structure's half-size (``dilate_near``)."""
    out = np.zeros(mask.shape, dtype=bool)
    grown = tuple(slice(max(0, b.start - h), min(n, b.stop + h))
                  for b, h, n in zip(box, (s // 2 for s in structure.shape), mask.shape,
                                     strict=True))
    dilated = ndi.binary_dilation(mask[grown], structure=structure)
    out[box] = dilated[tuple(slice(b.start - g.start, b.stop - g.start)
                             for b, g in zip(box, grown, strict=True))]
    return out


def close_ball(mask: np.ndarray, radius_mm: float, spacing_zyx: tuple[float, float, float],
               coarse_mm: float = 4.0) -> np.ndarray:
    """3-D closing by a ball of ``radius_mm``, via distance transforms on a coarse grid.

    A ball of 30 mm has ~10^4 voxels, too many for a structuring element; two
    Euclidean distance transforms do the same in linear time. The closing is
    computed on blocks of about ``coarse_mm`` (a block is set when most of its
    voxels are) and brought back; the result always contains ``mask``.
    """
    box = crop_box(mask)
    if box is None:
        return mask.copy()
    sub = mask[box]
    f = tuple(max(1, int(round(coarse_mm / s))) for s in spacing_zyx)
    shape = tuple(-(-n // k) for n, k in zip(sub.shape, f, strict=True))
    padded = np.zeros(tuple(n * k for n, k in zip(shape, f, strict=True)), dtype=bool)
    padded[: sub.shape[0], : sub.shape[1], : sub.shape[2]] = sub
    coarse = padded.reshape(shape[0], f[0], shape[1], f[1], shape[2], f[2]).mean(
        axis=(1, 3, 5)) >= 0.5
    csp = tuple(s * k for s, k in zip(spacing_zyx, f, strict=True))
    pad = tuple(int(radius_mm // s) + 2 for s in csp)
    cp = np.pad(coarse, [(p, p) for p in pad])
    dilated = ndi.distance_transform_edt(~cp, sampling=csp) <= radius_mm
    closed = ndi.distance_transform_edt(dilated, sampling=csp) > radius_mm
    closed = closed[pad[0]:-pad[0], pad[1]:-pad[1], pad[2]:-pad[2]]
    full = np.repeat(np.repeat(np.repeat(closed, f[0], 0), f[1], 1), f[2], 2)
    out = np.zeros_like(mask)
    out[box] = full[: sub.shape[0], : sub.shape[1], : sub.shape[2]] | sub
    return out


def open_in_box(mask: np.ndarray, structure: np.ndarray) -> np.ndarray:
    """``ndi.binary_opening(mask, structure)``, computed in the mask's bounding box.

    The same voxels: an opening lies within the mask, and scipy takes what lies beyond
    the image as background in both of its steps, as the empty voxels around the box
    are. Cheap where the mask fills a small part of the volume, and with ``disk`` one
    call opens every slice as per-slice openings of the whole slices did.
    """
    out = np.zeros(mask.shape, dtype=bool)
    box = crop_box(mask)
    if box is not None:
        out[box] = ndi.binary_opening(mask[box], structure=structure)
    return out


def open_ball(mask: np.ndarray, radius_mm: float, spacing_zyx: tuple[float, float, float]
              ) -> np.ndarray:
    """Opening by a ball of ``radius_mm`` (``ball_mm``): the voxels of ``mask`` covered by
    a ball that fits inside it. Worked in the mask's box."""
    out = np.zeros_like(mask)
    box = crop_box(mask, margin=1)
    if box is None:
        return out
    ball = ball_mm(radius_mm, spacing_zyx)
    sub = mask[box]
    centres = ndi.binary_erosion(sub, structure=ball)
    # The dilation only reaches one ball past the centres (few, when anything survives).
    near = crop_box(centres, margin=max(ball.shape) // 2 + 1)
    if near is None:
        return out
    opened = np.zeros_like(sub)
    opened[near] = ndi.binary_dilation(centres[near], structure=ball) & sub[near]
    out[box] = opened
    return out

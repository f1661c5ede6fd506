"""Volume preparation shared by the learned models: orientation, resizing, crop/pad.

Published CT models were trained on arrays in one fixed orientation and fed
through ``torch.nn.functional.interpolate`` (trilinear, ``align_corners=False``)
to a target size of ``int(n * spacing / target_spacing)`` voxels, then
centre-cropped or padded. These helpers reproduce that arithmetic exactly, but
resize one slab at a time and crop in between so a 512 x 512 x 600 study never
exists at full target resolution in memory (trilinear interpolation is
separable, so in-plane then slice-axis resizing gives the same numbers).

``orient_lps`` puts any axial volume's index axes towards patient superior,
posterior and left (array ``[S, P, L]``), whatever order the slices and rows
were stored in, and remembers how to map an oriented index back.

Only ``resize_crop`` needs torch, and imports it when called: the model
classes import this module, and a node without learned weights never resizes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from series_selector.types import HUVolume

_SLAB = 8  # slices resized in-plane at a time


@dataclass(frozen=True, slots=True, eq=False)
class Oriented:
    """A volume's voxels with index axes towards superior, posterior, left.

    ``axes[k]`` is the source array axis (0 = z, 1 = y, 2 = x of
    ``HUVolume.voxels``) that became oriented axis ``k``; ``flips[k]`` says
    whether it was reversed.
    """

    voxels: np.ndarray  # [S, P, L]
    spacing: tuple[float, float, float]  # mm along the oriented axes
    axes: tuple[int, int, int]
    flips: tuple[bool, bool, bool]

    def apply(self, source_array: np.ndarray) -> np.ndarray:
        """The same reorientation applied to another array of the source's shape (a mask)."""
        out = np.transpose(source_array, self.axes)
        return out[tuple(slice(None, None, -1) if f else slice(None) for f in self.flips)]

    def box_to_source(self, box: tuple[tuple[int, int], ...], sub: np.ndarray
                      ) -> tuple[tuple[int, int, int, int, int, int], np.ndarray]:
        """An oriented half-open box and the array over it, as a source box (z0, y0, x0, z1,
        y1, x1) and the same array in source axis order."""
        ranges: list[tuple[int, int]] = [(0, 0)] * 3
        for k, (start, stop) in enumerate(box):
            n = self.voxels.shape[k]
            ranges[self.axes[k]] = (n - stop, n - start) if self.flips[k] else (start, stop)
        unflipped = sub[tuple(slice(None, None, -1) if f else slice(None) for f in self.flips)]
        source = np.transpose(unflipped, np.argsort(self.axes))
        (z0, z1), (y0, y1), (x0, x1) = ranges
        return (z0, y0, x0, z1, y1, x1), source

    def source_index(self, index: tuple[float, float, float]) -> tuple[float, float, float]:
        """A continuous oriented index [S, P, L] as a source index [z, y, x]."""
        shape = self.voxels.shape
        src = [0.0, 0.0, 0.0]
        for k in range(3):
            v = float(index[k])
            src[self.axes[k]] = (shape[k] - 1 - v) if self.flips[k] else v
        return src[0], src[1], src[2]


def orient_lps(volume: HUVolume) -> Oriented:
    """Reorder and flip the voxel axes so that they point to S, P and L (a view, no copy)."""
    d = np.asarray(volume.direction, dtype=float).reshape(3, 3)  # columns: x, y, z index axes
    sx, sy, sz = volume.spacing
    source_axis = {0: 2, 1: 1, 2: 0}  # direction column (x, y, z) -> array axis of [z, y, x]
    source_spacing = {0: sx, 1: sy, 2: sz}
    target = {2: 0, 1: 1, 0: 2}  # LPS component (x=L, y=P, z=S) -> oriented axis [S, P, L]
    axes = [0, 0, 0]
    flips = [False, False, False]
    spacing = [0.0, 0.0, 0.0]
    used: set[int] = set()
    for col in sorted(range(3), key=lambda c: -np.max(np.abs(d[:, c]))):
        order = np.argsort(-np.abs(d[:, col]))
        component = next(int(c) for c in order if int(c) not in used)
        used.add(component)
        k = target[component]
        axes[k] = source_axis[col]
        flips[k] = bool(d[component, col] < 0)
        spacing[k] = source_spacing[col]
    axes_t = (axes[0], axes[1], axes[2])
    flips_t = (flips[0], flips[1], flips[2])
    view = np.transpose(volume.voxels, axes_t)
    view = view[tuple(slice(None, None, -1) if f else slice(None) for f in flips_t)]
    return Oriented(view, (spacing[0], spacing[1], spacing[2]), axes_t, flips_t)


def resized_shape(shape: tuple[int, ...], spacing: tuple[float, ...],
                  target_spacing: tuple[float, ...]) -> tuple[int, int, int]:
    """``int(n * spacing / target)`` per axis: the published CT-CLIP / fVLM resize size."""
    a, b, c = (max(1, int(n * s / t)) for n, s, t in zip(shape, spacing, target_spacing,
                                                          strict=True))
    return a, b, c


@dataclass(frozen=True, slots=True)
class Window:
    """A centre crop of ``start:end`` along one axis, then ``before``/``after`` padding."""

    start: int
    end: int
    before: int
    after: int


def centre_window(n: int, target: int) -> Window:
    """Centre crop to ``target`` when longer, centre pad when shorter (published arithmetic)."""
    start = max((n - target) // 2, 0)
    end = min(start + target, n)
    before = (target - (end - start)) // 2
    return Window(start, end, before, target - (end - start) - before)


def resize_crop(array: np.ndarray, size: tuple[int, int, int],
                windows: tuple[Window, Window, Window], pad_value: float,
                transform: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Trilinear resize of ``transform(array)`` to ``size``, then the crop/pad of ``windows``.

    Equal to ``F.interpolate(a[None, None], size, mode="trilinear",
    align_corners=False)`` followed by cropping and constant padding, computed
    slab by slab (see module doc); ``transform`` (e.g. an intensity clip) is
    applied to each slab before resizing. Returns float32.
    """
    import torch
    import torch.nn.functional as F

    wz, wy, wx = windows
    n0 = array.shape[0]
    plane = np.empty((n0, wy.end - wy.start, wx.end - wx.start), dtype=np.float32)
    for k in range(0, n0, _SLAB):
        raw = np.asarray(array[k:k + _SLAB], dtype=np.float32)
        slab = torch.from_numpy(np.ascontiguousarray(transform(raw) if transform else raw))
        out = F.interpolate(slab[None], size=size[1:], mode="bilinear", align_corners=False)[0]
        plane[k:k + _SLAB] = out[:, wy.start:wy.end, wx.start:wx.end].numpy()
    t = torch.from_numpy(plane)
    if size[0] != n0:
        t = F.interpolate(t[None, None], size=(size[0], *plane.shape[1:]), mode="trilinear",
                          align_corners=False)[0, 0]
    t = t[wz.start:wz.end]
    pads = (wx.before, wx.after, wy.before, wy.after, wz.before, wz.after)
    if any(pads):
        t = F.pad(t, pads, value=pad_value)
    return t.numpy()


def nearest_source(n_src: int, n_dst: int, start: int, count: int) -> np.ndarray:
    """Source indices of destination ``start..start+count`` under nearest resizing n_src→n_dst."""
    dst = np.arange(start, start + count)
    return np.minimum((dst * (n_src / n_dst)).astype(np.int64), n_src - 1)

"""A study as CT-CLIP was trained to see it (CT-RATE preprocessing).

The published CT-CLIP data loader (``scripts/data_inference_nii.py``) reads a
CT-RATE NIfTI, whose voxel axes point to patient left, posterior and superior,
clips to [-1000, 1000] HU, resizes to 0.75 x 0.75 x 1.5 mm (size
``int(n * spacing / target)``, trilinear), divides by 1000, centre-crops or pads
with -1 to 480 x 480 x 240 and hands the model ``(slices, left, posterior)``:
slice index towards the head, image rows towards patient left, columns towards
posterior. The model is sensitive to that orientation, so every study is put
into it first (``orient_lps``), whatever its own slice and row order.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from inference.models.volume_prep import centre_window, orient_lps, resize_crop, resized_shape
from series_selector.types import HUVolume


@dataclass(frozen=True, slots=True)
class CTClipPreprocessing:
    """The published values; a smaller size makes a test-sized input of the same kind."""

    spacing_mm: tuple[float, float, float] = (1.5, 0.75, 0.75)  # slices, rows, columns
    size: tuple[int, int, int] = (240, 480, 480)  # frames, height, width
    hu_range: tuple[float, float] = (-1000.0, 1000.0)
    scale: float = 1000.0
    pad_value: float = -1.0


def ctclip_input(volume: HUVolume, prep: CTClipPreprocessing | None = None) -> np.ndarray:
    """(1, 1, frames, H, W) float32 input of CT-CLIP for one volume."""
    p = prep or CTClipPreprocessing()
    oriented = orient_lps(volume)  # [S, P, L]
    array = np.transpose(oriented.voxels, (0, 2, 1))  # [S, L, P]: frames, rows, columns
    spacing = (oriented.spacing[0], oriented.spacing[2], oriented.spacing[1])
    size = resized_shape(array.shape, spacing, p.spacing_mm)
    windows = (centre_window(size[0], p.size[0]), centre_window(size[1], p.size[1]),
               centre_window(size[2], p.size[2]))
    out = resize_crop(array, size, windows, pad_value=p.pad_value * p.scale,
                      transform=partial(np.clip, a_min=p.hu_range[0], a_max=p.hu_range[1]))
    out /= p.scale
    return out[None, None]

"""Scanner-like variations of a CT volume: what real studies do to a chest CT.

Applied to phantom volumes and to the real shared cases alike (tests and
benchmarks only; the product pipeline never imports ``phantom``):

- ``crop_fov``: a targeted reconstruction (smaller field of view, any centre),
  the border cutting through body and lungs as on a chest CTA centred on the
  mediastinum.
- ``thicken``: thicker slices, the mean of neighbouring slices (what a scanner's
  thick reconstruction of the same raw data approximates).
- ``add_noise``: lower dose; white Gaussian noise blurred to the kernel's
  correlation length so that it looks like CT noise rather than salt.
- ``sharpen`` / ``soften``: another kernel; unsharp masking boosts the high
  spatial frequencies as a sharper kernel does, a Gaussian blur takes them away.

Every transform returns a new ``HUVolume`` with consistent geometry (origin and
spacing follow the crop or the thickening); HU stay HU.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
from scipy import ndimage as ndi

from series_selector.types import HUVolume


def crop_fov(volume: HUVolume, fraction: float, centre: tuple[float, float] = (0.5, 0.5)
             ) -> HUVolume:
    """Keep ``fraction`` of the in-plane field of view around ``centre`` (row, column, 0..1)."""
    if not 0.05 <= fraction <= 1.0:
        raise ValueError("crop_fov: fraction must be within [0.05, 1]")
    _, ny, nx = volume.shape
    h, w = max(1, int(round(ny * fraction))), max(1, int(round(nx * fraction)))
    y0 = int(round(min(max(centre[0] * ny - h / 2.0, 0.0), ny - h)))
    x0 = int(round(min(max(centre[1] * nx - w / 2.0, 0.0), nx - w)))
    voxels = np.ascontiguousarray(volume.voxels[:, y0:y0 + h, x0:x0 + w])
    return dataclasses.replace(volume, voxels=voxels, origin=volume.index_to_lps(0, y0, x0))


def thicken(volume: HUVolume, thickness_mm: float) -> HUVolume:
    """Average groups of slices to about ``thickness_mm`` (slice step = thickness)."""
    sx, sy, sz = volume.spacing
    f = max(1, int(round(thickness_mm / sz)))
    if f == 1:
        return volume
    nz = volume.shape[0] // f * f
    v = volume.voxels[:nz].astype(np.float32)
    out = v.reshape(nz // f, f, *v.shape[1:]).mean(axis=1)
    # The new slice k is centred between old slices k*f and k*f + f - 1.
    origin = volume.index_to_lps((f - 1) / 2.0, 0, 0)
    return dataclasses.replace(volume, voxels=out, spacing=(sx, sy, sz * f), origin=origin,
                               slice_thickness_mm=sz * f, slice_sop_instance_uids=(),
                               slice_frame_numbers=())


def add_noise(volume: HUVolume, sigma_hu: float, seed: int = 0, corr_mm: float = 0.8
              ) -> HUVolume:
    """Add CT-like noise of standard deviation ``sigma_hu`` (lower dose, larger patient).

    White noise is blurred in plane by ``corr_mm`` (a soft kernel's noise grain),
    then rescaled so that its SD is ``sigma_hu``.
    """
    rng = np.random.default_rng(seed)
    sx, sy, _ = volume.spacing
    out = volume.voxels.astype(np.float32)
    for k in range(out.shape[0]):
        n = rng.standard_normal(out.shape[1:]).astype(np.float32)
        if corr_mm > 0:
            n = ndi.gaussian_filter(n, sigma=(corr_mm / sy, corr_mm / sx))
        sd = float(n.std())
        out[k] += n * (sigma_hu / sd if sd > 0 else 0.0)
    return dataclasses.replace(volume, voxels=out)


def sharpen(volume: HUVolume, amount: float = 1.0, sigma_mm: float = 1.0) -> HUVolume:
    """Unsharp masking in plane: more high-frequency signal and noise (a sharper kernel)."""
    sx, sy, _ = volume.spacing
    v = volume.voxels.astype(np.float32)
    blur = ndi.gaussian_filter(v, sigma=(0.0, sigma_mm / sy, sigma_mm / sx))
    return dataclasses.replace(volume, voxels=v + amount * (v - blur))


def soften(volume: HUVolume, sigma_mm: float = 1.0) -> HUVolume:
    """Gaussian blur in plane: less noise and detail (a softer kernel)."""
    sx, sy, _ = volume.spacing
    v = volume.voxels.astype(np.float32)
    return dataclasses.replace(volume, voxels=ndi.gaussian_filter(
        v, sigma=(0.0, sigma_mm / sy, sigma_mm / sx)))


Transform = Callable[[HUVolume], HUVolume]

IMAGE_VARIANTS: dict[str, Transform] = {
    "crop70": lambda v: crop_fov(v, 0.7),
    "crop50": lambda v: crop_fov(v, 0.5),
    "crop70_offcentre": lambda v: crop_fov(v, 0.7, (0.45, 0.6)),
    "thick5": lambda v: thicken(v, 5.0),
    "noise40": lambda v: add_noise(v, 40.0),
    "sharp": lambda v: sharpen(v, 1.0),
    "soft": lambda v: soften(v, 1.0),
}
"""Named image variants of one study, for the variation corpus and its benchmark."""

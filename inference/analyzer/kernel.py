"""In-plane sharpness measured on the image's own edges, and a standard-kernel copy.

Agatston scoring is defined at a fixed resolution (Agatston et al., JACC 1990: 3 mm
slices; today a standard, medium-smooth kernel: Hecht et al., SCCT/STR guideline,
J Cardiovasc Comput Tomogr 2017;11:74). A sharper kernel raises the peak and the area
of a small calcification (and the Agatston score read on it) while the blood pool's
median hardly moves, so a focus below the calcium threshold on the standard image
crosses it on the sharp one (the lung-kernel overestimate of Boedeker et al. 2004,
cited in ``heart``). The kernel name in the header is a vendor hint at best and is
lost by any post-processing; the image itself shows how sharp it is.

Measure: the edge spread function (ESF) of the air-tissue edges of the slice (body
surface, lungs, airways), as Sanders, Hurwitz & Samei measure a patient image's
resolution at its skin-air edge (Med Phys 2016;43:5330; on a hospital database the
skin ESF gave f50 0.30 mm^-1 for soft and 0.42 for hard FBP kernels, Sanders, Ding &
Samei, AAPM 2016 abstract TH-CD-207B-02): every pixel within
``EDGE_WINDOW_MM`` of the -500 HU iso-contour is binned by its signed distance to it,
the median of each bin is the ESF, its derivative the line spread function (LSF).
We keep one number, the LSF's second central moment (its variance, mm^2), because
it is exact arithmetic for what a linear kernel does:

- variances add under convolution, so smoothing by a Gaussian of SD ``s`` adds ``s^2``
  (checked on LIDC-IDRI 0003: +0.21/+0.53/+0.80 mm^2 measured for s = 0.5/0.8/1.0 mm,
  +0.25/0.64/1.0 expected: the window and bins lose a fifth of it);
- the low-frequency MTF is ``1 - 2 pi^2 var f^2``: an edge-enhancing kernel, whose
  MTF exceeds 1, has a small or negative variance (overshoot and undershoot lobes
  count negatively). Unsharp masking with amount 1 and a 1 mm Gaussian (the
  ``sharp`` image variant) lowers it by exactly 1 mm^2 (weights 2 and -1);
  measured -1.12, -0.82 and -0.90 mm^2 on the three real studies.

An image whose variance is below ``REFERENCE_LSF_VAR_MM2`` (the sharpest standard-kernel
series at hand) is smoothed in plane by ``sqrt(reference - variance)`` before calcium is
scored: that restores the reference's low-frequency resolution, whatever the kernel.
The measured variance includes the contour's own positional noise and partial volume
along z (a positive bias shared by all images on a similar grid), so the reference is
a measured value, not a textbook kernel's.
"""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
from scipy import ndimage as ndi

from inference.analyzer.grid import block_mean
from inference.analyzer.types import WorkGrid
from series_selector.types import HUVolume

logger = logging.getLogger(__name__)

EDGE_LEVEL_HU = -500.0
"""The air-tissue iso-contour: midway between air or lung (-850..-1000 HU) and soft tissue
or fat (-100..+50 HU), so the contour lies at the edge's half height (physics of the two
materials, not fitted)."""
EDGE_WINDOW_MM = 4.0
"""Profiles reach 4 mm on both sides of the edge: past a standard kernel's LSF (FWHM
~1-1.5 mm) and the 1-2 mm lobes of an edge-enhancing kernel, short of the next anatomy
(chest wall ~10 mm, vessels in the lung a few mm off); geometry, not fitted."""
EDGE_BIN_MM = 0.5
"""ESF bin width: below a standard kernel's LSF width and near the 0.6-0.9 mm pixels of a
chest CT (distances to a pixel contour are multiples of sqrt(integer) pixels, so finer bins
stay empty); sampling, not fitted."""
EDGE_SAMPLE_SLICES = 8
"""Slices between 30 % and 70 % of the stack (lungs, heart and body surface in view): each
holds thousands of edge pixels, 8 give a median per bin with negligible noise."""
CONTOUR_SMOOTH_PX = 2.0
"""The contour is placed on a copy smoothed by 2 pixels, so that noise and lung texture do
not make it jagged (its positional noise would widen the measured LSF); the ESF itself is
read on the unsmoothed image."""
MAX_EDGE_PIXEL_MM = 1.0
"""Coarser pixels hold a kernel's ~1 mm LSF within one pixel: the edge profile cannot
resolve it (the same bound as ``conditions.MAX_KERNEL_PIXEL_MM`` for the noise grain; the
128-matrix phantoms, 2.7 mm pixels, read 0.25-0.40 mm^2 whatever their blur)."""
REFERENCE_LSF_VAR_MM2 = 0.6
"""The reference resolution: the LSF variance of the sharpest standard-kernel series in the
labelled set at hand (3 series: LIDC-IDRI 0001 and 0003 GE STANDARD 0.63 mm^2 each,
Lung-PET-CT-Dx A0001 Siemens "B" 5 mm 0.74; their unsharp-masked ``sharp`` variants read
-0.49, -0.19 and -0.16), rounded down so that no standard-kernel original is smoothed.
Crops read 0.15-1.00 (fewer skin edges, more lung-mediastinum edges: the profile mixes
anatomy), so a crop may be smoothed by up to 0.7 mm, which moved no coronary call on the
three studies. Command: ``edge_spread_variance(tests.conftest.real_volume(name, variant))``
for the 3 cases x 8 variants."""


def edge_spread_variance(volume: HUVolume) -> float | None:
    """Second central moment (mm^2) of the in-plane LSF at the air-tissue edges.

    None when too few edges are in view to fill the profile (e.g. a soft-tissue-only crop)
    or when pixels are coarser than ``MAX_EDGE_PIXEL_MM``.
    """
    vox = volume.voxels
    px = float(volume.spacing[0])
    if max(volume.spacing[:2]) > MAX_EDGE_PIXEL_MM:
        return None
    nz = vox.shape[0]
    edges = np.arange(-EDGE_WINDOW_MM, EDGE_WINDOW_MM + 1e-6, EDGE_BIN_MM)
    dists: list[np.ndarray] = []
    values: list[np.ndarray] = []
    for k in np.unique(np.linspace(0.3 * (nz - 1), 0.7 * (nz - 1),
                                   EDGE_SAMPLE_SLICES).round().astype(int)):
        img = vox[int(k)].astype(np.float32)
        high = ndi.gaussian_filter(img, CONTOUR_SMOOTH_PX) >= EDGE_LEVEL_HU
        if high.all() or not high.any():
            continue
        # The contour runs midway between the last pixel in and the first pixel out.
        d = np.where(high, ndi.distance_transform_edt(high, sampling=px) - 0.5 * px,
                     0.5 * px - ndi.distance_transform_edt(~high, sampling=px))
        near = np.abs(d) < EDGE_WINDOW_MM
        dists.append(d[near])
        values.append(img[near])
    if not dists:
        return None
    return _lsf_variance(np.concatenate(dists), np.concatenate(values), edges)


def _lsf_variance(d: np.ndarray, v: np.ndarray, edges: np.ndarray) -> float | None:
    """Variance of the LSF from the binned median ESF (distance ``d`` mm, HU ``v``)."""
    idx = np.digitize(d, edges) - 1
    centres: list[float] = []
    esf: list[float] = []
    for i in range(len(edges) - 1):
        sel = v[idx == i]
        if sel.size >= 50:  # a median to ~0.2 noise SD (1.25 / sqrt(50)); statistics
            centres.append(0.5 * (edges[i] + edges[i + 1]))
            esf.append(float(np.median(sel)))
    if len(esf) < 4:  # fewer than 3 LSF samples have no defined variance
        return None
    x, e = np.asarray(centres), np.asarray(esf)
    lsf = np.diff(e)
    total = float(lsf.sum())
    if total <= 0.0:
        return None  # no air-tissue step in the profile
    lsf = lsf / total
    xm = 0.5 * (x[1:] + x[:-1])
    mu = float((xm * lsf).sum())
    return float(((xm - mu) ** 2 * lsf).sum())


def standard_equivalent(grid: WorkGrid) -> tuple[WorkGrid, float, float | None]:
    """(grid at the reference resolution, Gaussian SD applied in mm, measured LSF variance).

    The grid itself (SD 0) when the image is no sharper than the reference or has too few
    edges to tell; otherwise a grid whose full-resolution voxels are smoothed in plane.
    Made once per grid: the aorta, its wall calcium and the coronaries read the same copy.
    """
    return grid.derived("standard_equivalent", lambda: _standard_equivalent(grid))


def _standard_equivalent(grid: WorkGrid) -> tuple[WorkGrid, float, float | None]:
    var = edge_spread_variance(grid.source)
    if var is None or var >= REFERENCE_LSF_VAR_MM2:
        return grid, 0.0, var
    sd_mm = math.sqrt(REFERENCE_LSF_VAR_MM2 - var)
    sx, sy, _ = grid.source.spacing
    vox = ndi.gaussian_filter(grid.source.voxels.astype(np.float32),
                              sigma=(0.0, sd_mm / sy, sd_mm / sx))
    logger.info("image sharper than a standard kernel (LSF variance %.2f mm2): smoothed by "
                "%.2f mm for calcium scoring", var, sd_mm)
    volume = dataclasses.replace(grid.source, voxels=vox)
    return WorkGrid(hu=block_mean(volume, grid.factors), factors=grid.factors,
                    source=volume), sd_mm, var

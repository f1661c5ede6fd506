"""What the image allows: kernel class, noise, field of view, contrast phase.

Assembled once per volume into ``inference.types.ImageConditions`` and carried
in the result (``image``) so that a reader, and the mapping of findings, know
which measures are valid on this scan.

- Noise: the global noise level of Christianson et al. (AJR 2015;205:W93-W99):
  the mode of the histogram of local standard deviations (small windows) over
  soft tissue (0..100 HU), on a few full-resolution slices. Robust to edges,
  which only add a tail to the histogram.
- Kernel: a sharp (lung/bone) kernel passes high spatial frequencies, so its
  noise is nearly uncorrelated from pixel to pixel, while a soft kernel's noise
  is smooth over several pixels (noise power spectrum peak ~0.1-0.3 lp/mm for
  soft body kernels vs ~0.5-0.8 lp/mm for lung/bone kernels; Solomon et al.,
  Med Phys 2012, noise texture across manufacturers). We measure the
  correlation of neighbouring pixels' noise in the same homogeneous windows,
  through the differences of adjacent pixels (var(a-b) = 2 var (1 - rho)).
  The header kernel name (a vendor hint,
  ``series_selector.ranking.kernel_family``) decides when it is known.
- Field of view: ``fov.assess_coverage``.
- Contrast: ``contrast.detect_contrast_phase`` (from the image; the header
  only as a hint).
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage as ndi

from inference.analyzer.contrast import detect_contrast_phase
from inference.analyzer.fov import Coverage
from inference.analyzer.types import Anatomy, WorkGrid
from inference.types import ImageConditions
from series_selector.ranking import KernelFamily, kernel_family

logger = logging.getLogger(__name__)

TISSUE_HU = (0.0, 100.0)
"""Soft tissue range of Christianson et al. 2015 for the global noise level."""
WINDOW_MM = 4.0
"""Side of the local-SD window (about 5 x 5 pixels at 0.7-0.8 mm)."""
SAMPLE_SLICES = 8
SHARP_MAX_RHO = 0.22
"""Neighbour noise correlation below which the kernel counts as sharp.

Measured on the labelled set at hand (5 series, pixels 0.70-0.98 mm): the one
sharp series (Lung-PET-CT-Dx A0001 kernel "L") 0.09; the soft ones 0.36 (its
"B" series), 0.53 and 0.49 (LIDC-IDRI 0001/0003 STANDARD), 0.58
(TotalSegmentator Br38f). The bound is the midpoint between the sharp series and
the lowest soft one. Five series are few: the header kernel decides whenever it
names a known family, and the measure is used only at pixels up to
``MAX_KERNEL_PIXEL_MM``."""
MAX_KERNEL_PIXEL_MM = 1.0
"""Above this pixel size even a soft kernel's noise grain is below a pixel (the
correlation measured is near 0 for every kernel): the kernel stays unknown."""


def noise_and_correlation(grid: WorkGrid) -> tuple[float | None, float | None]:
    """(global noise SD in HU, neighbour noise correlation) from soft tissue.

    Both None when too little soft tissue is in view (e.g. a lung-only crop).
    """
    vol = grid.source
    vox = vol.voxels
    nz = vox.shape[0]
    sx, sy, _ = vol.spacing
    w = max(3, int(round(WINDOW_MM / max(min(sx, sy), 1e-3))) | 1)
    sds: list[np.ndarray] = []
    rhos: list[float] = []
    for k in np.linspace(0.2 * (nz - 1), 0.8 * (nz - 1), SAMPLE_SLICES).round().astype(int):
        img = vox[int(k)].astype(np.float32)
        mean = ndi.uniform_filter(img, w)
        sq = ndi.uniform_filter(img * img, w)
        sd = np.sqrt(np.maximum(sq - mean * mean, 0.0))
        tissue = (img >= TISSUE_HU[0]) & (img <= TISSUE_HU[1])
        # Whole windows of soft tissue only (no edge with fat, air or bone).
        full = ndi.uniform_filter(tissue.astype(np.float32), w) > 0.999
        if full.sum() < 50:
            continue
        sds.append(sd[full])
        # Noise correlation of neighbours where the window is at the modal noise
        # level (flat tissue): var of horizontal differences vs the local variance.
        dx = np.zeros_like(img)
        dx[:, :-1] = img[:, 1:] - img[:, :-1]
        ok = full.copy()
        ok[:, -1] = False
        ok &= sd <= np.median(sd[full])
        if ok.sum() >= 50:
            var = float(np.mean(sd[ok] ** 2))
            if var > 0:
                rhos.append(1.0 - float(np.mean(dx[ok] ** 2)) / (2.0 * var))
    if not sds:
        return None, None
    allsd = np.concatenate(sds)
    hist, edges = np.histogram(allsd, bins=np.arange(0.0, min(300.0, allsd.max() + 1.0), 0.5))
    if hist.size == 0:
        return None, None
    i = int(np.argmax(ndi.uniform_filter1d(hist.astype(float), 5)))
    noise = float((edges[i] + edges[i + 1]) / 2.0)
    rho = float(np.median(rhos)) if rhos else None
    return noise, rho


def kernel_class(header_kernel: str, rho: float | None, pixel_mm: float) -> tuple[str, str]:
    """("soft" | "sharp" | "unknown", why): the header name decides when known."""
    fam = kernel_family(header_kernel)
    measured = "" if rho is None else f"neighbour noise correlation {rho:.2f}"
    if fam is not KernelFamily.UNKNOWN:
        return fam.value, f"header kernel {header_kernel!r}" + (f"; {measured}" if measured
                                                                  else "")
    if rho is None:
        return "unknown", "no header kernel and too little soft tissue to measure"
    if pixel_mm > MAX_KERNEL_PIXEL_MM:
        return "unknown", (f"no header kernel; {pixel_mm:.1f} mm pixels are too coarse to "
                           f"judge it from the noise grain ({measured})")
    return ("sharp" if rho < SHARP_MAX_RHO else "soft"), measured


def image_conditions(grid: WorkGrid, anatomy: Anatomy, coverage: Coverage,
                     phase: tuple[str, str] | None = None) -> ImageConditions:
    """Kernel, noise, coverage and contrast phase (measured here unless given) of this volume."""
    vol = grid.source
    acq = vol.acquisition
    noise, rho = noise_and_correlation(grid)
    kernel, why = kernel_class(acq.convolution_kernel, rho, min(vol.spacing[:2]))
    contrast, evidence = phase if phase is not None else detect_contrast_phase(grid, anatomy)
    logger.info("image conditions: kernel %s (%s), noise %s HU, contrast %s", kernel, why,
                "?" if noise is None else f"{noise:.0f}", contrast)
    return ImageConditions(
        contrast_phase=contrast,
        contrast_evidence=evidence,
        kernel_class=kernel,
        noise_hu=noise,
        kvp=acq.kvp,
        slice_thickness_mm=vol.slice_thickness_mm,
        lungs_truncated=coverage.lungs_cut,
        body_truncated=coverage.body_truncated,
        coverage_notes=coverage.notes,
    )


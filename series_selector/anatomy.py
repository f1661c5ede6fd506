"""Is this a chest CT? Lung fields on the pixels, over enough of the z-range.

Headers lie or say nothing (BodyPartExamined is often empty, "PARTIALBODY" or
a local term), so the body part is checked on the image: a chest CT shows
aerated lung (about -950..-500 HU; normal parenchyma is near -850 HU) inside
the body outline on most of its slices; an abdominal or head CT does not.
Bowel gas is mostly pure air (below -950 HU) and is excluded by the range.

Only a subsample of slices is examined, averaged down to a few-mm pixel, so
the check costs a fraction of a second per series.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ctnode.settings import SelectionSettings
from series_selector.types import HUVolume, RuleResult, Verdict

logger = logging.getLogger(__name__)

RULE = "anatomy"
BODY_HU = -500.0  # soft tissue and bone are above; air and lung below
LUNG_MIN_HU = -950.0  # below: pure air (bowel gas, outside air) or severe emphysema
LUNG_MAX_HU = -500.0


@dataclass(frozen=True, slots=True)
class LungSurvey:
    """Lung area on each examined slice, and what it adds up to."""

    z_mm: tuple[float, ...]
    lung_cm2: tuple[float, ...]
    min_area_cm2: float
    coverage_mm: float

    @property
    def n_with_lung(self) -> int:
        return sum(a >= self.min_area_cm2 for a in self.lung_cm2)

    @property
    def fraction(self) -> float:
        return self.n_with_lung / len(self.lung_cm2) if self.lung_cm2 else 0.0

    @property
    def extent_mm(self) -> float:
        """Craniocaudal length the lung-bearing samples stand for."""
        return self.fraction * self.coverage_mm


def block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor`` x ``factor`` blocks: downsampling that also lowers noise."""
    if factor <= 1:
        return image.astype(np.float32, copy=False)
    h = image.shape[0] // factor * factor
    w = image.shape[1] // factor * factor
    view = image[:h, :w].astype(np.float32, copy=False)
    return view.reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))


def downsample_factor(pixel_spacing_mm: float, target_mm: float) -> int:
    return max(1, int(round(target_mm / max(pixel_spacing_mm, 1e-3))))


def lung_area_cm2(hu: np.ndarray, pixel_area_mm2: float) -> float:
    """Area of aerated lung inside the body on one (downsampled) slice."""
    body = hu > BODY_HU
    labels, n = ndimage.label(body)
    if n == 0:
        return 0.0
    sizes = ndimage.sum_labels(body, labels, index=np.arange(1, n + 1))
    patient = labels == (int(np.argmax(sizes)) + 1)
    inside = ndimage.binary_fill_holes(patient)
    lung = inside & ~patient & (hu >= LUNG_MIN_HU) & (hu <= LUNG_MAX_HU)
    lung = ndimage.binary_opening(lung)  # drop the thin partial-volume rim around gas
    return float(lung.sum()) * pixel_area_mm2 / 100.0


def survey(
    images: Sequence[np.ndarray],
    z_mm: Sequence[float],
    pixel_mm: tuple[float, float],
    coverage_mm: float,
    settings: SelectionSettings,
) -> LungSurvey:
    """Lung area on each given HU slice (full resolution; downsampled here)."""
    factor = downsample_factor(min(pixel_mm), settings.anatomy_pixel_mm)
    area = pixel_mm[0] * pixel_mm[1] * factor * factor
    areas = tuple(lung_area_cm2(block_mean(img, factor), area) for img in images)
    return LungSurvey(tuple(float(z) for z in z_mm), areas, settings.min_lung_area_cm2,
                      coverage_mm)


def judge(s: LungSurvey, settings: SelectionSettings) -> RuleResult:
    """Pass when lungs show on enough of the range, or over a chest's length anyway."""
    need = (f"{settings.min_lung_fraction_of_slices:.0%} of the range or "
            f"{settings.min_lung_extent_mm:.0f} mm needed")
    largest = max(s.lung_cm2) if s.lung_cm2 else 0.0
    if s.n_with_lung == 0:
        return RuleResult(RULE, Verdict.FAIL, "no_lung_fields",
                          f"shows no lung fields (at most {largest:.0f} cm2 of aerated lung on "
                          f"{len(s.lung_cm2)} examined slices): not a chest CT")
    if s.fraction >= settings.min_lung_fraction_of_slices or (
            s.extent_mm >= settings.min_lung_extent_mm):
        return RuleResult(RULE, Verdict.PASS, "lung_fields",
                          f"lung fields on {s.fraction:.0%} of the examined slices "
                          f"(about {s.extent_mm:.0f} mm, up to {largest:.0f} cm2)")
    return RuleResult(RULE, Verdict.FAIL, "too_little_lung",
                      f"shows lung fields on only {s.fraction:.0%} of its range (about "
                      f"{s.extent_mm:.0f} mm; {need}): not a chest CT")


def sample_indices(n: int, k: int) -> list[int]:
    """Up to ``k`` indices spread evenly over ``range(n)``, ends included."""
    if n <= k:
        return list(range(n))
    return sorted({int(round(v)) for v in np.linspace(0, n - 1, k)})


def check_chest_anatomy(volume: HUVolume, settings: SelectionSettings) -> RuleResult:
    """The lung-field check on any volume (DICOM-built or NIfTI).

    Assumes ``volume`` slices are roughly axial ([z] is head-feet), as
    ``load_volume`` and ``load_nifti`` deliver.
    """
    nz = volume.shape[0]
    idx = sample_indices(nz, settings.anatomy_sample_slices)
    sx, sy, sz = volume.spacing
    images = [np.asarray(volume.voxels[i], dtype=np.float32) for i in idx]
    result = judge(
        survey(images, [i * sz for i in idx], (sy, sx), (nz - 1) * sz, settings), settings
    )
    logger.info("chest anatomy check on volume %s: %s (%s)", volume.series_uid or "(nifti)",
                result.verdict.value, result.code)
    return result

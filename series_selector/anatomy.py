"""Is this a chest CT? Lung fields on the pixels, over enough of the z-range.

Headers lie or say nothing (BodyPartExamined is often empty, "PARTIALBODY" or
a local term), so the body part is checked on the image: a chest CT shows
aerated lung (about -950..-500 HU; normal parenchyma is near -850 HU) inside
the body outline on most of its slices; an abdominal or head CT does not.
Bowel gas is mostly pure air (below -950 HU) and is excluded by the range.

The lungs need not be closed holes in the body outline: a targeted field of
view (a chest CTA centred on the mediastinum) or a large patient cuts them at
the image border. An air region opening onto the border still counts as lung
when it looks like lung: most of its interior in the lung band (room air and
bowel gas are almost all below -950 HU), held by the patient on two sides (the
space under the back, pad and table, has the patient above it only) and thick.
Where the lungs are cut, and whether they reach the first or last
slice, is stated in the verdict (``series_selection``).

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
MAX_GAS_FRACTION = 0.35
"""A cut air region with more of its interior below -950 HU is room air or bowel
gas, not lung (normal lung ~1 %, even very severe emphysema ~25-40 %; the same
bound as ``inference.analyzer.lungs``)."""
MIN_DEPTH_MM = 10.0
"""A cut lung region holds a 20 mm disk (lungs are 10-20 cm across, and the parts a
targeted field keeps are thick); a foam pad cut off under the back is thinner."""
MIN_ENCLOSED = 0.8
"""Least share of a cut air region with patient tissue in two or more in-plane
directions, one across (``enclosed``). Measured on the work grid of crops of the
real shared cases (LIDC-IDRI 0001 at 70 % and 50 %, Lung-PET-CT-Dx A0001 at 50 %):
cut lungs 0.96-1.00, the space between back and table 0.67 (room air 0.2-0.5)."""
PADDING_MAX_HU = -1000.0
"""A pixel at the images' common minimum (<= -1000 HU) on every examined slice
lies outside the reconstruction circle (padding/clipping, never measured)."""


@dataclass(frozen=True, slots=True)
class SliceLung:
    """Aerated lung on one downsampled slice and where the image border cuts it."""

    area_cm2: float
    cut_lateral: bool = False
    cut_ap: bool = False


@dataclass(frozen=True, slots=True)
class LungSurvey:
    """Lung area on each examined slice, and what it adds up to."""

    z_mm: tuple[float, ...]
    lung_cm2: tuple[float, ...]
    min_area_cm2: float
    coverage_mm: float
    cut_lateral: int = 0  # examined slices whose lung the border cuts laterally
    cut_ap: int = 0  # ... anteriorly or posteriorly
    cranial_sign: int = 0  # +1: z_mm grows towards the head, -1 towards the feet, 0 unknown

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

    def coverage_notes(self) -> tuple[str, ...]:
        """What of the lungs the image leaves out, in words."""
        notes: list[str] = []
        if self.cut_lateral:
            notes.append(f"lungs truncated laterally by the image border on {self.cut_lateral} "
                         "examined slice(s) (targeted field of view)")
        if self.cut_ap:
            notes.append(f"lungs truncated anteriorly/posteriorly by the image border on "
                         f"{self.cut_ap} examined slice(s)")
        if self.lung_cm2 and len(self.z_mm) == len(self.lung_cm2):
            order = np.argsort(self.z_mm)
            ends = {1: self.lung_cm2[order[-1]], -1: self.lung_cm2[order[0]]}
            for sign, area in ends.items():
                if area < self.min_area_cm2:
                    continue
                if self.cranial_sign == 0:
                    notes.append("apices or bases not covered (lung fields on an end slice)")
                    break
                what = "apices" if sign == self.cranial_sign else "bases"
                notes.append(f"{what} not covered (lung fields on the "
                             f"{'upper' if what == 'apices' else 'lower'} end slice)")
        return tuple(notes)


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


def border_mask(shape: tuple[int, ...], outside: np.ndarray | None = None) -> np.ndarray:
    """Where the image ends: its outer ring and (grown by a pixel) what lies outside the field."""
    edge = np.zeros(shape[:2], dtype=bool)
    edge[0, :] = edge[-1, :] = edge[:, 0] = edge[:, -1] = True
    if outside is not None and outside.any():
        edge |= ndimage.binary_dilation(outside, iterations=1)
    return edge


def slice_lung(hu: np.ndarray, pixel_area_mm2: float, edge: np.ndarray | None = None
               ) -> SliceLung:
    """Aerated lung inside the body on one (downsampled) slice, closed or cut by the border."""
    body = hu > BODY_HU
    labels, n = ndimage.label(body)
    if n == 0:
        return SliceLung(0.0)
    sizes = ndimage.sum_labels(body, labels, index=np.arange(1, n + 1))
    patient = labels == (int(np.argmax(sizes)) + 1)
    inside = ndimage.binary_fill_holes(patient)
    band = (hu >= LUNG_MIN_HU) & (hu <= LUNG_MAX_HU)
    lung = inside & ~patient & band
    cut_lateral = cut_ap = False
    if edge is None:
        edge = border_mask(hu.shape)
    cut = _cut_lung(hu, inside, body, patient, edge, float(np.sqrt(pixel_area_mm2)))
    if cut.any():
        lung |= cut & band
        ys, xs = np.nonzero(cut & edge)
        h, w = hu.shape
        lateral = np.abs(xs - (w - 1) / 2.0) >= np.abs(ys - (h - 1) / 2.0)
        cut_lateral, cut_ap = bool(lateral.any()), bool((~lateral).any())
    lung = ndimage.binary_opening(lung)  # drop the thin partial-volume rim around gas
    return SliceLung(float(lung.sum()) * pixel_area_mm2 / 100.0, cut_lateral, cut_ap)


def _cut_lung(hu: np.ndarray, inside: np.ndarray, body: np.ndarray, patient: np.ndarray,
              edge: np.ndarray, pixel_mm: float) -> np.ndarray:
    """Air regions outside the patient's outline that reach the border and look like lung."""
    air = ndimage.binary_fill_holes(~inside & ~body) & ~inside  # a cut lung's vessels: holes
    labels, n = ndimage.label(air)
    if n == 0:
        return np.zeros_like(air)
    idx = labels.ravel()
    on_edge = np.bincount(idx, weights=edge.ravel(), minlength=n + 1)
    inner = ndimage.binary_erosion(air)
    inner_n = np.bincount(idx, weights=inner.ravel(), minlength=n + 1)
    inner_gas = np.bincount(idx, weights=(inner & (hu < LUNG_MIN_HU)).ravel(), minlength=n + 1)
    held = np.bincount(idx, weights=(air & enclosed(patient)).ravel(), minlength=n + 1)
    size = np.bincount(idx, minlength=n + 1)
    depth = np.zeros(n + 1)
    depth[1:] = ndimage.maximum(ndimage.distance_transform_edt(air, sampling=pixel_mm),
                                labels, index=np.arange(1, n + 1))
    keep = ((on_edge > 0) & (inner_n > 0) & (depth >= MIN_DEPTH_MM)
            & (inner_gas <= MAX_GAS_FRACTION * np.maximum(inner_n, 1))
            & (held >= MIN_ENCLOSED * size))
    keep[0] = False
    return keep[labels]


def enclosed(patient: np.ndarray) -> np.ndarray:
    """Pixels with patient tissue in two or more of the four in-plane directions,
    one of them along the row (to the patient's left or right).

    A lung cut by the border is still held by the mediastinum on its medial side
    and by the chest wall or the back on another; the space under the back
    (pad, air, table) has the patient above it only. Works on [..., y, x] arrays.
    """
    def ahead(axis: int, flip: bool) -> np.ndarray:
        p = np.flip(patient, axis=axis) if flip else patient
        hit = np.maximum.accumulate(p, axis=axis)
        return np.flip(hit, axis=axis) if flip else hit

    across = [ahead(patient.ndim - 1, flip) for flip in (False, True)]
    along = [ahead(patient.ndim - 2, flip) for flip in (False, True)]
    count = sum(m.astype(np.uint8) for m in (*across, *along))
    return np.asarray((count >= 2) & (across[0] | across[1]))


def lung_area_cm2(hu: np.ndarray, pixel_area_mm2: float) -> float:
    """Area of aerated lung inside the body on one (downsampled) slice."""
    return slice_lung(hu, pixel_area_mm2).area_cm2


def outside_field(images: Sequence[np.ndarray]) -> np.ndarray | None:
    """Pixels at the common minimum (<= -1000 HU) on every image: outside the field."""
    if len(images) < 2:
        return None
    vmin = min(float(np.min(img)) for img in images)
    if vmin > PADDING_MAX_HU:
        return None
    out = np.ones(images[0].shape, dtype=bool)
    for img in images:
        out &= img == vmin
    return circle_complement(out)


def circle_complement(candidates: np.ndarray) -> np.ndarray:
    """The part of ``candidates`` outside a centred disk that holds every other pixel.

    The reconstruction circle is centred on the matrix. Air clipped to the
    minimum on every slice (some scanners store air at -1024 without noise) is
    irregular and lies next to measured pixels at every radius, so it yields no
    clean disk complement and is not mistaken for the end of the field.
    """
    if not candidates.any() or candidates.all():
        return np.zeros_like(candidates)
    ny, nx = candidates.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    d = np.hypot(yy - (ny - 1) / 2.0, xx - (nx - 1) / 2.0)
    return d > float(d[~candidates].max()) + 1.0


def survey(
    images: Sequence[np.ndarray],
    z_mm: Sequence[float],
    pixel_mm: tuple[float, float],
    coverage_mm: float,
    settings: SelectionSettings,
    cranial_sign: int = 0,
) -> LungSurvey:
    """Lung area on each given HU slice (full resolution; downsampled here)."""
    factor = downsample_factor(min(pixel_mm), settings.anatomy_pixel_mm)
    area = pixel_mm[0] * pixel_mm[1] * factor * factor
    outside = outside_field(images)
    small = [block_mean(img, factor) for img in images]
    edge = None
    if small:
        out_small = None
        if outside is not None:
            out_small = block_mean(outside.astype(np.float32), factor) > 0
        edge = border_mask(small[0].shape, out_small)
    lungs = [slice_lung(img, area, edge) for img in small]
    with_lung = [s for s in lungs if s.area_cm2 >= settings.min_lung_area_cm2]
    return LungSurvey(tuple(float(z) for z in z_mm), tuple(s.area_cm2 for s in lungs),
                      settings.min_lung_area_cm2, coverage_mm,
                      cut_lateral=sum(s.cut_lateral for s in with_lung),
                      cut_ap=sum(s.cut_ap for s in with_lung), cranial_sign=cranial_sign)


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
        coverage = "".join(f"; {n}" for n in s.coverage_notes())
        return RuleResult(RULE, Verdict.PASS, "lung_fields",
                          f"lung fields on {s.fraction:.0%} of the examined slices "
                          f"(about {s.extent_mm:.0f} mm, up to {largest:.0f} cm2){coverage}")
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
    d = np.asarray(volume.direction, dtype=float).reshape(3, 3)
    cranial = 1 if d[2, 2] >= 0 else -1
    result = judge(
        survey(images, [i * sz for i in idx], (sy, sx), (nz - 1) * sz, settings, cranial),
        settings,
    )
    logger.info("chest anatomy check on volume %s: %s (%s)", volume.series_uid or "(nifti)",
                result.verdict.value, result.code)
    return result

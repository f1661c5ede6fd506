"""Lung density measures: volumes, emphysema index, opacity fractions.

- LAA%-950: percentage of lung voxels below -950 HU, the emphysema index
  validated against pathology by Gevenois et al. (AJRCCM 1996;154:187) and
  used by COPDGene / Fleischner Society statement (Lynch et al., Radiology
  2015;277:192). Perc15 (the 15th percentile of the lung histogram) is the
  density measure recommended for longitudinal studies (Parr et al. 2006).
  Both depend on kernel and slice thickness: thick soft-kernel series read
  lower, sharp kernels higher (Boedeker et al., Radiology 2004).
- ``laa950_smoothed``: LAA%-950 again after an in-plane Gaussian of
  ``LAA_SMOOTH_MM``: a check of the count, not a second index. Image noise
  (lower dose: den Harder et al., Eur Radiol Exp 2018;2:30) and the overshoot of
  a sharp kernel (Boedeker 2004; Gallardo-Estrella et al., Eur Radiol
  2016;26:478) push voxels of normal lung below -950 HU one by one; the smoothing
  takes them back, as noise filtering does in Schilham et al. (IEEE TMI
  2006;25:451), while an emphysematous space of 2 mm or more keeps its core
  below -950 HU. ``mapping`` withholds the emphysema call when the two counts
  give probabilities 0.15 or more apart (``mapping.LAA_SMOOTHING_MAX_DP``).
- Opacity: ground glass about -700..-300 HU, consolidation -300..+50 HU
  (Fleischner glossary, Hansell et al., Radiology 2008;246:697 for the
  patterns; HU bands as in Lederer et al.'s high-attenuation area). Vessels are
  suppressed by an opening with a 4.5 mm ball: intraparenchymal vessels away
  from the hila are narrower than 9 mm, opacities are blobs larger than that.
  A reader calls a focal opacity, so the findings read the largest connected
  region (``ggo_largest``, ``consolidation_largest``), not a diffuse
  fraction that the lungs' own partial volume reaches on normal scans.
- Ground glass is read on its own band (issue 13). On normal scans (three real
  chest CTs, a normal phantom) the largest -700..+50 HU region that survives
  the 9 mm opening is never ground glass: it is a lobar vessel or a
  vessel-bronchus bundle near the hilum (up to ~16 mm), or a nodule, whose
  blurred edge puts a thin rind in the -700..-300 HU band. Ground glass is
  therefore the -700..-300 HU voxels that hold a 12 mm ball
  (``GGO_CORE_RADIUS_MM``): a rind around solid tissue is a few mm thick and
  holds none. A ground-glass region that touches a mass the nodule stage
  calls (a candidate that holds a 20 mm ball, ``nodules.MASS_CORE_RADIUS_MM``,
  and scores at least ``MARGIN_OF_SCORE``; the hila are weighed down there, so
  a hilum is not a mass here either) is that mass's ground-glass margin or
  subsolid part (halo sign, part-solid lesion: Hansell et al. 2008), read by
  ``lung_mass``, not a second finding. A nodule's margin is thinner than the
  12 mm ball. The opening
  can cut such a margin at a neck into pieces (on a softer or sharper kernel, issue 12);
  pieces joined through band voxels within one ball radius of them are one region, and
  all of it is the mass's margin when any piece touches the mass.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from inference.analyzer.evidence import component_evidence
from inference.analyzer.morphology import CROSS, crop_box, open_ball, shrink
from inference.analyzer.nodules import MASS_CORE_RADIUS_MM, lesion_mask
from inference.analyzer.types import Anatomy, Lesion, Measure, WorkGrid
from inference.types import Evidence

logger = logging.getLogger(__name__)

GGO_BAND = (-700.0, -300.0)
CONSOLIDATION_BAND = (-300.0, 50.0)
"""Ground glass and consolidation density bands (Hansell et al. 2008 for the patterns;
the bands of Lederer et al.'s high-attenuation area, AJRCCM 2009, split at -300 HU)."""
VESSEL_RADIUS_MM = 4.5
"""Radius of the opening ball: removes tubes narrower than 9 mm, i.e. the segmental and
smaller pulmonary arteries and veins of the parenchyma (at most ~8 mm across; standard
anatomy). Lobar vessels near the hila survive it: the reason the hila are excluded by
the lung mask's erosion and, for lesions, weighed in ``nodules.SHAPE_MODEL``."""
MIN_OPACITY_ML = 1.0
"""Smallest region kept as opacity: a 12 mm sphere, twice the opening ball's volume
(smaller survivors of the opening are vessel crossings)."""
GGO_CORE_RADIUS_MM = 6.0
"""Radius of the ball a ground-glass region must hold (phantom physics): larger than the
4.5 mm vessel ball, and more than twice the thickness of the -700..-300 HU rind that the
blur puts around solid tissue (1.3 sigma, sigma ~2 mm: 1.5 mm smoothing, scanner blur and
the 2 mm work grid), so that no rind of a vessel, bronchial wall or nodule holds it. A
12 mm ball is also the smallest ground glass the phantom cohort calls reportable (10-15 mm,
``phantom.cohort``)."""
GGO_MIN_ML = 1.81
"""Twice the volume of the ``GGO_CORE_RADIUS_MM`` ball (1.81 ml), the same rule as
``MIN_OPACITY_ML``: one ball (and the regions just above) is what a chance blur of two
rinds leaves; the ground-glass rule is centred here (``AnalyzerSettings.opacity_ml``)."""
MARGIN_OF_SCORE = 0.5
"""Ground glass is read as a mass's margin only when the nodule stage calls that mass a
lesion (its score at the decision threshold): the margin is then reported with it. Beside
a blob it does not call, such as a phantom's hilum holding a 20 mm ball (score 0.13 on a
1.5 mm grid), ground glass is its own finding (issue 12: a 45 mm ground-glass preset next
to the hilum went unreported on a 256 matrix)."""
HALO_CONTACT_MM = 5.0
"""A ground-glass region this close to a mass is that mass's margin (phantom physics: two
2-2.7 mm work voxels, the rind between the two bands)."""
LAA_SMOOTH_MM = 0.7
"""In-plane Gaussian SD of the ``laa950_smoothed`` check (phantom physics): a round space
of -1000 HU in -860 HU lung keeps its centre below -950 HU after a Gaussian of SD s when its
radius r satisfies exp(-r^2 / 2 s^2) < 1 - 90/140, i.e. r > 1.43 s: 1 mm (a 2 mm space)
at 0.7 mm, the scale of a thin-section pixel (0.6-0.8 mm). Noise grains and kernel
overshoot (one to two pixels) are averaged with the lung around them."""
HIST_MIN = -1100
HIST_MAX = 400
"""Lung histogram range (1 HU bins): air below -1000 plus noise, up to dense tissue."""


def _lung_slabs(grid: WorkGrid, lungs: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Each work slice that holds lung: its full-resolution source slices and its lung mask
    at full in-plane resolution.

    One slab at a time, so the full-size mask never exists at once; the histogram and the
    smoothed count read the same slabs in one walk (``full_resolution_density``).
    """
    fz, fy, fx = grid.factors
    vox = grid.source.voxels
    nz, ny, nx = vox.shape
    for k in np.nonzero(lungs.any(axis=(1, 2)))[0]:
        m2 = np.repeat(np.repeat(lungs[k], fy, axis=0), fx, axis=1)[:ny, :nx]
        yield vox[k * fz:min(nz, (k + 1) * fz)], m2


def _slab_histogram(slab: np.ndarray, m2: np.ndarray) -> np.ndarray:
    """HU histogram (1 HU bins from HIST_MIN) of the slab's voxels inside ``m2``."""
    vals = slab[:, m2].astype(np.int32).ravel()
    np.clip(vals, HIST_MIN, HIST_MAX, out=vals)
    return np.bincount(vals - HIST_MIN, minlength=HIST_MAX - HIST_MIN + 1)


def _slab_smoothed_low(slab: np.ndarray, m2: np.ndarray, sigma_yx: tuple[float, float]
                       ) -> tuple[int, int]:
    """(voxels inside ``m2``, those below -950 HU) after an in-plane Gaussian, slice by
    slice so only one smoothed slice exists at a time."""
    n = low = 0
    box = _reach_box(m2, sigma_yx)
    if box is None:
        return n, low
    inner = m2[box]
    for z in range(slab.shape[0]):
        vals = ndi.gaussian_filter(slab[z][box].astype(np.float32), sigma_yx)[inner]
        n += vals.size
        low += int(np.count_nonzero(vals < -950.0))
    return n, low


def _reach_box(m2: np.ndarray, sigma_yx: tuple[float, float]) -> tuple[slice, slice] | None:
    """The box of ``m2`` grown by the Gaussian's reach (``gaussian_filter``'s kernel radius,
    ``int(4 sigma + 0.5)``, plus one pixel): a pixel of ``m2`` smoothed in that box holds
    the value it has smoothed in the whole slice (the same weights over the same
    neighbours; where the box meets the slice's edge, the same reflection). The lungs
    fill a third of a slice; the whole-slice filters cost most of the density stage."""
    rows = np.nonzero(m2.any(axis=1))[0]
    if rows.size == 0:
        return None
    cols = np.nonzero(m2.any(axis=0))[0]
    ry, rx = (int(4.0 * s + 0.5) + 1 for s in sigma_yx)
    return (slice(max(0, rows[0] - ry), min(m2.shape[0], rows[-1] + 1 + ry)),
            slice(max(0, cols[0] - rx), min(m2.shape[1], cols[-1] + 1 + rx)))


def full_resolution_density(grid: WorkGrid, lungs: np.ndarray,
                            sigma_mm: float = LAA_SMOOTH_MM) -> tuple[np.ndarray, float]:
    """The full-resolution HU histogram inside the lung mask (1 HU bins from HIST_MIN) and the
    LAA%-950 (%) after an in-plane Gaussian of ``sigma_mm`` (module doc), from one walk over
    the lung slabs."""
    sx, sy, _ = grid.source.spacing
    sigma_yx = (sigma_mm / sy, sigma_mm / sx)
    hist = np.zeros(HIST_MAX - HIST_MIN + 1, dtype=np.int64)
    n = low = 0
    for slab, m2 in _lung_slabs(grid, lungs):
        hist += _slab_histogram(slab, m2)
        dn, dlow = _slab_smoothed_low(slab, m2, sigma_yx)
        n += dn
        low += dlow
    return hist, (100.0 * low / n if n else 0.0)


def density_measures(grid: WorkGrid, anatomy: Anatomy, pleural_air: np.ndarray
                     ) -> dict[str, Measure]:
    """Lung volumes, LAA%-950, Perc15, mean lung density, largest low-attenuation cluster.

    ``pleural_air`` (a pneumothorax) is gas outside the lung: not emphysema.
    """
    lungs = anatomy.lungs & ~pleural_air
    ml = grid.voxel_ml
    out: dict[str, Measure] = {}
    for name, mask, desc in (("lung_volume_left", anatomy.lung_left & lungs, "left lung volume"),
                             ("lung_volume_right", anatomy.lung_right & lungs,
                              "right lung volume"),
                             ("lung_volume", lungs, "total lung volume")):
        out[name] = Measure(name, float(mask.sum()) * ml, "ml", desc)
    hist, laa_smoothed = full_resolution_density(grid, lungs)
    n = hist.sum()
    hu = np.arange(HIST_MIN, HIST_MAX + 1)
    laa = float(hist[hu < -950].sum()) / n * 100.0
    laa910 = float(hist[hu < -910].sum()) / n * 100.0
    cdf = np.cumsum(hist) / n
    perc15 = float(hu[int(np.searchsorted(cdf, 0.15))])
    mld = float((hist * hu).sum() / n)
    evidence: tuple[Evidence, ...] = ()
    low = (grid.hu < -950) & lungs
    labels, nl = ndi.label(low)
    largest_ml = 0.0
    if nl:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        big = int(np.argmax(sizes))
        largest_ml = float(sizes[big]) * ml
        if largest_ml >= 0.5:
            evidence = (component_evidence(grid, labels == big,
                                           "largest low-attenuation (<-950 HU) cluster"),)
    out["laa950"] = Measure("laa950", laa, "%", "lung volume below -950 HU (LAA%-950)",
                            evidence)
    out["laa950_smoothed"] = Measure(
        "laa950_smoothed", laa_smoothed, "%",
        f"LAA%-950 after {LAA_SMOOTH_MM:g} mm in-plane smoothing (check of the count)")
    out["laa910"] = Measure("laa910", laa910, "%", "lung volume below -910 HU")
    out["perc15"] = Measure("perc15", perc15, "[hnsf'U]", "15th percentile of lung density")
    out["mean_lung_density"] = Measure("mean_lung_density", mld, "[hnsf'U]",
                                       "mean lung density")
    out["laa_largest_cluster"] = Measure("laa_largest_cluster", largest_ml, "ml",
                                         "largest connected cluster below -950 HU")
    return out


def opacity_mask(grid: WorkGrid, anatomy: Anatomy) -> np.ndarray:
    """Vessel-suppressed voxels of the lung denser than -700 HU (work grid)."""
    lungs = anatomy.lungs
    hu = grid.smoothed()
    dense = lungs & (hu >= GGO_BAND[0]) & (hu <= CONSOLIDATION_BAND[1])
    # The lung's own rim is partial volume with the chest wall and diaphragm.
    inner = shrink(lungs, structure=CROSS)
    dense &= inner
    opened = open_ball(dense, VESSEL_RADIUS_MM, grid.spacing_zyx)
    # Vessel crossings that survive the opening are small isolated blobs; an
    # opacity a reader calls one is at least ~1 ml (a 12 mm sphere).
    labels, n = ndi.label(opened)
    if n == 0:
        return opened
    sizes = np.bincount(labels.ravel()) * grid.voxel_ml
    keep = sizes >= MIN_OPACITY_ML
    keep[0] = False
    return keep[labels]


def ground_glass_mask(grid: WorkGrid, anatomy: Anatomy, hu: np.ndarray,
                      masses: np.ndarray | None = None) -> np.ndarray:
    """Ground-glass regions: -700..-300 HU voxels of the lung that hold a 12 mm ball, less
    the margins of ``masses`` (the nodule stage's mass candidates, ``mass_mask``; module doc).
    """
    sp = grid.spacing_zyx
    lungs = anatomy.lungs
    inner = shrink(lungs, structure=CROSS)
    band = inner & (hu >= GGO_BAND[0]) & (hu < GGO_BAND[1])
    ggo = open_ball(band, GGO_CORE_RADIUS_MM, sp)
    if not ggo.any() or masses is None:
        return ggo
    # The opening cuts a mass's ground-glass margin at its necks (narrower than the ball),
    # more so on a blurred image (softer kernel, thicker slices: issue 12); the pieces are
    # still joined through the band near them, and all are that mass's margin.
    return _without_touching(ggo, masses, HALO_CONTACT_MM, sp, band, GGO_CORE_RADIUS_MM)


def mass_mask(grid: WorkGrid, lesions: list[Lesion]) -> np.ndarray:
    """The masses the nodule stage calls: candidates that hold a mass's ball
    (``nodules.MASS_CORE_RADIUS_MM``) and score at least ``MARGIN_OF_SCORE``. The hila,
    which that stage weighs down however thick, are not among them."""
    return lesion_mask(grid, [les for les in lesions if les.radius_mm >= MASS_CORE_RADIUS_MM],
                       min_score=MARGIN_OF_SCORE)


def _without_touching(regions: np.ndarray, other: np.ndarray, within_mm: float,
                      spacing_zyx: tuple[float, float, float],
                      bridge: np.ndarray | None = None, bridge_mm: float = 0.0) -> np.ndarray:
    """``regions`` less its connected components that come within ``within_mm`` of ``other``.

    With ``bridge``, components joined through ``bridge`` voxels that lie within
    ``bridge_mm`` of them count as one.
    """
    margin = int(np.ceil(within_mm / min(spacing_zyx))) + 1
    box = crop_box(regions, margin=margin)
    if box is None or not other[box].any():
        return regions
    near = ndi.distance_transform_edt(~other[box], sampling=spacing_zyx) <= within_mm
    joined = regions[box]
    if bridge is not None:
        # Pieces joined through ``bridge`` within ``bridge_mm`` of them are one region.
        close = ndi.distance_transform_edt(~joined, sampling=spacing_zyx) <= bridge_mm
        joined = joined | (bridge[box] & close)
    labels, n = ndi.label(joined)
    labels[~regions[box]] = 0
    touching = np.bincount(labels.ravel(), weights=near.ravel(), minlength=n + 1) > 0
    touching[0] = False
    out = regions.copy()
    out[box] &= ~touching[labels]
    return out


def opacity_measures(grid: WorkGrid, anatomy: Anatomy, opacity: np.ndarray,
                     masses: np.ndarray | None = None) -> dict[str, Measure]:
    """Ground-glass and consolidation fractions of each lung and the largest clusters.

    ``masses``: the nodule stage's mass candidates (``mass_mask``), whose ground-glass
    margins are not ground-glass regions of their own.
    """
    ml = grid.voxel_ml
    out: dict[str, Measure] = {}
    hu = grid.smoothed()
    ground_glass = ground_glass_mask(grid, anatomy, hu, masses)
    ggo = opacity & (hu < GGO_BAND[1])
    cons = opacity & (hu >= CONSOLIDATION_BAND[0])
    for side, lung in (("left", anatomy.lung_left), ("right", anatomy.lung_right),
                       ("", anatomy.lungs)):
        vol = max(float(lung.sum()), 1.0)
        suffix = f"_{side}" if side else ""
        where = f"{side} lung" if side else "lungs"
        out[f"ggo_fraction{suffix}"] = Measure(
            f"ggo_fraction{suffix}", float((ggo & lung).sum()) / vol * 100.0, "%",
            f"ground-glass (-700..-300 HU, vessels removed) % of {where}")
        out[f"consolidation_fraction{suffix}"] = Measure(
            f"consolidation_fraction{suffix}", float((cons & lung).sum()) / vol * 100.0, "%",
            f"consolidation (-300..+50 HU, vessels removed) % of {where}")
    ggo_pct = float((ggo & anatomy.lungs).sum()) / max(float(anatomy.lungs.sum()), 1.0) * 100.0
    cons_pct = float((cons & anatomy.lungs).sum()) / max(float(anatomy.lungs.sum()), 1.0) * 100.0
    out["opacity_fraction"] = Measure(
        "opacity_fraction", ggo_pct + cons_pct,
        "%", "all opacity (-700..+50 HU, vessels removed) % of lungs")
    ggo_parts, cons_parts = _components(ground_glass), _components(cons)
    out["opacity_largest"] = Measure(
        "opacity_largest", _largest_ml(_components(opacity), ml), "ml",
        "largest connected opacity (-700..+50 HU, vessels removed)")
    out["ggo_largest"] = Measure(
        "ggo_largest", _largest_ml(ggo_parts, ml), "ml",
        "largest ground-glass region (-700..-300 HU holding a 12 mm ball, margins of "
        "masses removed)",
        _largest_evidence(grid, ggo_parts, "largest ground-glass region"))
    out["consolidation_volume"] = Measure(
        "consolidation_volume", float(cons.sum()) * ml, "ml",
        "consolidation volume (-300..+50 HU, vessels removed)",
        _largest_evidence(grid, cons_parts, "largest consolidation"))
    out["consolidation_largest"] = Measure(
        "consolidation_largest", _largest_ml(cons_parts, ml), "ml",
        "largest connected consolidation (-300..+50 HU, vessels removed)")
    out["ggo_volume"] = Measure("ggo_volume", float(ggo.sum()) * ml, "ml",
                                "ground-glass volume (-700..-300 HU, vessels removed)")
    return out


@dataclass(frozen=True, slots=True, eq=False)
class _Components:
    """A mask's connected components, labelled in its bounding box (the same components
    in the same order as over the whole volume, at a fraction of the cost); ``sizes`` in
    voxels, 0 for the background. Labelled once for the largest's size and evidence."""

    shape: tuple[int, ...]
    box: tuple[slice, ...] | None
    labels: np.ndarray
    sizes: np.ndarray


def _components(mask: np.ndarray) -> _Components:
    box = crop_box(mask)
    labels = ndi.label(mask[box])[0] if box is not None else np.zeros(1, dtype=np.int32)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return _Components(mask.shape, box, labels, sizes)


def _largest_evidence(grid: WorkGrid, parts: _Components, what: str) -> tuple[Evidence, ...]:
    if parts.box is None:
        return ()
    big = int(np.argmax(parts.sizes))
    if parts.sizes[big] * grid.voxel_ml < MIN_OPACITY_ML:
        return ()
    comp = np.zeros(parts.shape, dtype=bool)
    comp[parts.box] = parts.labels == big
    return (component_evidence(grid, comp, what),)


def _largest_ml(parts: _Components, voxel_ml: float) -> float:
    if parts.box is None:
        return 0.0
    return float(parts.sizes.max()) * voxel_ml

"""Mediastinum, heart, cardiothoracic ratio, contrast phase and pericardial fluid.

- Mediastinum: on each slice, what lies inside the convex hull of the two
  lungs but outside them (and outside the 30 mm-closed lungs).
- Heart: the largest soft-tissue body of the mediastinum in front of the spine,
  seeded on the slice of largest aerated lung cross-section (just above the domes,
  beside the ventricles; not at a fixed fraction of the lung height, which fails when
  only part of the lungs is in view), followed up until it narrows into the great vessels and
  down until the liver dome joins. The axial cardiothoracic ratio is taken on ONE
  slice: the heart's widest transverse diameter over the inner thoracic diameter
  on that same slice (the axial CT measure; radiographic CTR uses two levels). It is
  not assessed when the heart or that slice's thorax is cut by the image border.
  Read against 0.5 (Danzer 1919); published axial-CT cut-offs lie between
  0.5 and 0.55, so the curve is wide (scale 0.025).
- Contrast: an enhanced blood pool (``contrast.enhanced_pool``: 130-700 HU at
  120 kVp, >= 20 ml, away from cortex) means the study is enhanced; the soft-tissue
  band then reaches 600 HU and pericardial fluid becomes assessable.
- Pericardial fluid: water-density (-10..+25 HU) shell on the heart surface;
  reported as its thickness (normal pericardium is <= 2 mm, an effusion is
  called at >= 4 mm: Bogaert & Francone, Radiology 2013;267:340). Unenhanced
  myocardium (~40 HU) is only ~25 HU above fluid, so the band is set narrow.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage as ndi

from inference.analyzer.contrast import enhanced_pool
from inference.analyzer.evidence import component_evidence
from inference.analyzer.morphology import (
    ball_mm,
    convex_hull_2d,
    crop_box,
    disk,
    open_in_box,
    shrink,
)
from inference.analyzer.types import Anatomy, Measure, WorkGrid

logger = logging.getLogger(__name__)

SOFT_HU = (-30.0, 100.0)
NOISY_HU = 35.0
"""Noise SD above which density thresholds are biased (soft kernels at standard
dose are 10-25 HU in blood)."""
FLUID_HU = (-10.0, 25.0)
"""Pericardial fluid: water density (0-20 HU for a transudate, Bogaert & Francone,
Radiology 2013;267:340) with a margin for noise, 10 HU below and only 5 HU above:
unenhanced myocardium (~40 HU) is only ~25 HU above fluid (module doc)."""
PLATEAU = 0.9
"""Slices whose lung cross-section is within 10 % of the largest (the seed's plateau)."""
WIDTH_PERCENTILE = 85.0
"""Per-slice heart widths: the 85th percentile stands for the widest (a few slices
where the IVC or the liver dome joins the outline must not decide)."""
TOP_NARROWING = 0.5
"""Going up, the heart ends where its cross-section falls below half of its largest:
the great vessels at its base are far narrower than the ventricles."""
MIN_PERICARDIAL_LAYER_ML = 10.0
"""Least volume of one fluid collection on the heart counted as pericardial fluid: a layer
at the effusion threshold (4 mm, Bogaert & Francone 2013) over 25 cm2, a tenth of an
adult heart's ~250-300 cm2 surface. Geometry, not a fit: pericardial fluid is free in the
sac and spreads as a layer (first behind the left ventricle, supine). Water-density pockets
in a heart mask (unenhanced myocardium or a fat/blood partial volume on an arterial-phase
study, fluid in a pericardial recess) hold < 1 ml: 0.13 and 0.2 ml on LIDC-IDRI 0001
(crop70) and 0003, where 4-6 mm pockets read as effusions."""
BAND_NOISE_HU = 20.0
"""Noise (``image_noise_hint``) above which the soft-tissue band is read on a smoothed
copy. Statistics: blood (~40 HU unenhanced) lies 60-70 HU inside the -30..100 HU band;
at 20 HU noise that is 3 SD, so 0.3 % of blood voxels fall out of the band, and an
8-mm opening disk (~70 voxels on a 1.7 mm grid) still fits in the ventricles (0.997^70
= 0.8). At 30 HU (2 SD, 5 % out) hardly any disk fits and the heart falls apart."""
VENTRICLE_SHARE = 0.10
"""Share of the thorax's cross-section (lungs and mediastinum) from which the heart is
tracked as ventricles, where a regrowth or a jump to the right means the liver dome;
below it (great vessels at the base) a far larger component that holds the heart of the
slice above continues it (the ventricles, or a sac full of fluid).
Geometry: the great vessels at the heart's base (aorta <= 40 mm, pulmonary trunk <= 29 mm,
superior vena cava ~20 mm: Hager 2002, Truong 2012) hold <= 22 cm2, <= 7 % of an adult
thorax's ~300-400 cm2; the ventricles of a heart a third of the thoracic width wide
(CTR 0.35, depth ~0.8 of its width, thoracic depth ~0.65 of its width) hold >= 15 %.
Ratios, so a child's chest scales alike. Checked, not fitted: 6-7 % at the base of the
256-matrix effusion phantom, 16-48 % at the dome on phantoms and the three real cases."""
FAT_MID_HU = -120.0
"""Middle of the fat window -195..-45 HU (Rosito et al., Circulation 2008;117:605,
Framingham Heart Study): where fat lies when the soft-tissue band's lower edge is read on
a smoothed copy (``_soft_band``)."""
VERTEBRA_HEIGHT_MM = 20.0
"""Height of a mid-thoracic vertebral body, about 17-23 mm in adults (Panjabi et al.,
Spine 1991;16:888, "Thoracic human vertebrae: quantitative three-dimensional anatomy");
the window of the running median of the spine's anterior edge (``_spine_front``)."""
DOME_JUMP_MM = 8.0
"""A heart border that moves this much to the patient's right from one slice to
the next (going down) has met the liver dome."""


def mediastinum(anatomy: Anatomy, ext: np.ndarray) -> np.ndarray:
    """Per-slice region between the lungs (convex hull of both lungs minus the lungs)."""
    med = np.zeros_like(ext)
    both = anatomy.lung_left.any(axis=(1, 2)) & anatomy.lung_right.any(axis=(1, 2))
    for k in np.nonzero(both)[0]:
        hull = convex_hull_2d(ext[k])
        med[k] = hull & ~ext[k] & anatomy.body[k]
    return med


def heart_mask(grid: WorkGrid, anatomy: Anatomy, med: np.ndarray,
               spine: np.ndarray) -> tuple[np.ndarray, bool]:
    """(heart, contrast): soft tissue of the lower mediastinum, tracked from mid-heart.

    The liver dome rises between the lung bases with the same attenuation as
    the heart and touches it through the diaphragm. So the heart is seeded above
    the dome (``_seed_slice``) and followed slice by slice (``_track``); an 8 mm
    opening per slice cuts the diaphragm bridge, and a component joins only
    if it overlaps the heart of the previous slice. The first track only finds
    the heart: it is tracked again from its widest slice, so that a seed on the
    great vessels (an effusion moved it) neither keeps them nor stops at the base.
    """
    empty = np.zeros_like(med)
    lung_slices = np.nonzero(anatomy.lungs.any(axis=(1, 2)))[0]
    if lung_slices.size < 4:
        return empty, False
    ordered = lung_slices if anatomy.cranial_sign > 0 else lung_slices[::-1]
    both = np.asarray(anatomy.lung_left.any(axis=(1, 2)) & anatomy.lung_right.any(axis=(1, 2)))
    levels = np.asarray([int(k) for k in ordered if both[k]], dtype=np.int64)
    if levels.size < 2:
        return empty, False
    region = np.zeros_like(med)
    region[levels] = med[levels]
    # In front of the spine: drop rows behind the anterior edge of the vertebral body.
    edges = _spine_front(spine, anatomy.anterior_sign, grid.spacing_zyx[0],
                         grid.spacing_zyx[1])
    for k in levels:
        if k in edges:
            if anatomy.anterior_sign < 0:
                region[k, edges[k]:, :] = False
            else:
                region[k, : edges[k] + 1, :] = False
    contrast = _enhanced(grid, region)
    hi = 600.0 if contrast else SOFT_HU[1]
    soft = region & _soft_band(grid, hi)
    r = max(1, int(round(8.0 / grid.spacing_zyx[1])))
    opened = open_in_box(soft, disk(r))  # each slice opened in plane
    seed_k = _seed_slice(anatomy, levels)
    thorax = (anatomy.lungs | med).sum(axis=(1, 2)).astype(float)
    heart = _track(grid, anatomy, opened, ordered, levels, seed_k, thorax)
    # A seed at the heart's base (an effusion took lung area at the ventricles' level)
    # grows down into the ventricles; the heart's widest slice, then, is a surer seed,
    # and from there the top is where the cross-section narrows into the great vessels.
    area = heart.sum(axis=(1, 2))
    if area.any() and int(np.argmax(area)) != seed_k:
        heart = _track(grid, anatomy, opened, ordered, levels, int(np.argmax(area)), thorax)
    return heart, contrast


def _spine_front(spine: np.ndarray, anterior_sign: int, dz_mm: float, dy_mm: float
                 ) -> dict[int, int]:
    """Row of the vertebral column's anterior edge per slice, as a running median along z.

    The column's front (bodies and discs) is continuous and changes little over a
    vertebral body's height, while a slice's spine mask can hold a stray body in front of
    it (on a real arterial-phase study cropped off-centre, 4 ml of the posterior
    mediastinum on one slice and more on three others: the heart region lost its
    posterior half there and the heart track stopped at the great vessels). The median
    over the slices within half a body height (``VERTEBRA_HEIGHT_MM``) either way
    outvotes such runs. A slice's edge is moved (back) to it only when it lies more than
    a body height in front of it: the column's own front does not jump that far.
    """
    front = {}
    for k in np.nonzero(spine.any(axis=(1, 2)))[0]:
        ys = np.nonzero(spine[k].any(axis=1))[0]
        front[int(k)] = int(ys.min() if anterior_sign < 0 else ys.max())
    half = max(1, int(round(VERTEBRA_HEIGHT_MM / 2.0 / dz_mm)))
    out = {}
    for k in front:
        near = sorted(e for j, e in front.items() if abs(j - k) <= half)
        # Of an even count's two middle values, the posterior one (stray bodies lie in
        # front); and never in front of the slice's own edge: the median only undoes a
        # stray body, it does not cut more of the mediastinum than the slice's own spine.
        med = near[len(near) // 2] if anterior_sign < 0 else near[(len(near) - 1) // 2]
        # Only a stray body: in front of the column's run by more than a body height.
        stray = abs(med - front[k]) * dy_mm > VERTEBRA_HEIGHT_MM
        out[k] = med if stray and (med > front[k]) == (anterior_sign < 0) else front[k]
    return out


def _soft_band(grid: WorkGrid, hi: float) -> np.ndarray:
    """Voxels in the soft-tissue band ``SOFT_HU[0]``..``hi`` (``hi`` 600 HU when enhanced).

    Noisy series (``BAND_NOISE_HU``) are thresholded on a lightly smoothed copy (sigma 1
    voxel, noise SD / ~2.5): at 60 HU noise (sharp kernel, obese, low dose) the raw band
    falls apart. Smoothing must not move the heart's outline, though: on enhanced studies,
    blurred next to enhanced blood (250-450 HU), the 3-6 mm epicardial fat layer reads
    above -30 HU and the outline moves out over the coronary grooves (2-3 work voxels on a real
    arterial-phase study with 40 HU added noise), which then fall inside the heart and
    out of the coronary territory. A Gaussian-smoothed step crosses the midpoint of its
    two levels at the step itself, so the lower edge is read on a copy clipped to a
    window symmetric about -30 HU that reaches the fat window's middle (``FAT_MID_HU``):
    fat against any denser tissue then crosses -30 HU where the step is, whatever
    that tissue's attenuation (geometry of a blurred step, not fitted).
    """
    hu = grid.hu
    if image_noise_hint(grid) <= BAND_NOISE_HU:
        return (hu >= SOFT_HU[0]) & (hu <= hi)
    smooth = ndi.gaussian_filter(hu, 1.0)
    if hi <= SOFT_HU[1]:
        # Unenhanced: blood and myocardium (~40 HU) and fat (~-100 HU) already have their
        # midpoint at -30 HU, so the plain smoothed copy keeps the outline in place.
        return (smooth >= SOFT_HU[0]) & (smooth <= hi)
    half = SOFT_HU[0] - FAT_MID_HU
    low = ndi.gaussian_filter(np.clip(hu, SOFT_HU[0] - half, SOFT_HU[0] + half), 1.0)
    return (low >= SOFT_HU[0]) & (smooth <= hi)


def _track(grid: WorkGrid, anatomy: Anatomy, opened: np.ndarray, ordered: np.ndarray,
           levels: np.ndarray, seed_k: int, thorax: np.ndarray) -> np.ndarray:
    """The heart followed slice by slice from ``seed_k`` through the opened soft tissue.

    A component joins only if it overlaps the heart of the previous slice, mostly under
    it. Going down, the heart shrinks towards the apex; growing again, or a sudden
    widening to the patient's right where the dome rises (once past the widest slice: a
    sac full of fluid widens that way above it), means the liver dome (or the
    stomach) has joined: stop there. Those two signs count only once the heart has
    reached a ventricle's cross-section (``VENTRICLE_SHARE`` of the thorax's, ``thorax``
    per slice): below the great vessels at the base the heart narrows, then widens into
    the atria and ventricles in the same way, and a far larger component that holds
    the heart above (>= 50 % of it) continues it.
    """
    heart = np.zeros_like(opened)
    heart[seed_k] = _largest_2d(opened[seed_k])
    if not heart[seed_k].any():
        return heart
    n = ordered.size
    pos = int(np.nonzero(ordered == seed_k)[0][0])
    allowed = set(levels.tolist())
    dome_jump = DOME_JUMP_MM / grid.spacing_zyx[2]
    for step in (-1, 1):
        prev = heart[seed_k]
        smallest = largest = float(prev.sum())
        shrinking = False
        i = pos + step
        while 0 <= i < n and int(ordered[i]) in allowed:
            k = int(ordered[i])
            labels, m = ndi.label(opened[k])
            if m == 0:
                break
            area = np.bincount(labels.ravel())
            over = np.bincount(labels.ravel(), weights=prev.ravel(), minlength=m + 1)
            over[0] = 0
            best = int(np.argmax(over))
            ventricles = largest >= VENTRICLE_SHARE * thorax[k]
            # Below a seed on the great vessels, the sac or the ventricles are far larger
            # than the previous slice's heart but hold it.
            if over[best] < 0.3 * area[best] and not (
                    step < 0 and not ventricles and over[best] >= 0.5 * prev.sum()):
                break
            cur = labels == best
            area_k = float(cur.sum())
            past_widest = float(prev.sum()) < largest
            if step < 0 and ventricles and (
                    (shrinking and area_k > 1.15 * smallest)
                    or (past_widest and _right_edge(cur, anatomy.left_sign)
                        - _right_edge(prev, anatomy.left_sign) > dome_jump)):
                break
            if step > 0 and area_k < TOP_NARROWING * largest:
                break
            if area_k < 0.9 * largest:
                shrinking = True
            smallest, largest = min(smallest, area_k), max(largest, area_k)
            heart[k] = cur
            prev = cur
            i += step
    return heart


def image_noise_hint(grid: WorkGrid) -> float:
    """Robust SD (HU) of the work grid's soft tissue outside the lungs: a quick noise level.

    Median absolute difference between neighbouring voxels in -100..150 HU, / sqrt(2)
    x 1.4826 (Gaussian): edges are rare against the bulk of muscle and fat.
    """
    hu = grid.hu
    a, b = hu[:, :, 1:], hu[:, :, :-1]
    sel = (a > -100) & (a < 150) & (b > -100) & (b < 150)
    if sel.sum() < 1000:
        return 0.0
    d = np.abs(a[sel] - b[sel])
    return float(1.4826 * np.median(d) / np.sqrt(2.0))


def _seed_slice(anatomy: Anatomy, levels: np.ndarray) -> int:
    """The middle of the slices with the largest aerated lung cross-section (both lungs).

    The lungs are widest just above the diaphragm domes, beside the ventricles; the
    liver dome lies lower (where the lungs shrink) and the great vessels higher. Works
    when only part of the lungs is in view, unlike a fixed fraction of the lung height.
    A large pericardial or pleural effusion takes lung area away at the ventricles'
    level and the seed moves up to the heart's base; ``heart_mask`` then follows the
    heart down and seeds again on its widest slice.
    """
    area = (anatomy.lung_left.sum(axis=(1, 2)) + anatomy.lung_right.sum(axis=(1, 2)))
    # The lung area is often flat over several centimetres: take the middle of the slices
    # within 10 % of the largest, not an arbitrary end of that plateau.
    plateau = [int(k) for k in levels if area[k] >= PLATEAU * area[levels].max()]
    return plateau[len(plateau) // 2]


def _enhanced(grid: WorkGrid, region: np.ndarray) -> bool:
    """Does the lower mediastinum hold an enhanced blood pool (``contrast.enhanced_pool``)?

    The same rule as the study's contrast phase (``contrast.detect_contrast_phase``):
    >= 20 ml of 130-700 HU (kVp-corrected) away from cortical bone.
    """
    kvp = getattr(getattr(grid.source, "acquisition", None), "kvp", None)
    return bool(enhanced_pool(grid, region, kvp).any())


def _right_edge(mask2d: np.ndarray, left_sign: int) -> float:
    """How far the mask reaches towards the patient's right, in columns."""
    cols = np.nonzero(mask2d.any(axis=0))[0]
    if cols.size == 0:
        return 0.0
    return float(-cols.min()) if left_sign > 0 else float(cols.max())


def _largest_2d(mask: np.ndarray) -> np.ndarray:
    labels, n = ndi.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def heart_measures(grid: WorkGrid, anatomy: Anatomy, ext: np.ndarray, heart: np.ndarray,
                   contrast: bool) -> dict[str, Measure]:
    """Cardiothoracic ratio, heart volume, contrast phase, pericardial fluid thickness."""
    dx = grid.spacing_zyx[2]
    out: dict[str, Measure] = {
        "contrast_enhanced": Measure("contrast_enhanced", 1.0 if contrast else 0.0, "1",
                                     "enhanced blood pool of 150-600 HU (1) or not (0)")}
    out["image_noise"] = image_noise(grid, heart)
    if not heart.any():
        out["cardiothoracic_ratio"] = Measure("cardiothoracic_ratio", None, "1",
                                              "axial cardiothoracic ratio",
                                              note="heart not found in the field of view")
        return out
    # Width of the cardiac body on each slice: a 10 mm opening drops the venae
    # cavae, appendages and great-vessel stumps that join the heart by a neck.
    r = max(1, int(round(10.0 / grid.spacing_zyx[1])))
    ks = np.nonzero(heart.any(axis=(1, 2)))[0]
    widths = [_x_extent(_largest_2d(open_in_box(heart[k:k + 1], disk(r))[0])) for k in ks]
    # The venae cavae and the liver dome join the cardiac outline on a few slices at its
    # lower border: the widest slice is taken at the WIDTH_PERCENTILE of the slices.
    target = float(np.percentile(widths, WIDTH_PERCENTILE))
    i_w = int(np.argmin(np.abs(np.array(widths, dtype=float) - target)))
    k_w = int(ks[i_w])
    heart_w = float(widths[i_w]) * dx
    # The inner thoracic diameter on the SAME slice (lungs and what lies between them).
    thorax_w = _x_extent(ext[k_w] | heart[k_w]) * dx
    why = ""
    if ks.min() == 0 or ks.max() == heart.shape[0] - 1:
        why = "not assessed: the heart reaches the end of the scanned range"
    elif ext[k_w][:, 0].any() or ext[k_w][:, -1].any():
        why = ("not assessed: the thorax is cut by the image border on the heart's widest "
               "slice (targeted field of view)")
    ctr = heart_w / thorax_w if thorax_w > 0 and not why else None
    out["heart_width"] = Measure("heart_width", heart_w, "mm", "largest transverse heart diameter")
    out["thoracic_width"] = Measure("thoracic_width", thorax_w, "mm",
                                    "inner thoracic diameter on the heart's widest slice")
    out["cardiothoracic_ratio"] = Measure(
        "cardiothoracic_ratio", ctr, "1",
        "axial cardiothoracic ratio (heart and thorax widths on the same slice)",
        (component_evidence(grid, heart, "heart (mediastinal soft tissue)", with_mask=True),),
        note=why)
    out["heart_volume"] = Measure("heart_volume", float(heart.sum()) * grid.voxel_ml, "ml",
                                  "heart and pericardium volume")
    out.update(_pericardial_fluid(grid, heart, contrast))
    return out


def image_noise(grid: WorkGrid, heart: np.ndarray) -> Measure:
    """Noise: SD of full-resolution HU in the heart's interior (blood, a uniform region).

    Sharp (lung) kernels and low dose raise it from ~10-20 HU to 50-100 HU; then
    more parenchyma falls below -950 HU and more blood above 130 HU, so LAA%-950
    and the calcium score read high (Boedeker et al. 2004). The note says so.
    """
    core = shrink(heart, structure=disk(2))
    if core.sum() < 50:
        return Measure("image_noise", None, "[hnsf'U]", "image noise (SD in the heart)")
    fz, fy, fx = grid.factors
    idx = np.argwhere(core)
    idx = idx[np.linspace(0, len(idx) - 1, min(len(idx), 5000)).astype(int)]
    vox = grid.source.voxels
    vals = vox[np.minimum(idx[:, 0] * fz, vox.shape[0] - 1),
               np.minimum(idx[:, 1] * fy, vox.shape[1] - 1),
               np.minimum(idx[:, 2] * fx, vox.shape[2] - 1)].astype(np.float32)
    # Robust SD (median absolute deviation): papillary muscles and trabeculae are outliers.
    sd = float(1.4826 * np.median(np.abs(vals - np.median(vals))))
    note = ""
    if sd > NOISY_HU:
        note = (f"noisy series (SD {sd:.0f} HU, sharp kernel or low dose): LAA%-950 and the "
                "calcium score read high; a soft-kernel series is preferable")
    return Measure("image_noise", sd, "[hnsf'U]", "image noise (robust SD in the heart)",
                   note=note)


def _x_extent(mask2d: np.ndarray) -> int:
    cols = np.nonzero(mask2d.any(axis=0))[0]
    return int(cols[-1] - cols[0] + 1) if cols.size else 0


def _pericardial_fluid(grid: WorkGrid, heart: np.ndarray, contrast: bool) -> dict[str, Measure]:
    """Thickness of the water-density shell on the heart surface (95th percentile, mm).

    Only collections that touch the heart's outer surface and hold a layer's volume
    (``MIN_PERICARDIAL_LAYER_ML``) count: one small pocket must not set the 95th percentile.
    """
    if not contrast:
        return {"pericardial_fluid_thickness": Measure(
            "pericardial_fluid_thickness", None, "mm",
            "thickness of water-density fluid around the heart",
            note="unenhanced study: fluid (0-20 HU) and blood (30-55 HU) differ by less "
            "than two noise standard deviations")}
    spacing = grid.spacing_zyx
    # Worked in the heart's box grown by one voxel: the same voxels and distances. The
    # fluid lies in the heart, and the box's empty rim holds, for every voxel inside, a
    # background voxel at least as near as any beyond the box.
    box = crop_box(heart, margin=1)
    fluid = np.zeros(heart.shape, dtype=bool)
    if box is not None:
        fluid[box] = _pericardial_collections(heart[box], grid.hu[box], spacing,
                                              grid.voxel_ml)
    if box is None or not fluid.any():
        return {"pericardial_fluid_thickness": Measure(
            "pericardial_fluid_thickness", 0.0, "mm",
            "thickness of water-density fluid around the heart")}
    sub = fluid[box]
    thick = 2.0 * ndi.distance_transform_edt(sub, sampling=spacing)
    value = float(np.percentile(thick[sub], 95))
    return {"pericardial_fluid_thickness": Measure(
        "pericardial_fluid_thickness", value, "mm",
        "thickness of water-density fluid around the heart (95th percentile)",
        (component_evidence(grid, fluid, "pericardial fluid"),))}


def _pericardial_collections(heart: np.ndarray, hu: np.ndarray,
                             spacing: tuple[float, float, float], voxel_ml: float
                             ) -> np.ndarray:
    """The water-density collections on the heart's surface that hold a layer's volume."""
    fluid = heart & (hu >= FLUID_HU[0]) & (hu <= FLUID_HU[1])
    fluid = ndi.binary_opening(fluid, structure=ball_mm(2.0, spacing))
    # A shell: fluid that touches the heart's outer surface.
    surface = heart & ~ndi.binary_erosion(heart, structure=disk(1))
    labels, n = ndi.label(fluid)
    if n:
        touch = np.unique(labels[surface & fluid])
        keep = np.zeros(n + 1, dtype=bool)
        keep[touch[touch > 0]] = True
        # A layer in the sac, not a pocket: each collection holds a layer's volume.
        keep &= np.bincount(labels.ravel(), minlength=n + 1) * voxel_ml >= (
            MIN_PERICARDIAL_LAYER_ML)
        keep[0] = False
        fluid = keep[labels]
    return fluid

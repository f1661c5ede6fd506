"""Pleural space: effusion (fluid outside the lung) and pneumothorax (free air).

- Effusion: water-density tissue (about -10..+30 HU; transudates 0-20 HU,
  exudates up to ~30, Nandalur et al., AJR 2005) lying against the lung on
  its chest-wall side, thick enough (opening 4 mm) not to be the partial-volume
  rim of the lung/chest wall interface, measured as a volume. Muscle
  (40-60 HU) and the liver without contrast (50-65 HU) are above the band.
  Free fluid sinks: most of a collection lies behind the lung on its own
  slices (``MIN_DEPENDENT_FRACTION``), so the stomach under a lung base (in
  front of the posterior recesses, or below a base cut by the field of view)
  is not pleura.
- Pneumothorax: gas without lung structure (below -970 HU on the ~2 mm
  working grid, where parenchyma and its vessels average -850) along the
  outer lung surface. Paraseptal emphysema and bullae are gas at the surface
  too; the note says so when LAA%-950 is high.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage as ndi

from inference.analyzer.bone import BONE_HU
from inference.analyzer.evidence import component_evidence
from inference.analyzer.morphology import (
    ball_mm,
    ball_radii,
    convex_hull_2d,
    crop_box,
    dilate,
    dilate_ball,
    dilate_within,
    disk,
    distance_to,
    grow,
    open_in_box,
    shrink,
)
from inference.analyzer.types import Anatomy, Measure, WorkGrid
from inference.types import Evidence

logger = logging.getLogger(__name__)

FLUID_HU = (-10.0, 30.0)
GAS_HU = -970.0
EDGE_HU = -900.0
MIN_EFFUSION_ML = 10.0
"""Smallest collection counted: CT shows pleural effusions from about 10 ml (the
mapping's note); smaller water-density bits along the posterior bases are the
partial volume of crura, vessels and dependent lung."""
MIN_PNEUMOTHORAX_ML = 3.0
WALL_LAYER_MM = 12.0
MIN_WALL_CONTACT = 0.33
"""Fraction of a gas layer's surface on the wall: phantom pneumothoraces 0.4-0.6,
upper/lower/diffuse emphysema clusters next to the pleura 0.14-0.28."""
WALL_CONTACT_MM = 5.0
"""Surface voxels this close to the chest wall touch it (the partial-volume rim
of the pleura keeps a voxel or two of lung density between them)."""
MAX_DEPTH_FRACTION = 0.45
"""Mean front-to-back position (0 anterior, 1 posterior) of a pneumothorax in a
supine patient: it collects anteriorly (the deep sulcus / anterior air signs)."""
MIN_WALL_FRACTION = 0.45
"""A pneumothorax lies on the wall (phantom: ~60 % of its gas within 12 mm of it);
emphysema is spread through the lung, of which ~25 % lies that close."""
MAX_MEDIASTINAL_FRACTION = 0.5
LUNG_REACH_MM = 6.0
"""A collection lies on the lung when within this of the lung mask: the
partial-volume rim (one ~2 mm work voxel) plus the 1.5 mm smoothing (+-2 sigma)."""
MIN_CONTACT_CM2 = 5.0
"""Least contact area with the lung: the smallest effusion reported (20 ml, the
p = 0.5 point) spread at most 4 cm thick lies on >= 5 cm2 of lung. Fatty chest-wall
muscle in the fluid band meets the lung over < 1 cm2 (Lung-PET-CT-Dx: 0.55 cm2;
the phantom's 300 ml effusion: ~70 cm2)."""
MIN_DEPENDENT_FRACTION = 0.5
"""Least share of a collection lying behind (dependent to) the lung on its own slices.
Physics: fluid is denser than aerated lung, so free pleural fluid in a supine patient
sinks into the posterior pleural space and the lung floats in front of it (the
dependent meniscus; a large effusion still lies mostly behind the lung it compresses).
The stomach and the liver under a lung base lie in front of the posterior costophrenic
recesses, and below the lung bases (no lung on the slice) nothing is pleural. The
majority, not a fit; loculated anterior effusions and prone scans are missed."""
RIB_SEARCH_MM = 15.0
"""Bone within this of a collection is its ribs: ribs are ~10 mm tall and the
intercostal spaces ~15-20 mm (Gray's Anatomy), so every point of the chest wall lies
within ~15 mm of a rib."""
RECONSTRUCT_STEPS = 4
"""Voxels (~8 mm) a collection is grown back within the fluid band to find its
face against the lung: the 4 mm opening and the 1.5 mm smoothing shave ~7 mm."""


def pleural_fluid(grid: WorkGrid, anatomy: Anatomy, mediastinum: np.ndarray,
                  lesions: np.ndarray) -> np.ndarray:
    """Fluid-density voxels outside the lung that lie on its chest-wall surface.

    ``lesions`` (a mass is water-dense too) are never fluid.
    """
    spacing = grid.spacing_zyx
    smooth = grid.smoothed()  # the fluid band is 40 HU wide, about two noise SDs
    fluid = (anatomy.body & ~anatomy.lungs & ~lesions
             & (smooth >= FLUID_HU[0]) & (smooth <= FLUID_HU[1]))
    band = fluid
    fluid = open_in_box(band, ball_mm(4.0, spacing))
    labels, n = ndi.label(fluid)
    if n == 0:
        return fluid
    size = np.bincount(labels.ravel(), minlength=n + 1)
    # Pleural fluid lies between lung and chest wall: not between the two lungs
    # (the mediastinum: oesophagus, nodes, heart), not in the crescent one lung
    # draws around the diaphragm dome (liver, spleen, stomach under it), and on
    # slices that show lung (below them: stomach, bowel, ascites). Not the hull of
    # both lungs together: a posterior effusion pushes the lung forward and lies
    # inside that.
    # Counts per label from the labels of the voxels counted (as weighting by 0 or 1); the
    # hulls only on the slices where they can decide a fluid voxel.
    between = _between_lungs(anatomy)
    not_pleural = between | _each_lung_hull(anatomy, (fluid & ~between).any(axis=(1, 2)))
    inside = np.bincount(labels[not_pleural & fluid], minlength=n + 1)
    behind = np.bincount(labels[_behind_lung(anatomy) & fluid], minlength=n + 1)
    keep = (inside <= MAX_MEDIASTINAL_FRACTION * size) & (behind >= MIN_DEPENDENT_FRACTION * size)
    keep[0] = False
    if not keep.any():
        return np.zeros_like(fluid)
    # Only what lies on the lung (the cheapest tests first: this one grows each collection).
    keep &= _lung_contact_cm2(labels, band, keep, anatomy.lungs, spacing) >= MIN_CONTACT_CM2
    keep = _inside_ribs(grid, anatomy, labels, keep)
    return keep[labels]


def _lung_contact_cm2(labels: np.ndarray, band: np.ndarray, asked: np.ndarray,
                     lungs: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Per label, the area (cm2) of the collection's face on the lung; 0 where not asked.

    The 4 mm opening shaves the fluid's face against the lung, so contact is judged on
    each collection grown back within the fluid band (reconstruction by dilation, the
    higher label winning where two meet): real pleural fluid lies on the lung, while
    fatty chest-wall muscle in the band is a rib and intercostal layer away. Grown in the
    box of the collections asked: a voxel's growth depends only on labels within
    ``RECONSTRUCT_STEPS + 1`` voxels, and the box's edge effects reach as far inwards.
    """
    margin = 2 * (RECONSTRUCT_STEPS + 1) + 1
    box = crop_box(asked[labels], margin=margin)
    if box is None:
        return np.zeros(asked.size)
    sub, in_band = labels[box], band[box]
    cube = np.ones((3, 3, 3), dtype=bool)
    grown = np.where(in_band, ndi.grey_dilation(sub, footprint=cube), 0)
    for _ in range(RECONSTRUCT_STEPS):
        step = np.where(in_band & (grown == 0), ndi.grey_dilation(grown, footprint=cube), grown)
        if np.array_equal(step, grown):
            break
        grown = step
    reach = disk(max(1, int(round(LUNG_REACH_MM / spacing[1]))))
    near_lung = dilate_within(lungs, reach, box)[box]
    touch = np.bincount(grown[near_lung], minlength=asked.size)
    return np.where(asked, touch * (spacing[0] * spacing[1] / 100.0), 0.0)


def _inside_ribs(grid: WorkGrid, anatomy: Anatomy, labels: np.ndarray,
                 keep: np.ndarray) -> np.ndarray:
    """Keep only collections that lie inside the rib cage: nearer the lung than its ribs.

    The pleural space lies between the lung and the inner surface of the ribs, so an
    effusion is nearer the lung (median distance) than the bone around it
    (``RIB_SEARCH_MM``); intercostal and serratus muscle, fatty and in the fluid band
    once a soft kernel blurs it with fat, lies at or outside the ribs (Lung-PET-CT-Dx
    A0001, soft variant: muscle 12-20 mm from the lung, its ribs 7-8 mm; the phantom's
    300 ml effusion 24 mm, its ribs 35 mm). Without bone near it, nothing to judge.
    """
    spacing = grid.spacing_zyx
    pad = tuple(r + 1 for r in ball_radii(RIB_SEARCH_MM, spacing))
    from_lung: np.ndarray | None = None
    asked = keep
    keep = keep.copy()
    boxes = ndi.find_objects(labels)
    for lab in np.nonzero(keep)[0]:
        sl = boxes[lab - 1]
        box = tuple(slice(max(0, s.start - p), min(n, s.stop + p))
                    for s, p, n in zip(sl, pad, labels.shape, strict=True))
        comp = labels[box] == lab
        near = (dilate_ball(comp, RIB_SEARCH_MM, spacing) & (grid.hu[box] > BONE_HU)
                & anatomy.body[box])
        if not near.any():
            continue
        d = _lung_distance_near(anatomy.lungs, box, pad, comp | near, spacing)
        if d is None:
            if from_lung is None:
                # Exact in the box: all lung lies in it, and so does every rib searched.
                from_lung = distance_to(anatomy.lungs, anatomy.lungs | asked[labels],
                                        RIB_SEARCH_MM, spacing)
            d = from_lung[box]
        keep[lab] = float(np.median(d[comp])) < float(np.median(d[near]))
    return keep


def _lung_distance_near(lungs: np.ndarray, box: tuple[slice, ...], pad: tuple[int, ...],
                        read: np.ndarray, spacing: tuple[float, float, float]
                        ) -> np.ndarray | None:
    """Distance (mm) to the nearest lung voxel over ``box``, from the lung in ``box`` grown
    by ``pad``; None unless it is exact at every ``read`` voxel.

    A voxel's distance is exact when the nearest lung found lies nearer than anything
    beyond the grown box (the image's own border has nothing beyond it): no lung outside
    could then be nearer. A collection on the lung and the ribs around it pass; the
    whole lungs' distance transform (``distance_to``) is the fallback.
    """
    shape = lungs.shape
    grown = tuple(slice(max(0, b.start - p), min(n, b.stop + p))
                  for b, p, n in zip(box, pad, shape, strict=True))
    sub = lungs[grown]
    if not sub.any():
        return None
    dist = ndi.distance_transform_edt(~sub, sampling=spacing)[
        tuple(slice(b.start - g.start, b.stop - g.start) for b, g in zip(box, grown, strict=True))]
    # Per voxel of the box, the distance (mm) to the nearest voxel beyond the grown box.
    room = np.full(dist.shape, np.inf)
    for axis, (b, g, n, s) in enumerate(zip(box, grown, shape, spacing, strict=True)):
        pos = np.arange(b.start, b.stop)
        gap = np.full(pos.shape, np.inf)
        if g.start > 0:
            gap = np.minimum(gap, (pos - g.start + 1) * s)
        if g.stop < n:
            gap = np.minimum(gap, (g.stop - pos) * s)
        along = [1, 1, 1]
        along[axis] = gap.size
        room = np.minimum(room, gap.reshape(along))
    # A hair of margin: a lung voxel beyond the box at the same distance is no tie.
    if not bool(np.all(dist[read] < room[read] - 1e-6)):
        return None
    return dist


def _behind_lung(anatomy: Anatomy) -> np.ndarray:
    """Voxels posterior to the centroid row of the lungs on their slice (dependent, supine).

    Slices without lung are all False: below the lung bases lies the abdomen. Judged
    per slice and only from the lungs in view, so a field of view cut in front or behind
    moves the centroid little compared with the lung's depth.
    """
    lungs = anatomy.lungs
    rows = lungs.sum(axis=2).astype(float)  # [z, y]
    area = rows.sum(axis=1)
    y = np.arange(lungs.shape[1], dtype=float)
    centre = (rows * y[None, :]).sum(axis=1) / np.maximum(area, 1.0)
    posterior = (y[None, :] > centre[:, None]) if anatomy.anterior_sign < 0 else (
        y[None, :] < centre[:, None])
    posterior &= (area > 0)[:, None]
    return np.broadcast_to(posterior[:, :, None], lungs.shape)


def _each_lung_hull(anatomy: Anatomy, slices: np.ndarray) -> np.ndarray:
    """Per slice and per lung, its convex hull outside it (what the lung wraps around), on
    the ``slices`` asked for (False on the others)."""
    hull = np.zeros_like(anatomy.lungs)
    for lung in (anatomy.lung_left, anatomy.lung_right):
        for k in np.nonzero(lung.any(axis=(1, 2)) & slices)[0]:
            hull[k] |= convex_hull_2d(lung[k]) & ~lung[k]
    return hull


def _between_lungs(anatomy: Anatomy) -> np.ndarray:
    """Voxels with the left lung on one side and the right lung on the other along
    their row (the mediastinum); whole slices where no lung shows."""
    left, right = anatomy.lung_left, anatomy.lung_right

    def seen(mask: np.ndarray, towards_high: bool) -> np.ndarray:
        """Whether ``mask`` lies at this column or beyond it, towards high/low columns."""
        if towards_high:
            return np.flip(np.maximum.accumulate(np.flip(mask, axis=2), axis=2), axis=2)
        return np.maximum.accumulate(mask, axis=2)

    left_high = anatomy.left_sign > 0  # the left lung lies at higher columns
    between = seen(left, left_high) & seen(right, not left_high)
    between[~anatomy.lungs.any(axis=(1, 2))] = True
    return between


def effusion_measures(grid: WorkGrid, anatomy: Anatomy, mediastinum: np.ndarray,
                      lesions: np.ndarray) -> dict[str, Measure]:
    """Pleural fluid volume per side and the largest collection as evidence."""
    fluid = pleural_fluid(grid, anatomy, mediastinum, lesions)
    ml = grid.voxel_ml
    out: dict[str, Measure] = {}
    labels, n = ndi.label(fluid)
    sizes = np.bincount(labels.ravel()) * ml if n else np.zeros(1)
    keep = sizes >= MIN_EFFUSION_ML
    keep[0] = False
    fluid = keep[labels]
    # Side: nearer lung by the column of each collection's centroid.
    left_col = np.nonzero(anatomy.lung_left)[2].mean() if anatomy.lung_left.any() else 0
    right_col = np.nonzero(anatomy.lung_right)[2].mean() if anatomy.lung_right.any() else 0
    vol = {"left": 0.0, "right": 0.0}
    evidence = []
    for lab in np.nonzero(keep)[0]:
        comp = labels == lab
        col = np.nonzero(comp)[2].mean()
        side = "left" if abs(col - left_col) < abs(col - right_col) else "right"
        vol[side] += float(sizes[lab])
        evidence.append((float(sizes[lab]), comp, side))
    evidence.sort(key=lambda e: -e[0])
    ev = tuple(component_evidence(grid, comp, f"{side} pleural fluid collection")
               for _, comp, side in evidence[:2])
    out["pleural_effusion_volume"] = Measure(
        "pleural_effusion_volume", vol["left"] + vol["right"], "ml",
        "pleural fluid (-10..+30 HU) against the lung", ev)
    out["pleural_effusion_volume_left"] = Measure(
        "pleural_effusion_volume_left", vol["left"], "ml", "left pleural fluid")
    out["pleural_effusion_volume_right"] = Measure(
        "pleural_effusion_volume_right", vol["right"], "ml", "right pleural fluid")
    return out


def pneumothorax_mask(grid: WorkGrid, anatomy: Anatomy) -> np.ndarray:
    """Free pleural air: structureless gas layered on the chest wall, in or apart from the lung."""
    lungs = anatomy.lungs
    smooth = grid.smoothed()
    gas = lungs & (smooth < GAS_HU)
    gas = open_in_box(gas, ball_mm(2.5, grid.spacing_zyx))
    # Outer layer: lung within 12 mm of the tissue around it (the smoothed gas
    # stops short of the partial-volume rim at the chest wall).
    outside = anatomy.body & ~lungs
    ml = grid.voxel_ml
    out = np.zeros_like(lungs)
    labels, n = ndi.label(gas)
    if n:
        # Read only in the gas, and only against 12 mm: measured in the gas's box grown
        # by that (``distance_to``: exact there up to 12 mm, beyond it more than 12 mm).
        wall_dist = distance_to(outside, gas, WALL_LAYER_MM, grid.spacing_zyx)
        surface = lungs & (wall_dist <= WALL_LAYER_MM)
        counts = np.bincount(labels.ravel(), minlength=n + 1)
        sizes = counts * ml
        on_surface = np.bincount(labels[surface], minlength=n + 1) * ml
        # A layer on the chest wall, not emphysema spread through the lung.
        keep = (sizes >= MIN_PNEUMOTHORAX_ML) & (on_surface >= MIN_WALL_FRACTION * sizes)
        keep[0] = False
        # Supine, free air rises to the anterior (non-dependent) pleural space;
        # emphysema is spread front to back.
        rows = np.nonzero(lungs.any(axis=(0, 2)))[0]
        if rows.size:
            depth = np.arange(lungs.shape[1], dtype=float)
            front, back = (rows[0], rows[-1]) if anatomy.anterior_sign < 0 else (rows[-1], rows[0])
            rel = (depth - front) / max(float(back - front), 1.0)  # 0 front, 1 back
            rel3 = np.broadcast_to(rel[None, :, None], lungs.shape)
            mean_rel = (np.bincount(labels.ravel(), weights=rel3.ravel(), minlength=n + 1)
                        / np.maximum(counts, 1))
            keep &= mean_rel <= MAX_DEPTH_FRACTION
        cand = keep[labels]
        if cand.any():
            # Take back the layer's edges that the smoothing and opening shaved off.
            cand = grow(cand, iterations=3, mask_in=lungs & (smooth < EDGE_HU))
            # Read in the grown layer's surface against 5 mm: measured near it.
            near_wall = distance_to(outside, cand, WALL_CONTACT_MM, grid.spacing_zyx)
            out |= _on_the_wall(cand, near_wall <= WALL_CONTACT_MM)
    # Gas pockets apart from the lung but lying on it, within the lungs' height:
    # a pneumothorax behind its visceral pleura (bowel gas lies under the diaphragm).
    lung_z = np.nonzero(lungs.any(axis=(1, 2)))[0]
    glabels, gn = ndi.label(anatomy.free_gas)
    if gn and lung_z.size:
        near = dilate(lungs, disk(2))
        on_lung = np.bincount(glabels[near], minlength=gn + 1)
        sizes = np.bincount(glabels.ravel(), minlength=gn + 1) * ml
        lowest = lung_z[0] + 0.15 * (lung_z[-1] - lung_z[0])
        highest = lung_z[-1] - 0.15 * (lung_z[-1] - lung_z[0])
        for lab, sl in enumerate(ndi.find_objects(glabels), start=1):
            if sl is None or on_lung[lab] < 3 or sizes[lab] < MIN_PNEUMOTHORAX_ML:
                continue
            centre_z = (sl[0].start + sl[0].stop - 1) / 2.0
            basal = centre_z < lowest if anatomy.cranial_sign > 0 else centre_z > highest
            if not basal:
                out |= glabels == lab
    return out


def _on_the_wall(cand: np.ndarray, near_wall: np.ndarray) -> np.ndarray:
    """Components whose surface lies on the chest wall for a good part (a pleural layer).

    Free air is bounded by the parietal pleura on one side and the lung on the
    other: ~half of its surface touches the wall. Subpleural emphysema or bullae
    touch it over a small part of theirs.
    """
    labels, n = ndi.label(cand)
    if n == 0:
        return cand
    surface = cand & ~shrink(cand)
    wall = surface & near_wall
    n_surface = np.bincount(labels[surface], minlength=n + 1)
    n_wall = np.bincount(labels[wall], minlength=n + 1)
    keep = n_wall >= MIN_WALL_CONTACT * np.maximum(n_surface, 1)
    keep[0] = False
    logger.debug("wall contact of gas layers: %s",
                 np.round(n_wall[1:] / np.maximum(n_surface[1:], 1), 2))
    return keep[labels]


def pneumothorax_measures(grid: WorkGrid, ptx: np.ndarray) -> dict[str, Measure]:
    """Volume of free pleural air and its largest collection as evidence."""
    labels, n = ndi.label(ptx)
    ev: tuple[Evidence, ...] = ()
    if n:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        ev = (component_evidence(grid, labels == int(np.argmax(sizes)), "free pleural air"),)
    return {"pneumothorax_volume": Measure(
        "pneumothorax_volume", float(ptx.sum()) * grid.voxel_ml, "ml",
        "gas below -970 HU without lung structure layered on the chest wall", ev)}

"""Left and right lung from threshold and connected components (Hu et al. 2001).

Hu S, Hoffman EA, Reinhardt JM. Automatic lung segmentation for accurate
quantitation of volumetric X-ray CT images. IEEE TMI 2001;20:490-498: threshold
the air-containing voxels inside the body, drop the airway, keep the large
components, separate left from right where they touch, then smooth to take in
the vessels. Gas in the bowel or stomach is told apart from lung by density:
lung parenchyma holds vessels and interstitium (mean about -850 HU), free gas
is almost all below -970 HU.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage as ndi

from inference.analyzer.morphology import (
    CROSS,
    ball_mm,
    crop_box,
    disk,
    fill_holes_2d,
    grow,
    shrink,
)

logger = logging.getLogger(__name__)

GAS_HU = -970.0
MAX_GAS_FRACTION = 0.35
"""A component with more than this fraction below -970 HU is free gas, not lung.

Measured: normal lung ~1 %, the bowel gas of the TotalSegmentator abdomen case
45-57 %; even very severe emphysema (LAA%-950 ~40 %) stays near 25 %.
"""
GAS_MAX_ML = 800.0
"""Gas pockets above this size are kept as lung: an emphysematous lung is larger."""
SUBPHRENIC_FRACTION = 0.5
"""An air space apart from the lungs with more than this share of its voxels on slices
beyond those the lungs span (below the bases) lies under the diaphragm (stomach, colon).
Anatomy, not a fit: each lung is one air space joined by its airway tree, so at the lung
threshold a lung's basal recesses are part of its 3-D component; a gas body whose bulk
(the majority) lies below every lung base can only be abdominal."""
LUNG_CORE_SHARE = 0.15
"""Cores of at least this share of the largest are lungs: the smaller lung is >= ~40 % of
the larger (ICRP 89: left ~45 % of both); the same bound as ``split_left_right``."""
FREE_GAS_MEAN_HU = -900.0
"""Mean HU below which an air body is gas, not parenchyma: midway between aerated lung
(mean about -850 HU, module docstring) and the least dense free gas accepted (real gas
-1000 HU; the phantom's bowel gas -950 HU)."""
NECK_EROSIONS = 2
"""One-voxel erosions (6-connected) that may cut a subphrenic gas body off the lung base.
Physics: on a 2-3 mm work grid a 2-5 mm diaphragm plus stomach wall between lung and gas
averages into the air range over one voxel, or two on a 5 mm slice (thick5, a child's
thin diaphragm); a neck that thin is partial volume, not lung."""
MIN_COMPONENT_ML = 5.0
"""Air components below this are not lung: one adult lung is 2000-3000 ml (ICRP 89), so
dropping pieces below 0.2 % of it changes no lung measure, and it removes skin-fold,
oesophageal and bowel bubbles."""


def aerated_lung(hu: np.ndarray, body: np.ndarray, airway: np.ndarray, threshold_hu: float,
                 voxel_ml: float) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(aerated lung, free gas pockets, notes).

    Free gas pockets are air components without lung structure: bowel or
    stomach gas, or a pneumothorax separated from the lung by its pleura (the
    pleura stage tells them apart by position).
    """
    air = (hu < threshold_hu) & body
    if airway.any():
        air &= ~grow(airway)
    labels, n = ndi.label(air)
    if n == 0:
        return np.zeros_like(air), np.zeros_like(air), ()
    sizes = np.bincount(labels.ravel())
    # Judge density on the interior: the one-voxel rim is partial volume with the
    # wall around it, and on a small pocket (a child's stomach bubble on 2-3 mm
    # voxels) the rim alone would make pure gas look like lung.
    inner = shrink(air, structure=CROSS)
    # Counts per label from the labels of the voxels counted (as weighting by 0 or 1).
    inner_n = np.bincount(labels[inner], minlength=n + 1)
    gas = np.bincount(labels[inner & (hu < GAS_HU)], minlength=n + 1)
    ml = sizes * voxel_ml
    large = (ml >= MIN_COMPONENT_ML) & (sizes >= 0.02 * sizes[1:].max())
    large[0] = False
    free = large & (gas > MAX_GAS_FRACTION * inner_n) & (ml < GAS_MAX_ML)
    keep = large & ~free
    notes = [f"a {ml[lab]:.0f} ml air component is free gas, not lung"
             for lab in np.nonzero(free)[0]]
    kept = keep[labels]
    lung, sub = _split_subphrenic(kept, hu, _caudal_end(airway, kept))
    if sub.any():
        notes.append(f"a {float(sub.sum()) * voxel_ml:.0f} ml gas body under the lung bases "
                     "is abdominal gas, not lung")
    return lung, free[labels] | sub, tuple(notes)


def _split_subphrenic(lung: np.ndarray, hu: np.ndarray, caudal: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(lung, subphrenic gas): air under the lung bases split off by its own 3-D connectivity.

    Stomach or colon gas under a thin diaphragm (a child, or 5 mm slices) can join a lung
    base, or stay a separate air space that density alone does not tell apart (it is
    -950 HU on the phantom). Erode until the gas body comes off the lung, give every voxel
    to its nearest core (as ``split_left_right``); ``_subphrenic_labels`` says which cores
    are gas bodies.
    """
    sub = np.zeros_like(lung)
    box = crop_box(lung, margin=1)
    if box is None:
        return lung, sub
    # Worked in the lung's box (nothing outside it is lung): the same cores and labels.
    in_box = lung[box]
    structure = ndi.generate_binary_structure(3, 1)
    core = in_box
    for it in range(NECK_EROSIONS + 1):
        if it:
            core = ndi.binary_erosion(core, structure=structure)
        labels, n = ndi.label(core)
        if n < 2:
            continue
        below = _subphrenic_labels(labels, n, hu[box], caudal)
        if not below.any():
            continue
        markers = np.where(core, labels, 0)
        nearest = _nearest_label(markers)
        sub[box] = in_box & below[nearest]
        return lung & ~sub, sub
    return lung, sub


def _caudal_end(airway: np.ndarray, lung: np.ndarray) -> int:
    """-1 when low slice indices lie towards the feet, +1 when high ones do, 0 unknown.

    The trachea enters the chest at the apices: the end of the slice axis away from the
    airway's centre (relative to the lungs') is caudal. Without an airway in view (a scan
    starting below the carina) both ends are searched.
    """
    if not airway.any() or not lung.any():
        return 0
    z_air = float(np.nonzero(airway.any(axis=(1, 2)))[0].mean())
    z_lung = float(np.nonzero(lung.any(axis=(1, 2)))[0].mean())
    return -1 if z_air > z_lung else 1 if z_air < z_lung else 0


def _subphrenic_labels(labels: np.ndarray, n: int, hu: np.ndarray, caudal: int) -> np.ndarray:
    """Per label, whether it is a gas body under the lungs rather than lung.

    ``caudal`` (``_caudal_end``) says which end of the slice axis lies towards the feet.

    The lungs are the labels of at least ``LUNG_CORE_SHARE`` of the largest. A gas body
    has most of its voxels outside the slices those lungs span (``SUBPHRENIC_FRACTION``)
    and is emptier than parenchyma (mean below ``FREE_GAS_MEAN_HU``): a lung's own thin
    basal recess cut off by the erosion is lung-dense and stays lung.
    """
    idx = labels.ravel()
    sizes = np.bincount(idx, minlength=n + 1)
    sizes[0] = 0
    mean_hu = np.bincount(idx, weights=hu.ravel(), minlength=n + 1) / np.maximum(sizes, 1)
    lungs = sizes >= LUNG_CORE_SHARE * sizes.max()
    lung_z = np.nonzero(lungs[labels].any(axis=(1, 2)))[0]  # labels that are lungs
    lo, hi = int(lung_z[0]), int(lung_z[-1])
    low = np.bincount(labels[:lo].ravel(), minlength=n + 1)
    high = np.bincount(labels[hi + 1:].ravel(), minlength=n + 1)
    # caudal: -1 low slice indices are caudal, +1 high ones, 0 unknown (either end).
    outside = low if caudal < 0 else high if caudal > 0 else low + high
    out = ((outside > SUBPHRENIC_FRACTION * np.maximum(sizes, 1))
           & (mean_hu < FREE_GAS_MEAN_HU) & ~lungs)
    out[0] = False
    return out


def split_left_right(aerated: np.ndarray, body: np.ndarray, left_sign: int
                     ) -> tuple[np.ndarray, np.ndarray, str]:
    """Split aerated lung into (left, right); says how it was split.

    The lungs often touch at the anterior junction line. Eroding a few times
    separates them; every voxel then goes to the nearer of the two cores.
    Failing that, the body midline of each slice splits them.
    """
    structure = ndi.generate_binary_structure(3, 1)
    # Worked in the lungs' box: erosions, labels and the nearest core are the same there
    # (nothing outside it is lung), at a fraction of the whole volume's cost.
    box = crop_box(aerated, margin=1)
    sub = aerated[box] if box is not None else aerated
    core = sub
    for it in range(0, 6):
        if it:
            core = ndi.binary_erosion(core, structure=structure)
        labels, n = ndi.label(core)
        if n >= 2:
            sizes = np.bincount(labels.ravel())
            sizes[0] = 0
            a, b = np.argsort(sizes)[::-1][:2]
            if sizes[b] >= 0.15 * sizes[a]:
                markers = np.where(labels == a, 1, np.where(labels == b, 2, 0))
                nearest = _nearest_label(markers)
                one, two = np.zeros_like(aerated), np.zeros_like(aerated)
                one[box], two[box] = sub & (nearest == 1), sub & (nearest == 2)
                return (*_order_lr(one, two, left_sign), f"split by erosion ({it})")
        if n == 0:
            break
    # One lung only, or lungs that do not come apart: split at the body midline.
    cols = np.arange(aerated.shape[2])
    mid = np.zeros(aerated.shape, dtype=bool)
    for k in range(aerated.shape[0]):
        xs = np.nonzero(body[k].any(axis=0))[0]
        if xs.size:
            mid[k] = (cols >= (xs[0] + xs[-1]) / 2.0)[None, :]
    one, two = aerated & mid, aerated & ~mid
    return (*_order_lr(one, two, left_sign), "split at the body midline")


def _nearest_label(markers: np.ndarray) -> np.ndarray:
    """Each voxel takes the label of its nearest marker voxel (the feature transform alone:
    the distances themselves are not read)."""
    idx = ndi.distance_transform_edt(markers == 0, return_distances=False, return_indices=True)
    return markers[tuple(idx)]


def _order_lr(a: np.ndarray, b: np.ndarray, left_sign: int) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) of two masks, by mean column and the grid's left direction."""
    xa = np.nonzero(a)[2].mean() if a.any() else 0.0
    xb = np.nonzero(b)[2].mean() if b.any() else 0.0
    a_is_left = (xa > xb) == (left_sign > 0)
    return (a, b) if a_is_left else (b, a)


def lung_region(aerated_side: np.ndarray, spacing_zyx: tuple[float, float, float]) -> np.ndarray:
    """One lung with the vessels and small nodules it encloses (closing + hole filling).

    A 3-D closing of ~5 mm takes in vessels and airway walls; slice-wise hole
    filling takes in what the lung surrounds completely.
    """
    if not aerated_side.any():
        return aerated_side
    box = crop_box(aerated_side, margin=6)
    assert box is not None
    sub = aerated_side[box]
    ball = ball_mm(5.0, spacing_zyx)
    pz, py, px = (n // 2 + 1 for n in ball.shape)
    closed = ndi.binary_closing(np.pad(sub, ((pz, pz), (py, py), (px, px))), structure=ball)
    closed = closed[pz:-pz, py:-py, px:-px]
    closed = fill_holes_2d(closed | sub)
    out = np.zeros_like(aerated_side)
    out[box] = closed
    return out


def smooth_region(region: np.ndarray, radius: int) -> np.ndarray:
    """Slice-wise closing by a disk (used to take in juxtapleural nodules)."""
    return ndi.binary_closing(region, structure=disk(radius))

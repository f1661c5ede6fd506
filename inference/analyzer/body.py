"""Body mask: the patient without table, blankets, wires or air outside.

Soft tissue and bone are above -500 HU; the table, blankets and ECG wires are
thin or separated from the body by air, so a slice-wise opening followed by the
largest 3-D component keeps the patient. Holes are filled slice by slice, so the
lungs and airways lie inside the body mask.

When the image border (a targeted field of view, or the reconstruction
circle on a large patient) cuts through the chest, the lungs open onto the
border and are no longer holes. Such an air region still belongs to the
patient when it is lung-like: aerated tissue holding vessels and
interstitium (only a minority of its interior below -970 HU, as in
``lungs.py``), held by patient tissue in two in-plane directions and thick enough
(the same tests and bounds as the selection's lung-field check,
``series_selector.anatomy``). Air outside the patient is almost all below
-970 HU.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage as ndi

from inference.analyzer.lungs import GAS_HU, MAX_GAS_FRACTION, MIN_COMPONENT_ML
from inference.analyzer.morphology import (
    CROSS,
    dilate,
    disk,
    fill_holes_2d,
    largest_component,
    open_in_box,
    shrink,
)
from series_selector.anatomy import MIN_DEPTH_MM, MIN_ENCLOSED, enclosed

logger = logging.getLogger(__name__)

BODY_THRESHOLD_HU = -500.0
"""Tissue vs air; halfway between air (-1000) and fat (-100)."""
MIN_LUNG_NEIGHBOURS = 0.9
"""Share of the air around a loose tissue component that must be cut lung for it to be
the patient's (``_tissue_within_cut_lung``): geometry, not a fit. A mass or vessel inside
the lung borders only lung (the rest is the image border); anything outside the patient
borders room air over most of its surface. The 10 % allows the partial-volume voxels
where a cut lung meets the room air at the border."""


def body_mask(hu: np.ndarray, spacing_zyx: tuple[float, float, float],
              edge: np.ndarray | None = None) -> np.ndarray:
    """Boolean body mask (lungs included) on the working grid.

    ``edge``: 2-D mask [y, x] of where the image ends (``fov.image_edge``);
    lung-like air regions opening onto it are taken into the body.
    """
    tissue = hu > BODY_THRESHOLD_HU
    # Opening of ~4 mm radius cuts wires, blanket folds and thin table parts.
    r = max(1, int(round(4.0 / spacing_zyx[1])))
    opened = open_in_box(tissue, disk(r))
    patient = largest_component(opened)
    if not patient.any():
        return patient
    body = fill_holes_2d(patient)
    # Give back the skin the opening shaved off (within the original tissue).
    body |= dilate(body, disk(r)) & tissue
    body = fill_holes_2d(body)
    if edge is not None and edge.any():
        cut = cut_lung_air(hu, body, tissue, edge, spacing_zyx)
        if cut.any():
            body = fill_holes_2d(body | cut)
            body |= _tissue_within_cut_lung(tissue, body)
    return body


def _tissue_within_cut_lung(tissue: np.ndarray, body: np.ndarray) -> np.ndarray:
    """Tissue outside ``body`` that lung cut by the image edge holds (a tumour, a vessel).

    Inside a lung that the image border cuts, a mass or vessel touching the border is no
    hole of the body outline, so filling misses it. Such tissue borders the patient's air
    (lung, in ``body`` once the cut lung is taken in) and, apart from the border, nothing
    else; the table, blankets, wires and arms outside the patient border room air. Kept:
    components whose air neighbours are at least ``MIN_LUNG_NEIGHBOURS`` the patient's.
    """
    labels, n = ndi.label(tissue & ~body)
    if n == 0:
        return np.zeros_like(body)
    cross = ndi.generate_binary_structure(3, 1)
    shell = np.where(labels == 0, ndi.grey_dilation(labels, footprint=cross), 0)
    air = np.where(tissue, 0, shell)  # each component's label on the air around it
    lung = np.bincount(np.where(body, air, 0).ravel(), minlength=n + 1)
    room = np.bincount(np.where(body, 0, air).ravel(), minlength=n + 1)
    keep = (lung > 0) & (lung >= MIN_LUNG_NEIGHBOURS * (lung + room))
    keep[0] = False
    return keep[labels]


def cut_lung_air(hu: np.ndarray, body: np.ndarray, tissue: np.ndarray, edge: np.ndarray,
                 spacing_zyx: tuple[float, float, float]) -> np.ndarray:
    """Air regions outside ``body`` that open onto the image edge and are lung, not room air."""
    # Vessels inside a cut lung are holes of its air region, not its outline.
    air = fill_holes_2d(~body & ~tissue) & ~body
    labels, n = ndi.label(air)
    if n == 0:
        return np.zeros_like(air)
    # Voxel counts per label, from the labels of the voxels counted (the same counts as
    # weighting every voxel of the volume by 0 or 1, at a fraction of the cost).
    size = np.bincount(labels.ravel(), minlength=n + 1)
    on_edge = np.bincount(labels[:, edge].ravel(), minlength=n + 1)
    # Density of the interior: the one-voxel rim is partial volume with what bounds it.
    inner = shrink(air, structure=CROSS)
    inner_n = np.bincount(labels[inner], minlength=n + 1)
    inner_gas = np.bincount(labels[inner & (hu < GAS_HU)], minlength=n + 1)
    held = np.bincount(labels[air & enclosed(body)], minlength=n + 1)
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    keep = ((on_edge > 0) & (size * voxel_ml >= MIN_COMPONENT_ML) & (inner_n > 0)
            & (held >= MIN_ENCLOSED * size)
            & (inner_gas <= MAX_GAS_FRACTION * np.maximum(inner_n, 1)))
    keep[0] = False
    if keep.any():
        keep &= _max_depth(labels, keep, spacing_zyx) >= MIN_DEPTH_MM
    if keep.any():
        logger.info("%d air region(s) cut by the image edge taken as lung (%.0f ml)",
                    int(keep.sum()), float(size[keep].sum()) * voxel_ml)
    return keep[labels]


def _max_depth(labels: np.ndarray, which: np.ndarray, spacing_zyx: tuple[float, float, float]
               ) -> np.ndarray:
    """Per label, the largest distance (mm) from inside it to its outline; 0 where not asked.

    Only the components still in question are measured, in their bounding box:
    the room air around the patient is most of the volume and fails the cheaper
    tests first, and its distance transform was the costliest step of the anatomy.
    """
    chosen = which[labels]
    # One voxel of margin, so that what bounds a component is inside the box.
    box = tuple(slice(max(0, b.start - 1), min(n, b.stop + 1)) for b, n in
                zip(ndi.find_objects(chosen.astype(np.int8))[0], labels.shape, strict=True))
    sub = labels[box]
    dist = ndi.distance_transform_edt(which[sub], sampling=spacing_zyx)
    depth = np.zeros(which.size)
    ids = np.nonzero(which)[0]
    depth[ids] = ndi.maximum(dist, sub, index=ids)
    return depth

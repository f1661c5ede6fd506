"""Coronary artery calcium (Agatston-style) and aortic wall calcification.

Agatston et al. (JACC 1990;15:827): on each slice, lesions >= 130 HU of at
least 1 mm^2, area times a density weight (1: 130-199, 2: 200-299,
3: 300-399, 4: >= 400 HU), summed; defined on 3 mm slices, so the sum is
scaled by slice spacing / 3 mm. Any score above 0 is coronary calcification.
Computed at full resolution on the heart surface (the heart mask grown by
6 mm: the coronaries run in the epicardial fat), never on enhanced studies
(blood above 130 HU).
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage as ndi

from inference.analyzer.evidence import component_evidence
from inference.analyzer.morphology import ball_mm
from inference.analyzer.types import Measure, WorkGrid

logger = logging.getLogger(__name__)

CALCIUM_HU = 130.0
MIN_AREA_MM2 = 1.0
METAL_HU = 2000.0
"""Calcified plaque stays below ~1500 HU; above 2000 is metal (or undiluted contrast)."""
METAL_MARGIN_MM = 5.0
WALL_MARGIN_MM = 6.0
MAX_PLAQUE_Z_MM = 25.0
"""Coronary plaques are a few mm to ~15 mm long and follow the vessel around the
heart; a bright line over more than 25 mm of z is a lead or wire."""


def _weight(peak: float) -> int:
    return 1 if peak < 200 else 2 if peak < 300 else 3 if peak < 400 else 4


def agatston(grid: WorkGrid, region: np.ndarray, exclude: np.ndarray
             ) -> tuple[float, float, np.ndarray]:
    """(score, calcium volume ml, work-grid mask of calcified voxels) inside ``region``."""
    fz, fy, fx = grid.factors
    vox = grid.source.voxels
    nz, ny, nx = vox.shape
    sx, sy, sz = grid.source.spacing
    px_mm2 = sx * sy
    score = 0.0
    n_vox = 0
    hit = np.zeros(grid.shape, dtype=bool)
    for k in np.nonzero(region.any(axis=(1, 2)))[0]:
        allowed = np.repeat(np.repeat(region[k] & ~exclude[k], fy, 0), fx, 1)[:ny, :nx]
        for z in range(k * fz, min(nz, (k + 1) * fz)):
            sl = vox[z]
            calc = (sl >= CALCIUM_HU) & allowed
            if not calc.any():
                continue
            labels, n = ndi.label(calc)
            areas = np.bincount(labels.ravel())
            peaks = ndi.maximum(sl, labels, index=np.arange(1, n + 1))
            # Metal (pacemaker leads, clips, stents) and its blooming are not calcium.
            metal = sl >= METAL_HU
            near_metal = (ndi.binary_dilation(metal, iterations=max(1, int(METAL_MARGIN_MM / sx)))
                          if metal.any() else metal)
            for lab in range(1, n + 1):
                area = areas[lab] * px_mm2
                if area < MIN_AREA_MM2 or peaks[lab - 1] >= METAL_HU:
                    continue
                if metal.any() and near_metal[labels == lab].any():
                    continue
                score += area * _weight(float(peaks[lab - 1]))
                n_vox += int(areas[lab])
                ys, xs = np.nonzero(labels == lab)
                hit[k, ys // fy, xs // fx] = True
    score *= sz / 3.0
    return score, n_vox * grid.source.voxel_volume_ml, hit


def _long_lines(hit: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Dense components longer than any coronary plaque along z (device leads, wires)."""
    labels, n = ndi.label(hit, structure=np.ones((3, 3, 3), dtype=bool))
    out = np.zeros_like(hit)
    for lab, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is not None and (sl[0].stop - sl[0].start) * spacing[0] > MAX_PLAQUE_Z_MM:
            out[sl] |= labels[sl] == lab
    return out


def coronary_measures(grid: WorkGrid, heart: np.ndarray, med: np.ndarray, bone: np.ndarray,
                      aorta: np.ndarray, contrast: bool, chest_wall: np.ndarray
                      ) -> dict[str, Measure]:
    """Agatston-style score of the heart surface (not on enhanced studies)."""
    if contrast:
        return {"coronary_agatston": Measure(
            "coronary_agatston", None, "1", "Agatston-style coronary calcium score",
            note="contrast-enhanced blood is above the 130 HU calcium threshold")}
    if not heart.any():
        return {"coronary_agatston": Measure(
            "coronary_agatston", None, "1", "Agatston-style coronary calcium score",
            note="heart not found in the field of view")}
    # The heart surface, inside the mediastinum (not the sternum or costal
    # cartilages it touches), away from bone by 5 mm (partial volume of cortex).
    region = ndi.binary_dilation(heart, structure=ball_mm(6.0, grid.spacing_zyx)) & med
    exclude = (ndi.binary_dilation(bone, structure=ball_mm(5.0, grid.spacing_zyx))
               | ndi.binary_dilation(aorta, structure=ball_mm(3.0, grid.spacing_zyx))
               # Rib and sternal fragments too small for the bone mask: keep off the wall.
               | ndi.binary_dilation(chest_wall, structure=ball_mm(WALL_MARGIN_MM,
                                                                  grid.spacing_zyx)))
    score, ml, hit = agatston(grid, region, exclude)
    leads = _long_lines(hit, grid.spacing_zyx)
    if leads.any():
        # A pacemaker or ICD lead runs through the heart for centimetres: not calcium.
        exclude |= ndi.binary_dilation(leads, iterations=1)
        score, ml, hit = agatston(grid, region, exclude)
    ev = (component_evidence(grid, hit, "coronary calcium"),) if hit.any() else ()
    return {
        "coronary_agatston": Measure("coronary_agatston", score, "1",
                                     "Agatston-style coronary calcium score", ev),
        "coronary_calcium_volume": Measure("coronary_calcium_volume", ml, "ml",
                                           "coronary calcium volume (>= 130 HU)"),
    }


def aortic_calcium_measures(grid: WorkGrid, aorta: np.ndarray, bone: np.ndarray,
                            contrast: bool) -> dict[str, Measure]:
    """Calcium volume in the aortic wall (>= 130 HU unenhanced, >= 500 HU enhanced)."""
    if not aorta.any():
        return {"aortic_calcium_volume": Measure(
            "aortic_calcium_volume", None, "ml", "aortic wall calcium volume",
            note="aorta not found")}
    wall = ndi.binary_dilation(aorta, structure=ball_mm(3.0, grid.spacing_zyx))
    # The descending aorta lies on the spine: keep 4 mm away from bone.
    bone = ndi.binary_dilation(bone, structure=ball_mm(4.0, grid.spacing_zyx))
    fz, fy, fx = grid.factors
    vox = grid.source.voxels
    nz, ny, nx = vox.shape
    thr = 500.0 if contrast else CALCIUM_HU
    n = 0
    hit = np.zeros(grid.shape, dtype=bool)
    for k in np.nonzero(wall.any(axis=(1, 2)))[0]:
        allowed = np.repeat(np.repeat(wall[k] & ~bone[k], fy, 0), fx, 1)[:ny, :nx]
        slab = vox[k * fz:min(nz, (k + 1) * fz)]
        calc = (slab >= thr) & allowed[None]
        # Single voxels are noise; keep 3-D groups of 3 or more.
        labels, m = ndi.label(calc)
        if m:
            sizes = np.bincount(labels.ravel())
            good = sizes >= 3
            good[0] = False
            calc = good[labels]
        n += int(calc.sum())
        if calc.any():
            ys, xs = np.nonzero(calc.any(axis=0))
            hit[k, ys // fy, xs // fx] = True
    ml = n * grid.source.voxel_volume_ml
    ev = (component_evidence(grid, hit, "aortic wall calcium"),) if hit.any() else ()
    return {"aortic_calcium_volume": Measure(
        "aortic_calcium_volume", ml, "ml",
        f"aortic wall calcium volume (>= {thr:.0f} HU)", ev)}

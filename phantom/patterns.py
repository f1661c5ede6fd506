"""Diffuse lung patterns: mosaic attenuation, interlobular septal thickening, honeycombing.

Septa and honeycomb walls are the boundaries of a jittered Voronoi tessellation
(secondary pulmonary lobules are 1-2.5 cm polygons; honeycomb cysts 3-10 mm),
restricted to a subpleural band, as on HRCT (Fleischner Society glossary,
Hansell et al., Radiology 2008).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from phantom._raster import member_mask
from phantom.lesions import Scene, _r3, lung_mask, smooth_field
from phantom.types import (
    Distribution,
    FibroticSequela,
    MosaicAttenuation,
    SeptalThickening,
    Tissue,
)

logger = logging.getLogger(__name__)


def _bbox(mask: np.ndarray) -> tuple[slice, slice, slice]:
    out = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        idx = np.nonzero(mask.any(axis=other))[0]
        out.append(slice(int(idx[0]), int(idx[-1]) + 1))
    return (out[0], out[1], out[2])


def insert_mosaic(scene: Scene, lesion: MosaicAttenuation,
                  rng: np.random.Generator) -> dict[str, Any]:
    """Lower the parenchyma by ``delta_hu`` in geographic patches covering ``fraction``."""
    lung = lung_mask(scene)
    box = _bbox(lung)
    parenchyma = lung[box] & (scene.labels[box] == Tissue.LUNG)
    field = smooth_field(parenchyma.shape, scene.grid.spacing, lesion.patch_mm, rng)
    vals = field[parenchyma]
    n = int(round(lesion.fraction * len(vals)))
    thr = np.partition(vals, len(vals) - n)[len(vals) - n]
    sel = parenchyma & (field >= thr)
    scene.hu[box][sel] -= np.float32(lesion.delta_hu)
    scene.labels[box][sel] = Tissue.MOSAIC_LOW
    vol = float(sel.sum()) * scene.grid.voxel_ml
    zz, yy, xx = np.nonzero(sel)
    center = scene.grid.to_lps(zz.mean() + box[0].start, yy.mean() + box[1].start,
                               xx.mean() + box[2].start)
    return {"type": "mosaic_attenuation", "finding": "mosaic_attenuation_pattern",
            "center_lps_mm": _r3(center), "fraction_of_parenchyma": lesion.fraction,
            "delta_hu": lesion.delta_hu, "volume_ml": round(vol, 1)}


def _band(scene: Scene, depth_mm: float, distribution: Distribution,
          posterior: bool) -> tuple[tuple[slice, slice, slice], np.ndarray]:
    """Lung voxels within ``depth_mm`` of the pleura, in the requested zone (bbox, mask)."""
    g, lm = scene.grid, scene.lm
    lung = lung_mask(scene)
    box = _bbox(lung)
    sub = lung[box]
    band = np.zeros_like(sub)
    for k in range(sub.shape[0]):
        if sub[k].any():
            edt = ndimage.distance_transform_edt(sub[k], sampling=(g.spacing[1], g.spacing[0]))
            band[k] = sub[k] & (edt <= depth_mm)
    u = np.asarray(lm.u(g.z[box[0]]))[:, None, None]
    if distribution is Distribution.LOWER:
        band &= u < 0.45
    elif distribution is Distribution.UPPER:
        band &= u > 0.55
    if posterior:
        ys = g.y[box[1]][None, :, None] - np.float32(lm.center_xy[1])
        band &= ys > -0.3 * float(lm.half_depth(0.3))
    band &= member_mask(scene.labels[box], (Tissue.LUNG, Tissue.LUNG_VESSEL, Tissue.MOSAIC_LOW,
                                       Tissue.EMPHYSEMA))
    return box, band


def _voronoi(scene: Scene, box: tuple[slice, slice, slice], mask: np.ndarray, cell_mm: float,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the voxels of ``mask``: index arrays, distance to the nearest cell wall, cell id."""
    g = scene.grid
    idx = np.nonzero(mask)
    pts = np.stack([g.x[box[2]][idx[2]], g.y[box[1]][idx[1]], g.z[box[0]][idx[0]]], axis=1)
    lo, hi = pts.min(axis=0) - cell_mm, pts.max(axis=0) + cell_mm
    axes = [np.arange(lo[k], hi[k], cell_mm) for k in range(3)]
    seeds: np.ndarray = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    seeds = seeds + rng.uniform(-0.35, 0.35, seeds.shape) * cell_mm
    d, nn = cKDTree(seeds).query(pts, k=2, workers=-1)
    s1, s2 = seeds[nn[:, 0]], seeds[nn[:, 1]]
    sep = np.linalg.norm(s2 - s1, axis=1)
    # Distance from each point to the bisecting plane of its two nearest seeds.
    wall = (d[:, 1] ** 2 - d[:, 0] ** 2) / (2.0 * np.maximum(sep, 1e-6))
    return np.asarray(idx), wall.astype(np.float32), nn[:, 0]


def insert_septal(scene: Scene, lesion: SeptalThickening,
                  rng: np.random.Generator) -> dict[str, Any]:
    """Thickened septa: soft-tissue lines along lobule borders in the subpleural band."""
    box, band = _band(scene, lesion.depth_mm, lesion.distribution, posterior=False)
    idx, wall, _ = _voronoi(scene, box, band, lesion.cell_mm, rng)
    frac = np.clip((lesion.thickness_mm / 2.0 - wall) / scene.grid.blur_mm + 0.5, 0.0, 1.0)
    hu = scene.hu[box]
    cur = hu[tuple(idx)]
    hu[tuple(idx)] = np.maximum(cur, cur * (1.0 - frac) + np.float32(20.0) * frac)
    lab = scene.labels[box]
    on = frac >= 0.5
    sel = tuple(a[on] for a in idx)
    lab[sel] = Tissue.SEPTAL_LINE
    vol = float(on.sum()) * scene.grid.voxel_ml
    return {"type": "septal_thickening", "finding": "interlobular_septal_thickening",
            "distribution": lesion.distribution.value, "cell_mm": lesion.cell_mm,
            "thickness_mm": lesion.thickness_mm, "volume_ml": round(vol, 2),
            "center_lps_mm": _r3(_centroid(scene, box, sel))}


def insert_fibrosis(scene: Scene, lesion: FibroticSequela,
                    rng: np.random.Generator) -> dict[str, Any]:
    """Honeycombing: clustered air cysts with thick walls, subpleural, basal and posterior."""
    box, band = _band(scene, lesion.depth_mm, lesion.distribution, posterior=True)
    idx, wall, _ = _voronoi(scene, box, band, lesion.cyst_mm, rng)
    thick = max(1.2, 0.25 * lesion.cyst_mm)
    frac = np.clip((thick / 2.0 - wall) / scene.grid.blur_mm + 0.5, 0.0, 1.0)
    value = np.float32(-930.0) * (1.0 - frac) + np.float32(30.0) * frac
    hu = scene.hu[box]
    hu[tuple(idx)] = value
    lab = scene.labels[box]
    on = frac >= 0.5
    lab[tuple(a[on] for a in idx)] = Tissue.FIBROSIS
    lab[tuple(a[~on] for a in idx)] = Tissue.HONEYCOMB_CYST
    vol = float(len(frac)) * scene.grid.voxel_ml
    return {"type": "fibrotic_sequela", "finding": "pulmonary_fibrotic_sequela",
            "distribution": lesion.distribution.value, "cyst_mm": lesion.cyst_mm,
            "depth_mm": lesion.depth_mm, "volume_ml": round(vol, 2),
            "cyst_volume_ml": round(float((~on).sum()) * scene.grid.voxel_ml, 2),
            "center_lps_mm": _r3(_centroid(scene, box, tuple(idx)))}


def _centroid(scene: Scene, box: tuple[slice, slice, slice],
              sel: tuple[np.ndarray, ...]) -> np.ndarray:
    if len(sel[0]) == 0:
        return np.zeros(3)
    return scene.grid.to_lps(float(sel[0].mean()) + box[0].start,
                             float(sel[1].mean()) + box[1].start,
                             float(sel[2].mean()) + box[2].start)

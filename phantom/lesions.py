"""Insert lesions into a normal chest and record each one's ground truth.

Every inserter changes the float HU volume and the labels in place and
returns a JSON-ready dict with the finding key (``inference/findings.py``),
where the lesion is (LPS mm) and what it measures. Volumes are exact
(voxel counts or partial-volume sums), so analyzers can be scored against them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from phantom._raster import Box, Grid, capsule, ellipsoid_distance, member_mask
from phantom.anatomy import Landmarks, station_center
from phantom.errors import PhantomSpecError
from phantom.types import (
    AorticCalcification,
    Atelectasis,
    Bronchiectasis,
    Cardiomegaly,
    Consolidation,
    CoronaryCalcification,
    DilatedAorta,
    Distribution,
    Emphysema,
    FibroticSequela,
    GroundGlass,
    HiatalHernia,
    Lesion,
    LowBoneDensity,
    LungSite,
    Lymphadenopathy,
    Metal,
    MetalKind,
    MosaicAttenuation,
    Nodule,
    NoduleKind,
    PeribronchialThickening,
    PericardialEffusion,
    PleuralEffusion,
    Pneumothorax,
    SeptalThickening,
    Side,
    Tissue,
)

logger = logging.getLogger(__name__)

LUNG_MASS_MM = 30.0
LUNG_TISSUES = (
    Tissue.LUNG, Tissue.LUNG_VESSEL, Tissue.AIRWAY_WALL, Tissue.AIRWAY_LUMEN,
    Tissue.NODULE_SOLID, Tissue.NODULE_GROUND_GLASS, Tissue.GROUND_GLASS,
    Tissue.CONSOLIDATION, Tissue.EMPHYSEMA, Tissue.ATELECTASIS, Tissue.MOSAIC_LOW,
    Tissue.SEPTAL_LINE, Tissue.FIBROSIS, Tissue.HONEYCOMB_CYST,
)
_LUNG_U8 = np.array(LUNG_TISSUES, dtype=np.uint8)


@dataclass(slots=True)
class Scene:
    """The volume being built: grid, labels, float HU, landmarks, contrast."""

    grid: Grid
    labels: np.ndarray
    hu: np.ndarray
    lm: Landmarks
    contrast: bool
    calcium_factor: float = 1.0  # calcium CT numbers at the scan's kVp over 120 kVp


def _r3(p: np.ndarray | tuple[float, ...]) -> list[float]:
    return [round(float(v), 2) for v in p]


def side_of_x(lm: Landmarks, x: np.ndarray) -> np.ndarray:
    """True where x is in the patient's right half (LPS: right is -x)."""
    return x < lm.center_xy[0]


def lung_mask(scene: Scene, side: Side | None = None) -> np.ndarray:
    """Voxels of the (aerated or diseased) lung, optionally of one side."""
    assert scene.lm.lung_region is not None
    mask = scene.lm.lung_region & member_mask(scene.labels, _LUNG_U8)
    if side is not None:
        right = side_of_x(scene.lm, scene.grid.x)[None, None, :]
        mask &= right if side is Side.RIGHT else ~right
    return mask


def resolve_site(scene: Scene, site: LungSite, radius_mm: float) -> np.ndarray:
    """LPS point in the requested lung where a lesion of that radius fits best."""
    mask = lung_mask(scene, site.side)
    zs = np.nonzero(mask.any(axis=(1, 2)))[0]
    if len(zs) == 0:
        raise PhantomSpecError(f"the {site.side.value} lung is not in the scanned range")
    g = scene.grid
    k_lo, k_hi = int(zs[0]), int(zs[-1])
    margin = int(math.ceil(radius_mm / g.spacing[2]))
    if k_hi - k_lo > 2 * margin:
        k_lo, k_hi = k_lo + margin, k_hi - margin
    k = int(round(k_lo + site.level * (k_hi - k_lo)))
    # Nearest slice that still shows a reasonable area of this lung.
    best = None
    for dk in range(0, k_hi - k_lo + 1):
        for kk in (k - dk, k + dk):
            if k_lo <= kk <= k_hi and mask[kk].sum() * g.spacing[0] * g.spacing[1] > 400.0:
                best = kk
                break
        if best is not None:
            break
    k = best if best is not None else k
    sl = mask[k]
    edt = ndimage.distance_transform_edt(sl, sampling=(g.spacing[1], g.spacing[0]))
    js, is_ = np.nonzero(sl)
    y_lo, y_hi = js.min(), js.max()
    x_lo, x_hi = is_.min(), is_.max()
    j_t = y_lo + site.ap * (y_hi - y_lo)
    if site.side is Side.RIGHT:  # lateral = -x for the right lung
        i_t = x_hi - site.lateral * (x_hi - x_lo)
    else:
        i_t = x_lo + site.lateral * (x_hi - x_lo)
    need = min(radius_mm + g.blur_mm, 0.8 * float(edt.max()))
    cj, ci = np.nonzero(edt >= need)
    d2 = ((cj - j_t) * g.spacing[1]) ** 2 + ((ci - i_t) * g.spacing[0]) ** 2
    n = int(np.argmin(d2))
    return g.to_lps(k, float(cj[n]), float(ci[n]))


def _sphere_fraction(
    g: Grid, center: np.ndarray, radius: float
) -> tuple[Box, np.ndarray] | None:
    return capsule(g, center, center, radius, radius)


def insert_nodule(scene: Scene, n: Nodule, rng: np.random.Generator) -> dict[str, Any]:
    """A round nodule with partial-volume edges; ground-glass parts keep vessels visible."""
    r = n.diameter_mm / 2.0
    center = (np.array(n.center_mm, dtype=float) if n.center_mm is not None
              else resolve_site(scene, n.site, r))
    g = scene.grid
    res = _sphere_fraction(g, center, r)
    if res is None:
        raise PhantomSpecError("the nodule lies outside the scanned volume")
    box, f = res
    hu, lab = scene.hu[box], scene.labels[box]
    inlung = member_mask(lab, _LUNG_U8)
    solid_hu = 35.0 if not scene.contrast else 70.0
    gg_hu = -550.0
    volume = float(f.sum()) * g.voxel_ml
    if n.kind is NoduleKind.SOLID:
        tex = rng.normal(0.0, 8.0, f.shape).astype(np.float32)
        hu[...] = hu * (1.0 - f) + (solid_hu + tex) * f
        lab[f >= 0.5] = Tissue.NODULE_SOLID
        solid_d = n.diameter_mm
    else:
        target = np.where(inlung, hu * (1.0 - f) + gg_hu * f, hu)
        hu[...] = np.maximum(hu, target)
        lab[(f >= 0.5) & inlung] = Tissue.NODULE_GROUND_GLASS
        solid_d = 0.0
        if n.kind is NoduleKind.PART_SOLID:
            solid_d = n.diameter_mm * n.solid_fraction
            core = _sphere_fraction(g, center, solid_d / 2.0)
            if core is not None:
                cbox, cf = core
                scene.hu[cbox] = scene.hu[cbox] * (1.0 - cf) + solid_hu * cf
                scene.labels[cbox][cf >= 0.5] = Tissue.NODULE_SOLID
    key = "lung_mass" if n.diameter_mm >= LUNG_MASS_MM else "lung_nodule"
    return {
        "type": "nodule", "finding": key, "kind": n.kind.value,
        "side": "right" if center[0] < scene.lm.center_xy[0] else "left",
        "center_lps_mm": _r3(center), "diameter_mm": n.diameter_mm,
        "solid_core_diameter_mm": round(solid_d, 2), "volume_ml": round(volume, 3),
        "expected_hu": {"solid": solid_hu, "ground_glass": gg_hu}[
            "solid" if n.kind is NoduleKind.SOLID else "ground_glass"],
    }


def _blob_fraction(scene: Scene, center: np.ndarray, extent: float,
                   rng: np.random.Generator) -> tuple[tuple[slice, slice, slice], np.ndarray]:
    """Irregular patch: union of a few overlapping spheres within ``extent`` mm."""
    g = scene.grid
    pad = extent / 2.0 + g.blur_mm
    box = g.box(center - pad, center + pad)
    if box is None:
        raise PhantomSpecError("the opacity lies outside the scanned volume")
    acc = np.zeros(tuple(s.stop - s.start for s in box), dtype=np.float32)
    for i in range(6):
        off = np.zeros(3) if i == 0 else rng.normal(0.0, extent / 7.0, 3)
        rad = extent / 2.6 if i == 0 else extent * rng.uniform(0.18, 0.3)
        res = capsule(g, center + off, center + off, rad, rad)
        if res is None:
            continue
        b, f = res
        sub = tuple(slice(b[k].start - box[k].start, b[k].stop - box[k].start) for k in range(3))
        valid = all(s.start >= 0 and s.stop <= acc.shape[k] for k, s in enumerate(sub))
        if valid:
            np.maximum(acc[sub], f, out=acc[sub])
    return box, acc


def insert_ground_glass(scene: Scene, lesion: GroundGlass,
                        rng: np.random.Generator) -> dict[str, Any]:
    """Hazy opacity: parenchyma raised towards ``hu``, vessels left as they are."""
    center = resolve_site(scene, lesion.site, lesion.extent_mm / 3.0)
    box, f = _blob_fraction(scene, center, lesion.extent_mm, rng)
    assert scene.lm.lung_region is not None
    inlung = scene.lm.lung_region[box] & member_mask(scene.labels[box], _LUNG_U8)
    f = f * inlung
    hu = scene.hu[box]
    hu[...] = np.maximum(hu, hu * (1.0 - f) + np.float32(lesion.hu) * f)
    lab = scene.labels[box]
    sel = (f >= 0.5) & (lab == Tissue.LUNG)
    lab[sel] = Tissue.GROUND_GLASS
    return {
        "type": "ground_glass", "finding": "lung_opacity", "center_lps_mm": _r3(center),
        "side": lesion.site.side.value, "extent_mm": lesion.extent_mm,
        "volume_ml": round(float(sel.sum()) * scene.grid.voxel_ml, 3), "expected_hu": lesion.hu,
    }


def insert_consolidation(scene: Scene, lesion: Consolidation,
                         rng: np.random.Generator) -> dict[str, Any]:
    """Airspace consolidation replacing parenchyma and vessels; air bronchograms optional."""
    center = resolve_site(scene, lesion.site, lesion.extent_mm / 3.0)
    box, f = _blob_fraction(scene, center, lesion.extent_mm, rng)
    assert scene.lm.lung_region is not None
    lab = scene.labels[box]
    inlung = scene.lm.lung_region[box] & member_mask(lab, _LUNG_U8)
    if lesion.air_bronchograms:
        inlung &= lab != Tissue.AIRWAY_LUMEN
    f = f * inlung
    tex = rng.normal(0.0, 6.0, f.shape).astype(np.float32)
    hu = scene.hu[box]
    hu[...] = hu * (1.0 - f) + (np.float32(lesion.hu) + tex) * f
    sel = f >= 0.5
    lab[sel] = Tissue.CONSOLIDATION
    return {
        "type": "consolidation", "finding": "consolidation", "center_lps_mm": _r3(center),
        "side": lesion.site.side.value, "extent_mm": lesion.extent_mm,
        "air_bronchograms": lesion.air_bronchograms,
        "volume_ml": round(float(sel.sum()) * scene.grid.voxel_ml, 3), "expected_hu": lesion.hu,
    }


def _top_n(scene: Scene, mask: np.ndarray, score_fn: Any, n: int) -> tuple[np.ndarray, ...]:
    """Indices of the n voxels of ``mask`` with the highest score (score_fn(z, y, x) in mm)."""
    idx = np.nonzero(mask)
    if n > len(idx[0]):
        raise PhantomSpecError(
            f"asked for {n} voxels but only {len(idx[0])} are available; reduce the volume")
    g = scene.grid
    score = score_fn(g.z[idx[0]], g.y[idx[1]], g.x[idx[2]])
    if n == len(score):
        return idx
    part = np.argpartition(-score, n - 1)[:n]
    return tuple(a[part] for a in idx)


def _lung_voxels_by(
    scene: Scene, side: Side, volume_ml: float,
    score: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> tuple[tuple[np.ndarray, ...], int]:
    """The ``volume_ml`` of one lung that ``score(dy, dz)`` ranks highest, and its voxel count.

    ``dy`` is mm posterior of the body centre, ``dz`` mm above the lung base:
    effusion, pneumothorax and atelectasis differ only in which way they lean.
    """
    g = scene.grid
    mask = lung_mask(scene, side)
    n = int(round(volume_ml / g.voxel_ml))
    z_lo = float(g.z[np.nonzero(mask.any(axis=(1, 2)))[0][0]])
    cy = scene.lm.center_xy[1]
    return _top_n(scene, mask, lambda z, y, x: score(y - cy, z - z_lo), n), n


def _center_lps(g: Grid, idx: tuple[np.ndarray, ...]) -> np.ndarray:
    """Mean LPS position (x, y, z mm) of the voxels ``idx`` (z, y, x indices)."""
    return np.array([g.x[idx[2]].mean(), g.y[idx[1]].mean(), g.z[idx[0]].mean()])


def insert_pleural_effusion(scene: Scene, lesion: PleuralEffusion,
                            rng: np.random.Generator) -> dict[str, Any]:
    """Fluid fills the most dependent (posterior, basal) part of the hemithorax."""
    del rng
    g = scene.grid
    idx, n = _lung_voxels_by(scene, lesion.side, lesion.volume_ml, lambda dy, dz: dy - 0.7 * dz)
    scene.hu[idx] = np.float32(lesion.hu)
    scene.labels[idx] = Tissue.PLEURAL_EFFUSION
    depth = _max_depth(idx, scene.labels.shape, g.spacing[1])
    center = _center_lps(g, idx)
    return {
        "type": "pleural_effusion", "finding": "pleural_effusion", "side": lesion.side.value,
        "center_lps_mm": _r3(center), "volume_ml": round(n * g.voxel_ml, 2),
        "max_depth_mm": round(depth, 1), "expected_hu": lesion.hu,
    }


def _max_depth(idx: tuple[np.ndarray, ...], shape: tuple[int, ...], dy: float) -> float:
    """Largest anterior-posterior thickness of a collection (voxels per (z, x) column)."""
    flat = idx[0].astype(np.int64) * shape[2] + idx[2]
    counts = np.bincount(flat)
    return float(counts.max()) * dy if len(counts) else 0.0


def insert_pneumothorax(scene: Scene, lesion: Pneumothorax,
                        rng: np.random.Generator) -> dict[str, Any]:
    """Free air (no lung markings) in the least dependent (anterior) part of the hemithorax."""
    del rng
    g = scene.grid
    idx, n = _lung_voxels_by(scene, lesion.side, lesion.volume_ml, lambda dy, dz: -dy + 0.15 * dz)
    scene.hu[idx] = np.float32(-1000.0)
    scene.labels[idx] = Tissue.PNEUMOTHORAX
    # The visceral pleural line: lung voxels touching the free air.
    ptx = np.zeros(scene.labels.shape, dtype=bool)
    ptx[idx] = True
    edge = ndimage.binary_dilation(ptx) & ~ptx & lung_mask(scene, lesion.side)
    scene.hu[edge] = scene.hu[edge] * 0.6 + np.float32(-250.0) * 0.4
    depth = _max_depth(idx, scene.labels.shape, g.spacing[1])
    center = _center_lps(g, idx)
    return {
        "type": "pneumothorax", "finding": "pneumothorax", "side": lesion.side.value,
        "center_lps_mm": _r3(center), "volume_ml": round(n * g.voxel_ml, 2),
        "max_depth_mm": round(depth, 1),
    }


def smooth_field(shape: tuple[int, ...], spacing: tuple[float, float, float], scale_mm: float,
                 rng: np.random.Generator) -> np.ndarray:
    """A unit-variance random field smooth over ~``scale_mm``, on a (z, y, x) grid."""
    cell = scale_mm / 2.0
    coarse_shape = tuple(max(2, int(math.ceil(shape[k] * spacing[2 - k] / cell)) + 1)
                         for k in range(3))
    coarse = ndimage.gaussian_filter(rng.normal(0.0, 1.0, coarse_shape), 1.0)
    coarse /= coarse.std() + 1e-9
    field = ndimage.zoom(coarse.astype(np.float32),
                         [shape[k] / coarse_shape[k] for k in range(3)], order=1)
    field = field[: shape[0], : shape[1], : shape[2]]
    if field.shape != tuple(shape):
        field = np.pad(field, [(0, shape[k] - field.shape[k]) for k in range(3)], mode="edge")
    return field


def insert_atelectasis(scene: Scene, lesion: Atelectasis,
                       rng: np.random.Generator) -> dict[str, Any]:
    """Airless dependent lung at the base: soft-tissue density, no air bronchograms."""
    g = scene.grid
    idx, n = _lung_voxels_by(scene, lesion.side, lesion.volume_ml, lambda dy, dz: dy - 1.2 * dz)
    hu = np.float32(lesion.hu + (40.0 if scene.contrast else 0.0))
    scene.hu[idx] = hu + rng.normal(0.0, 5.0, len(idx[0])).astype(np.float32)
    scene.labels[idx] = Tissue.ATELECTASIS
    center = _center_lps(g, idx)
    return {"type": "atelectasis", "finding": "atelectasis", "side": lesion.side.value,
            "center_lps_mm": _r3(center), "volume_ml": round(n * g.voxel_ml, 2),
            "expected_hu": float(hu)}


def insert_lymphadenopathy(scene: Scene, lesion: Lymphadenopathy,
                           rng: np.random.Generator) -> dict[str, Any]:
    """Enlarged ovoid nodes at mediastinal / hilar stations (short axis given)."""
    g = scene.grid
    hu_node = np.float32(70.0 if scene.contrast else 40.0)
    allowed = (Tissue.MEDIASTINAL_FAT, Tissue.LUNG, Tissue.LUNG_VESSEL, Tissue.SOFT_TISSUE,
               Tissue.LYMPH_NODE)
    nodes = []
    for station in lesion.stations:
        c = station_center(scene.lm, station)
        radii = np.array([lesion.short_axis_mm / 2.0] * 2 + [0.75 * lesion.short_axis_mm])
        res = ellipsoid_distance(g, c, radii, np.eye(3), margin=0.0)
        if res is None:
            raise PhantomSpecError(f"lymph node station {station.value} is outside the scan")
        box, dist = res
        mask = (dist < 0) & member_mask(scene.labels[box], allowed)
        scene.labels[box][mask] = Tissue.LYMPH_NODE
        scene.hu[box][mask] = hu_node + rng.normal(0.0, 4.0, int(mask.sum())).astype(np.float32)
        nodes.append({"station": station.value, "center_lps_mm": _r3(c),
                      "volume_ml": round(float(mask.sum()) * g.voxel_ml, 3)})
    return {"type": "lymphadenopathy", "finding": "lymphadenopathy",
            "short_axis_mm": lesion.short_axis_mm, "nodes": nodes,
            "center_lps_mm": nodes[0]["center_lps_mm"], "expected_hu": float(hu_node)}


def insert_hiatal_hernia(scene: Scene, lesion: HiatalHernia,
                         rng: np.random.Generator) -> dict[str, Any]:
    """Stomach herniated through the oesophageal hiatus: behind the heart, gas above fluid."""
    del rng
    g, lm = scene.grid, scene.lm
    y_vb, _, ry = lm.vertebral_body(0.2)
    r = lesion.diameter_mm / 2.0
    c = np.array([lm.center_xy[0] + 12.0, lm.center_xy[1] + y_vb - ry - r * 0.75,
                  lm.z(0.2) + 0.6 * r])
    radii = np.array([r, 0.8 * r, 0.75 * r])
    res = ellipsoid_distance(g, c, radii, np.eye(3), margin=0.0)
    if res is None:
        raise PhantomSpecError("the hiatal hernia lies outside the scanned range")
    box, dist = res
    allowed = (Tissue.MEDIASTINAL_FAT, Tissue.LUNG, Tissue.LUNG_VESSEL, Tissue.ESOPHAGUS,
               Tissue.SOFT_TISSUE, Tissue.STOMACH, Tissue.LIVER, Tissue.MUSCLE,
               Tissue.LYMPH_NODE, Tissue.BOWEL_GAS, Tissue.AIRWAY_WALL, Tissue.AIRWAY_LUMEN)
    inside = (dist < 0) & member_mask(scene.labels[box], allowed)
    _, ys, _ = g.coords(box)
    gas = inside & (dist < -3.0) & (ys < c[1] - 0.35 * radii[1])
    fluid = inside & (dist < -3.0) & ~gas
    hu = scene.hu[box]
    hu[inside] = 40.0
    hu[fluid] = 15.0
    hu[gas] = -1000.0
    scene.labels[box][inside] = Tissue.HIATAL_HERNIA
    return {"type": "hiatal_hernia", "finding": "hiatal_hernia", "center_lps_mm": _r3(c),
            "diameter_mm": lesion.diameter_mm,
            "volume_ml": round(float(inside.sum()) * g.voxel_ml, 2),
            "gas_ml": round(float(gas.sum()) * g.voxel_ml, 2)}


def insert_emphysema(scene: Scene, lesion: Emphysema, rng: np.random.Generator) -> dict[str, Any]:
    """Low-attenuation clusters: a smooth random field thresholded to the requested fraction."""
    g, lm = scene.grid, scene.lm
    lung = lung_mask(scene)
    n_lung = int(lung.sum())
    parenchyma = lung & (scene.labels == Tissue.LUNG)
    n = min(int(round(lesion.fraction * n_lung)), int(parenchyma.sum()))
    zk = np.nonzero(lung.any(axis=(1, 2)))[0]
    yj = np.nonzero(lung.any(axis=(0, 2)))[0]
    xi = np.nonzero(lung.any(axis=(0, 1)))[0]
    box = (slice(zk[0], zk[-1] + 1), slice(yj[0], yj[-1] + 1), slice(xi[0], xi[-1] + 1))
    shape = tuple(s.stop - s.start for s in box)
    field = smooth_field(shape, g.spacing, lesion.cluster_mm, rng)
    if lesion.distribution is not Distribution.DIFFUSE:
        u = np.asarray(lm.u(g.z[box[0]]), dtype=np.float32)[:, None, None]
        sign = 1.0 if lesion.distribution is Distribution.UPPER else -1.0
        field = field + np.float32(2.0 * sign) * (u - np.float32(0.5))
    sub = parenchyma[box]
    vals = field[sub]
    if n <= 0:
        raise PhantomSpecError("emphysema fraction too small for this lung")
    thr = np.partition(vals, len(vals) - n)[len(vals) - n]
    sel = sub & (field >= thr)
    tex = rng.normal(0.0, 8.0, int(sel.sum())).astype(np.float32)
    scene.hu[box][sel] = np.float32(lesion.hu) + tex
    scene.labels[box][sel] = Tissue.EMPHYSEMA
    volume = float(sel.sum()) * g.voxel_ml
    zz, yy, xx = np.nonzero(sel)
    center = g.to_lps(zz.mean() + box[0].start, yy.mean() + box[1].start, xx.mean() + box[2].start)
    return {
        "type": "emphysema", "finding": "emphysema", "distribution": lesion.distribution.value,
        "center_lps_mm": _r3(center), "fraction_of_lung": round(volume / (n_lung * g.voxel_ml), 4),
        "volume_ml": round(volume, 2), "expected_hu": lesion.hu,
    }


def _path_between(path: np.ndarray, s0: float, s1: float) -> np.ndarray:
    """Sub-polyline of ``path`` between arc lengths s0 and s1 (mm)."""
    seg = np.linalg.norm(np.diff(path, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    s0, s1 = max(0.0, s0), min(float(cum[-1]), s1)
    ss = np.concatenate([[s0], cum[(cum > s0) & (cum < s1)], [s1]])
    return np.stack([np.interp(ss, cum, path[:, k]) for k in range(3)], axis=1)


def _blend_tube(scene: Scene, pts: np.ndarray, radius: float,
                peak: float) -> list[tuple[Box, np.ndarray]]:
    """Raise HU towards ``peak`` along the polyline ``pts`` (never lowering a voxel).

    Returns each drawn segment's box and voxel fraction, for callers that label it.
    """
    out = []
    for a, b in zip(pts[:-1], pts[1:], strict=True):
        res = capsule(scene.grid, a, b, radius, radius)
        if res is None:
            continue
        box, f = res
        hu = scene.hu[box]
        hu[...] = np.maximum(hu, hu * (1.0 - f) + np.float32(peak) * f)
        out.append((box, f))
    return out


def _paint_calcium(scene: Scene, pts: np.ndarray, radius: float, peak: float,
                   tissue: Tissue) -> np.ndarray:
    """Draw a calcified tube along pts; returns the boolean mask of labelled voxels."""
    mask = np.zeros(scene.labels.shape, dtype=bool)
    if len(pts) == 1:
        pts = np.vstack([pts, pts])
    for box, f in _blend_tube(scene, pts, radius, peak * scene.calcium_factor):
        sel = f >= 0.5
        scene.labels[box][sel] = tissue
        mask[box] |= sel
    return mask


def insert_coronary_calcium(scene: Scene, lesion: CoronaryCalcification,
                            rng: np.random.Generator) -> dict[str, Any]:
    """A calcified plaque along a coronary artery's course on the heart surface."""
    del rng
    path = scene.lm.coronary_paths[lesion.artery.value]
    total = float(np.sum(np.linalg.norm(np.diff(path, axis=0), axis=1)))
    s = lesion.position * total
    pts = _path_between(path, s - lesion.length_mm / 2.0, s + lesion.length_mm / 2.0)
    mask = _paint_calcium(scene, pts, lesion.diameter_mm / 2.0, lesion.peak_hu,
                          Tissue.CORONARY_CALCIUM)
    center = pts.mean(axis=0)
    return {
        "type": "coronary_calcification", "finding": "coronary_artery_wall_calcification",
        "artery": lesion.artery.value, "center_lps_mm": _r3(center),
        "length_mm": lesion.length_mm, "diameter_mm": lesion.diameter_mm,
        "peak_hu": lesion.peak_hu, "volume_ml": round(float(mask.sum()) * scene.grid.voxel_ml, 4),
        "_mask": mask,
    }


def insert_aortic_calcium(scene: Scene, lesion: AorticCalcification,
                          rng: np.random.Generator) -> dict[str, Any]:
    """Plaques on the aortic wall of one segment."""
    lm = scene.lm
    idx = [i for i, s in enumerate(lm.aorta_segment) if s == lesion.segment.value]
    zmin, zmax = float(scene.grid.z[0]), float(scene.grid.z[-1])
    idx = [i for i in idx if zmin + 5 <= lm.aorta_path[i, 2] <= zmax - 5]
    if not idx:
        raise PhantomSpecError(f"the {lesion.segment.value} aorta is not in the scanned range")
    mask = np.zeros(scene.labels.shape, dtype=bool)
    centers = []
    for _ in range(lesion.n_plaques):
        i = int(rng.choice(idx))
        i1 = min(i + 1, len(lm.aorta_path) - 1)
        i0 = max(i1 - 1, 0)
        tangent = lm.aorta_path[i1] - lm.aorta_path[i0]
        tangent /= np.linalg.norm(tangent) + 1e-9
        v = rng.normal(size=3)
        v -= tangent * (v @ tangent)
        v /= np.linalg.norm(v) + 1e-9
        c = lm.aorta_path[i] + v * (lm.aorta_radius[i] - lesion.size_mm / 4.0)
        a, b = c - tangent * lesion.size_mm / 2.0, c + tangent * lesion.size_mm / 2.0
        mask |= _paint_calcium(scene, np.vstack([a, b]), lesion.size_mm / 4.0, lesion.peak_hu,
                               Tissue.AORTIC_CALCIUM)
        centers.append(_r3(c))
    center = np.mean(np.array(centers), axis=0)
    return {
        "type": "aortic_calcification", "finding": "arterial_wall_calcification",
        "segment": lesion.segment.value, "n_plaques": lesion.n_plaques,
        "plaque_centers_lps_mm": centers, "center_lps_mm": _r3(center),
        "peak_hu": lesion.peak_hu,
        "volume_ml": round(float(mask.sum()) * scene.grid.voxel_ml, 4), "_mask": mask,
    }


# Steel at the ~65 keV effective energy of a 120 kVp beam: mu/rho of iron ~1.0 cm2/g
# (NIST XCOM, 60-80 keV: 1.21-0.60) x 7.87 g/cm3 ~ 7.9 /cm against 0.20 /cm for water,
# i.e. ~39000 HU; 30000 keeps within int16 and allows for beam hardening.
_STEEL_HU = 30000.0
_WIRE_RADIUS_MM = 0.6  # sternal cerclage wire, 1.2 mm (gauge 5-7 stainless steel)


def _insert_sternal_wires(scene: Scene, lesion: Metal) -> tuple[np.ndarray, np.ndarray]:
    """Six steel loops around the sternum (median sternotomy), each twisted in front.

    A wire thinner than a pixel is drawn one pixel wide with its attenuation spread over
    the pixel (mass kept: steel HU x wire area / pixel area), as the scanner averages it.
    Returns (metal mask, centre LPS).
    """
    g, lm = scene.grid, scene.lm
    cx, cy = lm.center_xy
    k = lm.size_scale
    pix = float(min(g.spacing[0], g.spacing[1]))
    area = math.pi * (_WIRE_RADIUS_MM * k) ** 2
    peak = float(min(_STEEL_HU, _STEEL_HU * area / (pix * pix)))
    peak = max(peak, lesion.hu)
    r_draw = 0.5 * pix
    mask = np.zeros(scene.labels.shape, dtype=bool)
    centres = []
    theta = np.linspace(0.0, 2.0 * math.pi, 25)
    for u in np.linspace(0.3, 0.8, 6):
        z = lm.z(float(u))
        b = float(lm.half_depth(float(u)))
        y_st = cy - b - 7.0 * k
        hw = (23.0 if u > 0.75 else 14.0) * k + 2.5
        hd = 6.0 * k + 2.5
        loop = np.stack([cx + hw * np.cos(theta), y_st + hd * np.sin(theta),
                         np.full_like(theta, z)], axis=1)
        knot = np.array([[cx + 3.0, y_st - hd, z], [cx + 3.0, y_st - hd - 5.0, z]])
        for pts in (loop, knot):
            for box, f in _blend_tube(scene, pts, r_draw, peak):
                sel = f >= 0.5
                scene.labels[box][sel] = Tissue.METAL
                mask[box] |= sel
        centres.append((cx, y_st, z))
    return mask, np.mean(np.array(centres), axis=0)


def insert_metal(scene: Scene, lesion: Metal, rng: np.random.Generator) -> dict[str, Any]:
    """Pacemaker (left, lead to the right ventricle), port (right, catheter to the SVC) or
    sternal wires."""
    g, lm = scene.grid, scene.lm
    if lesion.kind is MetalKind.STERNAL_WIRES:
        mask, centre = _insert_sternal_wires(scene, lesion)
        if lesion.streaks:
            _streaks(scene, mask, rng)
        return {
            "type": "metal", "finding": "medical_material", "device": "sternal_wires",
            "center_lps_mm": _r3(centre), "volume_ml": round(float(mask.sum()) * g.voxel_ml, 3),
            "hu": lesion.hu,
        }
    cx, cy = lm.center_xy
    u = 0.84
    a, b = float(lm.half_width(u)), float(lm.half_depth(u))
    sign = 1.0 if lesion.kind is MetalKind.PACEMAKER else -1.0
    dev = np.array([cx + sign * 0.55 * a, cy - b - 14.0 - lm.fat_mm / 2.0, lm.z(u)])
    mask = np.zeros(scene.labels.shape, dtype=bool)
    if lesion.kind is MetalKind.PACEMAKER:
        half = np.array([24.0, 4.0, 20.0])
        box = g.box(dev - half, dev + half)
        if box is not None:
            zs, ys, xs = g.coords(box)
            inside = ((np.abs(xs - dev[0]) / half[0]) ** 4 + (np.abs(zs - dev[2]) / half[2]) ** 4
                      <= 1.0) & (np.abs(ys - dev[1]) <= half[1])
            scene.hu[box][inside] = np.float32(lesion.hu)
            scene.labels[box][inside] = Tissue.METAL
            mask[box] |= inside
        c, ax, r = lm.heart_center, lm.heart_axes, lm.heart_radii
        lead_end = c + 0.55 * r[0] * ax[0] + 0.35 * r[1] * ax[1]
        ra_pt = c - 0.5 * r[0] * ax[0] + 0.5 * r[1] * ax[1]
        y_svc = cy - 0.25 * float(lm.half_depth(0.55)) + 6.0
        lead = np.array([dev, [cx + 0.2 * a, dev[1] + 25.0, lm.z(0.9)],
                         [cx - 26.0, y_svc, lm.z(0.72)], [cx - 26.0, y_svc, lm.z(0.6)],
                         ra_pt, lead_end])
        lead_hu, lead_r = 2500.0, 1.2
        name = "pacemaker"
    else:
        box = g.box(dev - np.array([13.0, 6.0, 13.0]), dev + np.array([13.0, 6.0, 13.0]))
        if box is not None:
            zs, ys, xs = g.coords(box)
            inside = (((xs - dev[0]) ** 2 + (zs - dev[2]) ** 2) <= 13.0**2) & (
                np.abs(ys - dev[1]) <= 6.0)
            scene.hu[box][inside] = np.float32(lesion.hu)
            scene.labels[box][inside] = Tissue.METAL
            mask[box] |= inside
        y_svc = cy - 0.25 * float(lm.half_depth(0.55)) + 6.0
        lead = np.array([dev, [cx - 0.35 * a, dev[1] + 30.0, lm.z(0.95)],
                         [cx - 28.0, y_svc, lm.z(0.8)], [cx - 26.0, y_svc, lm.z(0.55)]])
        lead_hu, lead_r = 400.0, 1.2
        name = "port"
    _blend_tube(scene, lead, lead_r, lead_hu)  # a thin wire: drawn, not labelled
    if lesion.streaks:
        _streaks(scene, mask, rng)
    return {
        "type": "metal", "finding": "medical_material", "device": name,
        "center_lps_mm": _r3(dev), "volume_ml": round(float(mask.sum()) * g.voxel_ml, 3),
        "hu": lesion.hu,
    }


def _streaks(scene: Scene, metal: np.ndarray, rng: np.random.Generator) -> None:
    """Alternating bright and dark streaks radiating from metal, slice by slice."""
    g = scene.grid
    body = scene.labels != Tissue.AIR
    angles = rng.uniform(0.0, math.pi, 10)
    amps = rng.uniform(80.0, 220.0, 10) * np.where(np.arange(10) % 2 == 0, 1.0, -1.0)
    xs = g.x[None, :]
    ys = g.y[:, None]
    for k in np.nonzero(metal.any(axis=(1, 2)))[0]:
        jj, ii = np.nonzero(metal[k])
        x0, y0 = float(g.x[ii].mean()), float(g.y[jj].mean())
        dx, dy = xs - x0, ys - y0
        r = np.sqrt(dx**2 + dy**2)
        acc = np.zeros((g.shape[1], g.shape[2]), dtype=np.float32)
        for ang, amp in zip(angles, amps, strict=True):
            perp = np.abs(-math.sin(ang) * dx + math.cos(ang) * dy)
            acc += (amp * np.exp(-(perp**2) / (2 * 2.5**2)) / (1.0 + r / 60.0)).astype(np.float32)
        sl = scene.hu[k]
        sl[body[k] & ~metal[k]] += acc[body[k] & ~metal[k]]


def lesion_options_truth(lesion: Lesion, scene: Scene) -> dict[str, Any]:
    """Truth for lesions that changed the anatomy before it was built."""
    lm = scene.lm
    if isinstance(lesion, LowBoneDensity):
        return {"type": "low_bone_density", "finding": "low_vertebral_bone_density",
                "trabecular_hu": lesion.trabecular_hu}
    if isinstance(lesion, Cardiomegaly):
        return {"type": "cardiomegaly", "finding": "cardiomegaly", "ctr": lesion.ctr,
                "center_lps_mm": _r3(lm.heart_center)}
    if isinstance(lesion, DilatedAorta):
        return {"type": "dilated_aorta", "finding": "thoracic_aortic_dilatation",
                "ascending_diameter_mm": lm.ascending_diameter_mm,
                "descending_diameter_mm": lm.descending_diameter_mm,
                "center_lps_mm": _r3(lm.aorta_path[int(np.argmax(lm.aorta_radius))])}
    if isinstance(lesion, PericardialEffusion):
        vol = float((scene.labels == Tissue.PERICARDIAL_EFFUSION).sum()) * scene.grid.voxel_ml
        return {"type": "pericardial_effusion", "finding": "pericardial_effusion",
                "thickness_mm": lesion.thickness_mm, "volume_ml": round(vol, 2),
                "center_lps_mm": _r3(lm.heart_center), "expected_hu": lesion.hu}
    if isinstance(lesion, Bronchiectasis):
        notes = lm.notes.get("bronchiectasis", [])
        mine = next((n for n in notes if n["dilation"] == lesion.dilation
                     and abs(float(n["radius_mm"]) - lesion.radius_mm) < 0.01), None)  # type: ignore[arg-type]
        if mine is None:
            raise PhantomSpecError("bronchiectasis region was not drawn (lung not in scan?)")
        return {"type": "bronchiectasis", "finding": "bronchiectasis",
                "side": lesion.site.side.value, **mine,
                "bronchoarterial_ratio": round(lesion.dilation, 2)}
    if isinstance(lesion, PeribronchialThickening):
        return {"type": "peribronchial_thickening", "finding": "peribronchial_thickening",
                "wall_factor": lesion.wall_factor}
    raise TypeError(f"{type(lesion).__name__} is not an anatomy-changing lesion")


INSERTERS = {
    Nodule: insert_nodule,
    GroundGlass: insert_ground_glass,
    Consolidation: insert_consolidation,
    PleuralEffusion: insert_pleural_effusion,
    Pneumothorax: insert_pneumothorax,
    Emphysema: insert_emphysema,
    CoronaryCalcification: insert_coronary_calcium,
    AorticCalcification: insert_aortic_calcium,
    Metal: insert_metal,
    Atelectasis: insert_atelectasis,
    Lymphadenopathy: insert_lymphadenopathy,
    HiatalHernia: insert_hiatal_hernia,
}
ANATOMY_LESIONS = (LowBoneDensity, Cardiomegaly, DilatedAorta, PericardialEffusion,
                   Bronchiectasis, PeribronchialThickening)
# Insertion order: diffuse parenchymal change first, then focal, then pleural, then calcium/metal.
ORDER: tuple[type, ...] = (
    Emphysema, MosaicAttenuation, SeptalThickening, FibroticSequela, GroundGlass, Consolidation,
    Nodule, PleuralEffusion, Atelectasis, Pneumothorax, Lymphadenopathy, HiatalHernia,
    CoronaryCalcification, AorticCalcification, Metal)


"""Ground truth of a generated phantom: findings present/absent and expected measurements.

Measurements are taken on the final (noisy, blurred) HU volume with the
generator's own labels, so they are what a perfect segmentation would measure.
Thresholds that decide presence are the ones the vocabulary states
(``inference/findings.py``): CTR > 0.5 (Danzer's cardiothoracic ratio),
ascending aorta >= 40 mm or descending >= 30 mm, vertebral trabecular bone
< 110 HU (Pickhardt et al., Ann Intern Med 2013), lesion >= 30 mm = mass.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import ndimage

from inference.findings import FINDING_KEYS
from phantom._raster import Grid, member_mask
from phantom.anatomy import Landmarks
from phantom.lesions import LUNG_TISSUES
from phantom.types import PhantomSpec, Tissue

SCHEMA = "ctnode-phantom-truth/1"
CTR_THRESHOLD = 0.5
ASCENDING_DILATED_MM = 40.0
DESCENDING_DILATED_MM = 30.0
LOW_BONE_HU = 110.0

MODELLED: frozenset[str] = frozenset(FINDING_KEYS)


def agatston_like(hu: np.ndarray, region: np.ndarray, spacing: tuple[float, float, float]) -> float:
    """Agatston-style score of calcium (>= 130 HU) inside ``region`` (Agatston et al., JACC 1990).

    Per slice and per connected lesion: area (mm^2) x density weight of its peak
    (1: 130-199, 2: 200-299, 3: 300-399, 4: >= 400), scaled by slice spacing / 3 mm
    because the original protocol used 3 mm slices.
    """
    if not region.any():
        return 0.0
    zk = np.nonzero(region.any(axis=(1, 2)))[0]
    px_area = spacing[0] * spacing[1]
    score = 0.0
    for k in zk:
        calc = region[k] & (hu[k] >= 130)
        lab, n = ndimage.label(calc)
        if n == 0:
            continue
        idx = np.arange(1, n + 1)
        areas = ndimage.sum_labels(calc, lab, idx) * px_area
        peaks = ndimage.maximum(hu[k], lab, idx)
        weights = np.select([peaks >= 400, peaks >= 300, peaks >= 200], [4, 3, 2], default=1)
        keep = areas >= 1.0  # Agatston's minimum lesion area of 1 mm^2
        score += float(np.sum(areas[keep] * weights[keep]))
    return score * spacing[2] / 3.0


def _cropped(mask: np.ndarray, op: Callable[[np.ndarray], np.ndarray], pad: int) -> np.ndarray:
    """Apply a morphological op inside the mask's bounding box (plus ``pad``) only."""
    out = np.zeros_like(mask)
    if not mask.any():
        return out
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        idx = np.nonzero(mask.any(axis=other))[0]
        box.append(slice(max(int(idx[0]) - pad, 0), min(int(idx[-1]) + pad + 1, mask.shape[axis])))
    b = (box[0], box[1], box[2])
    out[b] = op(mask[b])
    return out


def _dilate(mask: np.ndarray) -> np.ndarray:
    return _cropped(mask, lambda a: ndimage.binary_dilation(a, iterations=2), 3)


def measure(hu: np.ndarray, labels: np.ndarray, grid: Grid, lm: Landmarks,
            entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Expected measurements of the whole phantom (see module docstring)."""
    vml = grid.voxel_ml
    assert lm.lung_region is not None
    lung = lm.lung_region & member_mask(labels, LUNG_TISSUES)
    right_x = grid.x < lm.center_xy[0]
    right = lung & right_x[None, None, :]
    left = lung & ~right_x[None, None, :]
    parenchymal = lung & (labels != Tissue.AIRWAY_LUMEN)
    vals = hu[parenchymal]
    n = max(len(vals), 1)
    m: dict[str, Any] = {
        "lung_volume_ml": {
            "right": round(float(right.sum()) * vml, 1),
            "left": round(float(left.sum()) * vml, 1),
            "total": round(float(lung.sum()) * vml, 1),
        },
        "laa950_percent": round(100.0 * float((vals < -950).sum()) / n, 3),
        "laa910_percent": round(100.0 * float((vals < -910).sum()) / n, 3),
        "mean_lung_hu": round(float(vals.mean()) if len(vals) else 0.0, 1),
        "perc15_hu": round(float(np.percentile(vals, 15)) if len(vals) else 0.0, 1),
    }
    for key, tissue in (("pleural_effusion_ml", Tissue.PLEURAL_EFFUSION),
                        ("pneumothorax_ml", Tissue.PNEUMOTHORAX)):
        t = labels == tissue
        m[key] = {
            "right": round(float((t & right_x[None, None, :]).sum()) * vml, 1),
            "left": round(float((t & ~right_x[None, None, :]).sum()) * vml, 1),
        }
    peri = labels == Tissue.PERICARDIAL_EFFUSION
    m["pericardial_effusion_ml"] = round(float(peri.sum()) * vml, 1)
    m["pericardial_effusion_thickness_mm"] = round(lm.pericardial_effusion_mm, 1)
    # Cardiothoracic ratio from the analytic heart (myocardial outer surface).
    half_w = math.sqrt(float(np.sum((lm.heart_radii * lm.heart_axes[:, 0]) ** 2)))
    thorax = lm.max_thoracic_width()
    shell = lm.epicardial_fat_mm + lm.pericardial_effusion_mm + 1.5
    m["heart_width_mm"] = round(2.0 * half_w, 1)
    m["thoracic_width_mm"] = round(thorax, 1)
    m["ctr"] = round(2.0 * half_w / thorax, 3)
    m["ctr_silhouette"] = round(2.0 * (half_w + shell) / thorax, 3)
    # Axial CT measure: heart and inner thorax widths on the same slice. An ellipsoid's
    # transverse extent is largest on the slice through its centre.
    thorax_same = 2.0 * float(lm.half_width(lm.u(float(lm.heart_center[2]))))
    m["thoracic_width_heart_slice_mm"] = round(thorax_same, 1)
    m["ctr_axial"] = round(2.0 * half_w / thorax_same, 3)
    m["aorta_ascending_diameter_mm"] = round(lm.ascending_diameter_mm, 1)
    m["aorta_descending_diameter_mm"] = round(lm.descending_diameter_mm, 1)
    trab = labels == Tissue.VERTEBRAL_TRABECULAR
    core = _cropped(trab, lambda a: ndimage.binary_erosion(a, iterations=1), 2)
    if not core.any():
        core = trab
    m["vertebral_trabecular_hu_nominal"] = round(lm.trabecular_hu, 1)
    m["vertebral_trabecular_hu"] = round(float(hu[core].mean()), 1) if core.any() else None
    per_level = []
    for z0, z1 in lm.vertebra_z:
        ks = np.nonzero((grid.z >= z0) & (grid.z <= z1))[0]
        if len(ks) and core[ks].any():
            per_level.append({"z_range_mm": [round(z0, 1), round(z1, 1)],
                              "mean_hu": round(float(hu[ks][core[ks]].mean()), 1)})
    m["vertebral_bodies"] = per_level
    cor = np.zeros(labels.shape, dtype=bool)
    aor = np.zeros(labels.shape, dtype=bool)
    for e in entries:
        if e["type"] == "coronary_calcification":
            cor |= e["_mask"]
        elif e["type"] == "aortic_calcification":
            aor |= e["_mask"]
    for e in entries:
        if "_mask" in e:
            region = _dilate(e["_mask"])
            e["agatston_like"] = round(agatston_like(hu, region, grid.spacing), 1)
    m["coronary_agatston_like"] = round(
        agatston_like(hu, _dilate(cor), grid.spacing), 1
    ) if cor.any() else 0.0
    m["coronary_calcium_ml"] = round(float(cor.sum()) * vml, 4)
    m["aortic_calcium_ml"] = round(float(aor.sum()) * vml, 4)
    m["aortic_agatston_like"] = round(
        agatston_like(hu, _dilate(aor), grid.spacing), 1
    ) if aor.any() else 0.0
    return m


def findings_map(entries: list[dict[str, Any]], m: dict[str, Any]) -> dict[str, str]:
    """Every one of the 22 finding keys: "present", "absent" or "not_modelled"."""
    inserted = {e["finding"] for e in entries}
    out: dict[str, str] = {}
    for key in FINDING_KEYS:
        if key not in MODELLED:
            out[key] = "not_modelled"
            continue
        if key == "cardiomegaly":
            present = m["ctr"] > CTR_THRESHOLD
        elif key == "thoracic_aortic_dilatation":
            present = (m["aorta_ascending_diameter_mm"] >= ASCENDING_DILATED_MM
                       or m["aorta_descending_diameter_mm"] >= DESCENDING_DILATED_MM)
        elif key == "low_vertebral_bone_density":
            present = m["vertebral_trabecular_hu_nominal"] < LOW_BONE_HU
        elif key == "lung_opacity":
            present = bool(inserted & {"lung_opacity", "consolidation"})
        else:
            present = key in inserted
        out[key] = "present" if present else "absent"
    return out


def spec_to_json(spec: PhantomSpec) -> dict[str, Any]:
    """The specification as plain JSON (lesions with their type name)."""
    def plain(v: Any) -> Any:
        if hasattr(v, "__dataclass_fields__"):
            d = {f: plain(getattr(v, f)) for f in v.__dataclass_fields__}
            return d
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if hasattr(v, "value") and not isinstance(v, int | float | str):
            return v.value
        return v

    d = {f: plain(getattr(spec, f)) for f in spec.__dataclass_fields__ if f != "lesions"}
    d["lesions"] = [{"type": type(x).__name__, **plain(x)} for x in spec.lesions]
    d["num_slices"] = spec.num_slices
    return d


def landmarks_to_json(lm: Landmarks) -> dict[str, Any]:
    """Where the main anatomical structures are (LPS mm), for analyzers' sanity checks."""
    return {
        "lung_base_z_mm": round(lm.z(0.0), 1),
        "lung_apex_z_mm": round(lm.z(1.0), 1),
        "carina_z_mm": round(lm.z(0.62), 1),
        "heart_center_lps_mm": [round(float(v), 1) for v in lm.heart_center],
        "heart_radii_mm": [round(float(v), 1) for v in lm.heart_radii],
        "hila_lps_mm": {k: [round(float(x), 1) for x in v] for k, v in lm.hila.items()},
        "body_center_xy_mm": list(lm.center_xy),
        "table_top_y_mm": round(lm.back_y + 6.0, 1),
        "subcutaneous_fat_mm": round(lm.fat_mm, 1),
        "vertebral_body_z_ranges_mm": [[round(a, 1), round(b, 1)] for a, b in lm.vertebra_z],
        # Level names counted from the ribs: rib pair i articulates with vertebra T(i+1).
        "vertebral_levels": [
            {"name": n, "z_range_mm": [round(a, 1), round(b, 1)]}
            for n, (a, b) in zip(lm.vertebra_names, lm.vertebra_z, strict=True)],
        "aortic_arch": "right" if lm.right_arch else "left",
        "arms": "down" if lm.arms_down else "up",
        "scoliosis_cobb_deg": round(lm.scoliosis_deg, 1),
        "scoliosis_apex_shift_mm": round(lm.scoliosis_amp_mm, 1),
        "body_scale": round(lm.size_scale, 3),
    }

"""Vertebral bodies, the L1 level, and its trabecular attenuation (opportunistic screening).

Pickhardt et al. (Ann Intern Med 2013;158:588): L1 trabecular attenuation
<= 110 HU is ~90 % specific for osteoporosis, <= 160 HU ~90 % sensitive, at
120 kVp. The threshold was published for L1, so L1 is measured or nothing:

- L1 is found from the image, not from a position in the lungs: L1 is the first
  vertebral body below the lowest rib-bearing vertebra (T12). A slice bears ribs
  when bone lies on both sides of the spine in the band 3.2-5.5 vertebral-body
  radii from its centre and behind the body's centre (rib necks and angles; the
  transverse processes end closer, lumbar ones included, at ~40-45 mm in adults).
  Vertebral bodies are separated by their discs (no bone above 200 HU there).
- The ROI is the centre of the vertebral body (the thickest part of the vertebra),
  kept away from the cortex; the value is the median over L1's slices.
- Not covered (no rib-bearing level, or L1 below the field of view): value None
  with the reason. Eleven or thirteen rib pairs, or a lumbarised/sacralised
  segment, shift the count by one level (known limit of counting by ribs).
- kVp other than 120: divided by the calcium kVp factor (hydroxyapatite; the marrow's
  fat is ignored), and the note says so.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage as ndi

from inference.analyzer.calcium import calcium_kvp_factor
from inference.analyzer.evidence import component_evidence
from inference.analyzer.types import Anatomy, Measure, WorkGrid

logger = logging.getLogger(__name__)

CORTEX_HU = 200.0
"""Vertebral cortex vs soft tissue: same basis as ``bone.BONE_HU`` (trabecular bone
100-300 HU, cortex > 1000 HU at 120 kVp; soft tissue < 100 HU)."""
ADULT_THORAX_MM = 260.0
"""Adult inner thoracic width at the heart (~240-280 mm on CT, the thorax width that
chest CTR studies measure); body-size unit for scaling distances in children."""
BODY_DEPTH_MM = 32.0
"""Adult thoracolumbar vertebral body depth (anteroposterior, ~28-35 mm)."""
MAX_SLICE_MM = 5.0
"""Adult thoracolumbar discs are ~5-10 mm thick: slices up to 5 mm (x body-size unit)
still show each disc as a gap between bodies."""
TRABECULAR_MAX_HU = 400.0
"""Trabecular bone stays below ~350 HU even in young adults; an ROI above 400 HU is on an
endplate (cortex) and is skipped."""
RIB_BAND = (3.2, 5.5)
"""Rib band, in vertebral-body inscribed radii from its centre (adult ~48-80 mm)."""
RIB_RUN_FRACTION = 0.5
"""A vertebral level is rib-bearing when at least half of its slices show rib in the band: a
majority vote over slices (robust to one missing slice), not a clinical constant."""


def vertebral_bodies(grid: WorkGrid, anatomy: Anatomy) -> np.ndarray:
    """Per-slice filled bone of the spine: the bone component nearest the posterior midline."""
    bone = anatomy.body & (grid.hu > CORTEX_HU)
    spine = np.zeros_like(bone)
    for k in range(bone.shape[0]):
        if not anatomy.body[k].any():
            continue
        filled = ndi.binary_fill_holes(ndi.binary_closing(bone[k], iterations=1))
        labels, n = ndi.label(filled)
        if n == 0:
            continue
        ys, xs = np.nonzero(anatomy.body[k])
        cx = (xs.min() + xs.max()) / 2.0
        back = ys.max() if anatomy.anterior_sign < 0 else ys.min()
        depth = ys.max() - ys.min()
        best, best_cost = 0, np.inf
        for lab, sl in enumerate(ndi.find_objects(labels), start=1):
            area = (labels[sl] == lab).sum()
            if area < 20:
                continue
            yc = (sl[0].start + sl[0].stop) / 2.0
            xc = (sl[1].start + sl[1].stop) / 2.0
            # Spine: near the midline, in the posterior third, large.
            if abs(yc - back) > 0.45 * depth or abs(xc - cx) > 0.15 * (xs.max() - xs.min()):
                continue
            cost = abs(xc - cx) - 0.01 * area
            if cost < best_cost:
                best, best_cost = lab, cost
        if best:
            spine[k] = labels == best
    return spine


def _unit(grid: WorkGrid, anatomy: Anatomy) -> float:
    """Body-size factor (0.5..1): the widest lung extent over an adult thorax."""
    dx = grid.spacing_zyx[2]
    ks = np.nonzero(anatomy.lungs.any(axis=(1, 2)))[0]
    if ks.size == 0:
        return 1.0
    w = max(float(np.ptp(np.nonzero(anatomy.lungs[k].any(axis=0))[0])) * dx for k in ks)
    return float(np.clip(w / ADULT_THORAX_MM, 0.5, 1.0))


def _bodies(grid: WorkGrid, anatomy: Anatomy, spine: np.ndarray, unit: float
            ) -> dict[int, tuple[float, int, int]]:
    """Slices through a vertebral body: slice -> (body radius mm, ROI centre row, col).

    The spine mask also holds the neural arch, on disc levels too. What tells a body
    slice is how far forward bone reaches in front of the spine: the body's anterior
    cortex is there at any bone density (the trabecular bone of an osteoporotic body
    is as faint as a disc, 70-110 HU), a disc (no cortex) is not. A slice is a body
    slice when that front lies within 8 mm x unit of the most anterior front within
    +-25 mm x unit of z. The ROI centre sits 45 % of the body depth behind the front.
    Only bone connected to the spine counts, in a +-8 mm strip around its midline.
    """
    dy, dx, dz = grid.spacing_zyx[1], grid.spacing_zyx[2], grid.spacing_zyx[0]
    a = anatomy.anterior_sign
    thr = CORTEX_HU * calcium_kvp_factor(_kvp(grid))
    depth_px = BODY_DEPTH_MM * unit / dy
    half_w = max(1, int(round(8.0 * unit / dx)))
    eight = np.ones((3, 3), dtype=bool)
    front: dict[int, tuple[float, int]] = {}
    for k in np.nonzero(spine.any(axis=(1, 2)))[0]:
        rows, cols = np.nonzero(spine[k])
        cx = int(round(float(np.median(cols))))
        lead = float(rows.max() if a > 0 else rows.min())  # the spine's own front row
        # Bone connected to the spine (the body's cortical ring joins the pedicles even
        # when its trabecular core is faint); enhanced blood and noise specks in front of
        # the spine are not connected to it through bone.
        labels, _ = ndi.label(anatomy.body[k] & ((grid.hu[k] > thr) | spine[k]), structure=eight)
        ids = np.unique(labels[spine[k]])
        conn = np.isin(labels, ids[ids > 0])
        lo_c, hi_c = max(0, cx - half_w), min(grid.shape[2], cx + half_w + 1)
        strip = conn[:, lo_c:hi_c]
        rr = np.nonzero(strip.any(axis=1))[0]
        ahead = rr[(rr - lead) * a >= 0] if rr.size else rr
        ahead = ahead[np.abs(ahead - lead) <= 1.6 * depth_px]
        f = float(ahead.max() if a > 0 else ahead.min()) if ahead.size else lead
        front[int(k)] = (f * a * dy, cx)  # larger = more anterior
    out: dict[int, tuple[float, int, int]] = {}
    win = max(1, int(round(25.0 * unit / dz)))
    r_body = 0.45 * BODY_DEPTH_MM * unit
    for k, (f, cx) in front.items():
        near = [front[j][0] for j in range(k - win, k + win + 1) if j in front]
        if f < max(near) - 8.0 * unit:
            continue
        row = f / dy * a - a * 0.45 * depth_px
        cy = int(round(row))
        if 0 <= cy < grid.shape[1]:
            out[k] = (r_body, cy, cx)
    return out


def _rib_slices(grid: WorkGrid, anatomy: Anatomy, bodies: dict[int, tuple[float, int, int]],
                r_ref: float) -> list[int]:
    """Slices with bone on both sides in the rib band behind the vertebral body's centre."""
    dy, dx = grid.spacing_zyx[1], grid.spacing_zyx[2]
    thr = CORTEX_HU * calcium_kvp_factor(_kvp(grid))
    yy, xx = np.ogrid[: grid.shape[1], : grid.shape[2]]
    out = []
    for k, (_, cy, cx) in bodies.items():
        lateral = np.abs(xx - cx) * dx
        post = (yy - cy) * dy * (-anatomy.anterior_sign)
        band = ((lateral >= RIB_BAND[0] * r_ref) & (lateral <= RIB_BAND[1] * r_ref)
                & (post >= -0.5 * r_ref) & (post <= 4.0 * r_ref))
        bone = band & anatomy.body[k] & (grid.hu[k] > thr)
        if (bone & (xx < cx)).sum() >= 1 and (bone & (xx > cx)).sum() >= 1:
            out.append(k)
    return out


def _kvp(grid: WorkGrid) -> float | None:
    return getattr(getattr(grid.source, "acquisition", None), "kvp", None)


def find_l1(grid: WorkGrid, anatomy: Anatomy, spine: np.ndarray
            ) -> tuple[list[int], dict[int, tuple[float, int, int]], str]:
    """(L1's slices, vertebral-body slices, reason when L1 is not identified)."""
    unit = _unit(grid, anatomy)
    if grid.spacing_zyx[0] > MAX_SLICE_MM * unit + 0.01:
        return [], {}, (f"slices of {grid.spacing_zyx[0]:.1f} mm are too thick to separate "
                        "the vertebrae by their discs, so L1 cannot be counted")
    bodies = _bodies(grid, anatomy, spine, unit)
    if len(bodies) < 3:
        return [], bodies, "no vertebral bodies found"
    r_ref = float(np.median([v[0] for v in bodies.values()]))
    cs = anatomy.cranial_sign
    # Order cranial -> caudal.
    order = sorted(bodies, key=lambda k: -k * cs)
    ribs = set(_rib_slices(grid, anatomy, bodies, r_ref))
    # Runs of consecutive body slices (discs break them): one run per vertebral body.
    runs: list[list[int]] = []
    for k in order:
        if runs and abs(k - runs[-1][-1]) == 1:
            runs[-1].append(k)
        else:
            runs.append([k])
    # The runs must look like vertebrae: most spine slices are body slices and a body
    # is 12-35 mm (x unit) tall. Otherwise bodies and discs were not told apart.
    n_spine = int(spine.any(axis=(1, 2)).sum())
    heights = [len(r) * grid.spacing_zyx[0] for r in runs if len(r) >= 2]
    if (len(bodies) < 0.5 * n_spine or not heights
            or not 12.0 * unit <= float(np.median(heights)) <= 35.0 * unit):
        return [], bodies, ("the vertebral bodies could not be told from their discs on this "
                            "image, so the levels (and L1) were not identified")
    # T12: the lowest body with ribs beside it on at least half of its slices (the lowest
    # rib slopes down laterally and may reach the top of L1 on a slice or two).
    bearing = [i for i, r in enumerate(runs)
               if len(r) >= 2 and sum(k in ribs for k in r) >= RIB_RUN_FRACTION * len(r)]
    if not bearing:
        return [], bodies, "no rib-bearing vertebra identified, so L1 cannot be counted"
    below = runs[bearing[-1] + 1:]
    if not below:
        return [], bodies, ("L1 not identified: ribs lie beside the spine down to the last "
                            "vertebra in view (the scan ends at T12, or low ribs reach below it)")
    l1 = below[0]
    last = 0 if cs > 0 else grid.shape[0] - 1  # the most caudal slice
    # L1 bears no ribs: flags are allowed only on its top third (the 12th rib sloping
    # down); ribs lower in it, or on a body cut by the scan's end, mean the lowest
    # rib-bearing level is not certain (the scan may end in the thoracic spine).
    low_part = l1[(len(l1) + 2) // 3:]
    if any(k in ribs for k in low_part) or (last in l1 and any(k in ribs for k in l1)):
        return [], bodies, ("the lowest rib-bearing vertebra is not in the field of view, "
                            "so L1 cannot be counted")
    if last in l1:
        # Without the disc below it, the body might be a thoracic one whose ribs fall
        # between the slices; and Pickhardt's ROI needs the body's centre.
        return [], bodies, ("the vertebral body counted as L1 is cut by the end of the scan "
                            "(its disc below is not in view)")
    return l1, bodies, ""


def vertebral_measures(grid: WorkGrid, anatomy: Anatomy, spine: np.ndarray
                       ) -> dict[str, Measure]:
    """Trabecular HU of the L1 vertebral body's centre, or None with the reason."""
    name, unit = "vertebral_trabecular_hu", "[hnsf'U]"
    if not spine.any():
        return {name: Measure(name, None, unit, "L1 trabecular attenuation",
                              note="not assessed: no vertebral body found")}
    l1, bodies, why = find_l1(grid, anatomy, spine)
    if not l1:
        return {name: Measure(name, None, unit, "L1 trabecular attenuation",
                              note=f"not assessed: {why}")}
    dy, dx = grid.spacing_zyx[1], grid.spacing_zyx[2]
    values: list[float] = []
    roi_mask = np.zeros_like(spine)
    vox = grid.source.voxels
    fz, fy, fx = grid.factors
    yy, xx = np.ogrid[: spine.shape[1], : spine.shape[2]]
    for k in l1:
        r, cy, cx = bodies[k]
        roi = (((yy - cy) * dy) ** 2 + ((xx - cx) * dx) ** 2) <= (0.5 * r) ** 2
        roi_mask[k] = roi
        ys, xs = np.nonzero(roi)
        patch = vox[k * fz:(k + 1) * fz][:, (ys * fy).clip(0, vox.shape[1] - 1),
                                          (xs * fx).clip(0, vox.shape[2] - 1)]
        v = float(np.median(patch))
        if v <= TRABECULAR_MAX_HU * calcium_kvp_factor(_kvp(grid)):
            values.append(v)  # above: an endplate (cortex), not trabecular bone
    if not values:
        return {name: Measure(name, None, unit, "L1 trabecular attenuation",
                              note="not assessed: only endplates of L1 on the slices")}
    value = float(np.median(values))
    kvp = _kvp(grid)
    f = calcium_kvp_factor(kvp)
    note = ("L1 = first vertebral body below the lowest rib-bearing vertebra (T12), "
            f"{len(l1)} slice(s)")
    if f != 1.0:
        value /= f
        note += f"; corrected from {kvp:g} kVp to 120 kVp (hydroxyapatite factor {f:.2f})"
    ev = (component_evidence(grid, roi_mask, "L1 trabecular ROI"),)
    return {name: Measure(name, value, unit,
                          "trabecular attenuation of the L1 vertebral body (median of slices)",
                          ev, note=note)}

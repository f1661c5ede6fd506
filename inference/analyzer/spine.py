"""Vertebral bodies, the L1 level, and its trabecular attenuation (opportunistic screening).

Pickhardt et al. (Ann Intern Med 2013;158:588): L1 trabecular attenuation
<= 110 HU is ~90 % specific for osteoporosis, <= 160 HU ~90 % sensitive, at
120 kVp. The threshold was published for L1, so L1 is measured or nothing.

L1 is found from the image content, anchored on the spinal canal (never on the spine's
bone mask, which an enhanced aorta can join):

- The canal: the hole the vertebral arch closes around the cord, followed along z
  (``_canal``).
- The ribs: bone lateral to the vertebra, labelled in 3-D; each rib's most medial part
  is its costovertebral end, and its z is the level of the vertebra it articulates
  with. The lowest rib-bearing vertebra is T12 (``_rib_heads``). The lowest ribs slope
  down beside L1-L2, so counting rib *slices* (the old rule) puts T12 too low; counting
  rib *heads* does not.
- The discs: along a box inside the vertebral bodies, in front of the canal, a disc is a
  dip between two close dense endplates (``_body_profile``, ``_discs``); a faint
  (osteoporotic) body's middle is a dip too, but its endplates are a body's height apart.
- The discs repeat every vertebral pitch (measured from the two lowest rib levels, then
  from neighbouring discs): T12/L1 is the first disc of that grid below T12's rib head,
  L1/L2 the next; a disc too thin to be resolved is taken where the grid puts it, and
  the note says how many of L1's two discs were seen.
- L1's mid-body is measured (the central 40 % of its height, an ROI in the body's centre
  away from the cortex, all full-resolution pixels pooled, median).

Not covered: the lowest rib at the scan's lower edge (the scan ends at T12 or above),
or L1's lower disc not in view: value None with that reason. The count assumes 12
rib-bearing vertebrae. Numerical variants (11 or 13 rib-bearing vertebrae, or 4 or 6
lumbar ones) occur in several per cent of people (~8 % on whole-spine MRI, Tins &
Balain, Insights Imaging 2016; Carrino et al., Radiology 2011) and shift the level by
one; a chest CT cannot see them (it does not reach the sacrum), so the note says that
L1 was counted from the ribs, and when the lowest rib was seen on one side only (a
hypoplastic 12th rib, or a 13th) the note says so, as a lower-confidence count.
kVp other than 120: divided by the calcium kVp factor (hydroxyapatite; the marrow's fat
is ignored), and the note says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from inference.analyzer.calcium import calcium_kvp_factor
from inference.analyzer.evidence import component_evidence
from inference.analyzer.morphology import IN_PLANE_4, crop_box, fill_holes_2d, grow, open_ball
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
PITCH_MM = 25.0
"""One thoracolumbar vertebra plus its disc, T10-L2 (body ~22-28 mm + disc ~5-10 mm;
Panjabi, Spine 1991 and 1992): the z window for the canal median and the body profile."""
MIN_BODY_MM = 12.0
"""Two discs are at least 12 mm (x body-size unit) apart: a T10-L2 body is 20-28 mm tall in
adults (Panjabi, Spine 1992), about half that in a small child."""
DISC_DEPTH_HU = 40.0
"""A disc's box reads at least 40 HU below the endplates on either side of it: cortical
endplates raise their slices by 100-200 HU over a disc; the box mean's noise is a few HU
(~50 voxels at 15-40 HU SD), so 40 HU is far above chance."""
CANAL_AREA_MM2 = (60.0, 600.0)
"""Thoracolumbar canal ~14-18 mm deep and 15-24 mm wide, ~170-350 mm2 (Panjabi, Spine 1991,
1992); the bounds (x unit^2) are wide so that a small or partly closed hole still counts and
a body's whole marrow (~800-1200 mm2) does not."""
CANAL_MAX_HU = 100.0
"""The canal holds CSF (0-15 HU), cord (30-40 HU) and epidural fat (-100 HU); its mean on
the work grid stays below 100 HU even with the bony ring's partial volume (35-70 HU
measured on the real cases). Normal trabecular marrow is 150-250 HU, so a marrow hole in
the body's cortex is not taken for the canal (an osteoporotic one can be: the canal is
the most posterior hole, and the median over a pitch outvotes single slices)."""
CANAL_SMOOTH_MM = 25.0
"""The canal anchor is the running median over one vertebral pitch (PITCH_MM): the arch
closes around the canal on the pedicle slices of every vertebra."""
CANAL_RADIUS_MM = 8.0
"""Half the thoracolumbar canal's depth (~14-18 mm, Panjabi 1991/1992): its centre lies
this far behind the vertebral body's posterior cortex."""
BODY_BOX = (0.15, 0.8)
"""The body box spans 15-80 % of the body depth in front of the canal: inside the body,
short of its anterior cortex, so the aorta lying on the body's front stays out."""
BODY_HALF_W_MM = 12.0
"""Half-width of the body box: T10-L2 bodies are 35-50 mm wide (Panjabi 1991/1992), so
+-12 mm stays inside the body and clear of the rib heads and psoas."""
DISC_MAX_HU = 120.0
"""Physics: a disc is hydrated fibrocartilage (water with collagen and proteoglycans),
~70-110 HU at 120 kVp; normal trabecular bone reads 150-250 HU. A box inside a closed
cortical ring (``RING_FILL``) reads at least this + ``DISC_DEPTH_HU``: an osteoporotic
body's marrow is as faint as a disc, its cortex is not."""
MAX_DISC_SPAN_MM = 12.5
"""Endplate to endplate across a T11-L2 disc: the disc is 5-9 mm tall, plus up to one
2.5 mm slice of partial volume (12.5 mm, x body-size unit); across a body it is the body's
height, >= 20 mm in adults (Panjabi, Spine 1992; the phantom's body is 16.8 mm). On
LIDC-0001, whose marrow reads ~90 HU, the endplates flank its discs 7.5-10 mm apart and
its body middles 20-22 mm apart (a check, not the source)."""
RING_FILL = 0.9
"""A box is inside a closed cortical ring when the ring's filled interior covers 90 % of it
(all of it but a rim voxel or two where the ring runs close to the box)."""
RIB_EXCLUDE_MM = 28.0
"""Bone within 28 mm of the canal's midline is the vertebra: the body (half-width 18-25 mm
at T10-L2), the articular pillars (facets, ~15-25 mm out; fused from level to level on a
2 mm grid, they would join all the ribs into one) and the roots of the transverse
processes (Panjabi, Spine 1991 and 1992). Beyond it, each rib (neck onwards) and each
transverse process's tip is its own 3-D component."""
RIB_MAX_RADIUS_MM = 8.0
"""A rib is a flat bar ~6-10 mm thick and 10-15 mm tall: no ball of radius 8 mm fits in
it, while one fits in the enhanced aorta or a bowel loop filled with oral contrast."""
RIB_SLAB_MM = (25.0, 60.0)
"""Ribs are followed from 25 mm in front of the canal's centre (the heads, on the body's
posterolateral corner) to 60 mm behind it (the rib angles); anterior bone (sternum,
costal cartilage, contrast in bowel and vessels) is outside."""
RIB_MEDIAL_MAX_MM = 50.0
"""A rib's medial end (head and neck, resting on the transverse process) lies within the
transverse processes' span, <= ~45 mm from the midline; bone starting further out is a
scapula or a rib's lateral arc."""
RIB_REACH_MM = 55.0
"""Transverse processes end <= ~45 mm from the midline in adults, lumbar ones included
(L1-L3 bitransverse width ~70-90 mm, Panjabi 1992); a rib runs on beyond 55 mm. A 12th rib
shorter than that is missed (see the module docstring on rib-count variants)."""
RIB_MIN_ELONGATION = 2.5
"""A rib beyond the transverse processes is a bar >= 30 mm long and <= 12 mm thick, so the
spread of its voxels along its long axis is >= 2.5 times that across it (for a uniform bar
the ratio of the two SDs is length / thickness); a piece of an organ that crosses 200 HU
(an enhanced kidney's cortex, 1.4-1.5 on LIDC-0001) is not a bar."""
RIB_HEAD_MM = 4.0
"""The medial end of a rib component is its voxels within 4 mm (two work voxels) of its
most medial point: the z of the articulation, not of one noisy voxel."""


@dataclass(frozen=True, slots=True)
class _Bone:
    """A filled bone component in the posterior third of one slice (work-grid pixels)."""

    label: int
    row: float
    col: float
    area: int


@dataclass(frozen=True, slots=True)
class _SliceBones:
    """One slice's bone components, its spine candidates and where the body's middle is."""

    labels: np.ndarray
    posterior: list[_Bone]
    body_mid_x: float
    body_width: float
    cut: bool  # the image's edge cuts the body on this slice: its middle is unknown


def vertebral_bodies(grid: WorkGrid, anatomy: Anatomy) -> np.ndarray:
    """Per-slice filled bone of the spine: the bone component nearest the posterior midline.

    The midline is the body's middle where the body lies wholly in the image; where the
    field of view cuts the body (a targeted, off-centre reconstruction), that middle
    moves with the cut and a rib or scapula near it was taken for the spine (the
    aorta was then looked for on the vertebral body). There the column is found from
    the image content instead (``_column_x``).
    """
    bone = anatomy.body & (grid.hu > CORTEX_HU)
    spine = np.zeros_like(bone)
    slices: dict[int, _SliceBones] = {}
    filled_all = _filled_slices(bone)
    for k in range(bone.shape[0]):
        if not anatomy.body[k].any():
            continue
        labels, n = ndi.label(filled_all[k])
        if n == 0:
            continue
        ys, xs = np.nonzero(anatomy.body[k])
        back = ys.max() if anatomy.anterior_sign < 0 else ys.min()
        depth = ys.max() - ys.min()
        comps = []
        for lab, sl in enumerate(ndi.find_objects(labels), start=1):
            area = int((labels[sl] == lab).sum())
            if area < 20:
                continue
            yc = (sl[0].start + sl[0].stop) / 2.0
            xc = (sl[1].start + sl[1].stop) / 2.0
            # Spine: in the posterior third.
            if abs(yc - back) <= 0.45 * depth:
                comps.append(_Bone(lab, yc, xc, area))
        slices[k] = _SliceBones(labels, comps, (xs.min() + xs.max()) / 2.0,
                                float(xs.max() - xs.min()), _body_cut(anatomy, k))
    column = _column_x(slices)
    for k, sb in slices.items():
        mid = column if sb.cut and column is not None else sb.body_mid_x
        best, best_cost = 0, np.inf
        for bone_c in sb.posterior:
            # Near the midline, large.
            if abs(bone_c.col - mid) > 0.15 * sb.body_width:
                continue
            cost = abs(bone_c.col - mid) - 0.01 * bone_c.area
            if cost < best_cost:
                best, best_cost = bone_c.label, cost
        if best:
            spine[k] = sb.labels == best
    return spine


def _body_cut(anatomy: Anatomy, k: int) -> bool:
    """Whether the image's edge cuts the body on slice ``k`` (its middle is then unknown)."""
    return anatomy.edge is not None and bool((anatomy.body[k] & anatomy.edge).any())


def _column_x(slices: dict[int, _SliceBones]) -> float | None:
    """The vertebral column's column (x) from the image content, or None.

    On each slice the largest filled bone in the posterior third is taken (a vertebra
    with its arch, ~1000-2000 mm2, against a rib's or scapula's cross-section of a few
    hundred mm2); the median over the slices outvotes the few where a scapula or a
    broken osteoporotic cortex wins. The column runs along z within a few cm in plane,
    so one value serves the series.
    """
    xs = [max(sb.posterior, key=lambda b: b.area).col for sb in slices.values() if sb.posterior]
    return float(np.median(xs)) if xs else None


def _unit(grid: WorkGrid, anatomy: Anatomy) -> float:
    """Body-size factor (0.5..1): the widest lung extent over an adult thorax.

    When the widest lung slice touches the image's edge (a tight field of view cuts the
    lungs), its width is only a lower bound, and a cut width would shrink an adult's
    vertebra to a child's (the ROI then moves off the body's centre): the adult unit (1).
    """
    dx = grid.spacing_zyx[2]
    best, cut = 0.0, False
    for k in np.nonzero(anatomy.lungs.any(axis=(1, 2)))[0]:
        lung = anatomy.lungs[k]
        w = float(np.ptp(np.nonzero(lung.any(axis=0))[0])) * dx
        if w > best:
            best = w
            cut = anatomy.edge is not None and bool((lung & anatomy.edge).any())
    if best == 0.0 or cut:
        return 1.0
    return float(np.clip(best / ADULT_THORAX_MM, 0.5, 1.0))


def _kvp(grid: WorkGrid) -> float | None:
    return getattr(getattr(grid.source, "acquisition", None), "kvp", None)


def _closed_and_filled(bone: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(``bone`` closed by one pixel, that with its holes filled): a cortical ring closed
    across one-pixel gaps, and the body it rings (marrow, canal) filled in."""
    closed = ndi.binary_closing(bone, iterations=1)
    return closed, ndi.binary_fill_holes(closed)


def _filled_slices(bone: np.ndarray) -> np.ndarray:
    """``_closed_and_filled(bone[k])[1]`` of every slice, from one closing and one filling
    of the stack in the bone's bounding box grown by two voxels: the same pixels.

    The closing reaches one pixel past the bone and its erosion reads one further, where
    the box's empty rim stands for the empty slice beyond it; the background outside the
    box reaches the slice's border, as the rim reaches the box's. The per-slice closing
    and filling of whole slices cost most of the spine stage.
    """
    out = np.zeros(bone.shape, dtype=bool)
    box = crop_box(bone, margin=2)
    if box is not None:
        closed = ndi.binary_closing(bone[box], structure=IN_PLANE_4, iterations=1)
        out[box] = fill_holes_2d(closed)
    return out


def _canal(grid: WorkGrid, anatomy: Anatomy, spine: np.ndarray, unit: float, f: float
           ) -> dict[int, tuple[float, float]]:
    """Spinal canal centre (row, col) per slice of the spine, smoothed along z.

    The canal is the hole that the vertebral arch closes around the cord on the pedicle
    slices: a hole of ``CANAL_AREA_MM2`` in the spine's bone, the most posterior one
    (an osteoporotic body's faint marrow can also be a hole in its cortex, in front).
    Slices where the arch is open (discs, foramina) take the running median of their
    neighbours, so the anchor follows the spine's curve and never the aorta, which lies
    in front of the body and can join the spine's bone mask when enhanced.
    ``f``: the kVp factor of bone (``calcium_kvp_factor``).
    """
    dz, dy, dx = grid.spacing_zyx
    a = anatomy.anterior_sign
    thr = CORTEX_HU * f
    lo_a, hi_a = (v * unit ** 2 / (dy * dx) for v in CANAL_AREA_MM2)
    found: dict[int, tuple[float, float]] = {}
    win = max(1, int(round(CANAL_SMOOTH_MM * unit / dz)))
    for k in np.nonzero(spine.any(axis=(1, 2)))[0]:
        # The spine's box over one pitch: one slice's spine mask may hold only a piece.
        near = spine[max(0, k - win):k + win + 1].any(axis=0)
        rows, cols = np.nonzero(near)
        r0, r1 = rows.min(), rows.max() + 1
        c0, c1 = cols.min(), cols.max() + 1
        hu = grid.hu[k, r0:r1, c0:c1]
        bone, filled = _closed_and_filled(hu > thr)
        holes = filled & ~bone
        labels, n = ndi.label(holes)
        best: tuple[float, float] | None = None
        for lab in range(1, n + 1):
            hole = labels == lab
            hr, hc = np.nonzero(hole)
            if not lo_a <= hr.size <= hi_a or float(hu[hole].mean()) > CANAL_MAX_HU:
                continue
            cand = (float(hr.mean()) + r0, float(hc.mean()) + c0)
            if best is None or (cand[0] - best[0]) * a < 0:  # more posterior
                best = cand
        if best is not None:
            found[int(k)] = best
    if len(found) < 3:
        return {}
    ks = np.array(sorted(found))
    rr = np.array([found[k][0] for k in ks])
    cc = np.array([found[k][1] for k in ks])
    # Running median over a pitch at the slices where the canal was seen, then linear
    # interpolation between them (the canal is a smooth tube), held constant up to two
    # pitches beyond the first and last seen (where a tight field of view cuts the arch).
    rs = np.array([np.median(rr[np.abs(ks - k) <= win]) for k in ks])
    cs_ = np.array([np.median(cc[np.abs(ks - k) <= win]) for k in ks])
    out: dict[int, tuple[float, float]] = {}
    for k in np.nonzero(spine.any(axis=(1, 2)))[0]:
        if not ks[0] - 2 * win <= k <= ks[-1] + 2 * win:
            continue
        out[int(k)] = (float(np.interp(k, ks, rs)), float(np.interp(k, ks, cs_)))
    return out


def _body_profile(grid: WorkGrid, anatomy: Anatomy, canal: dict[int, tuple[float, float]],
                  unit: float, f: float) -> dict[int, float]:
    """Per slice: how bony the vertebral column is in front of the canal (HU).

    The mean HU of a box inside the vertebral body: ``BODY_BOX`` of the body's depth in
    front of the canal, +-``BODY_HALF_W_MM`` across. It holds marrow and endplates on
    body slices and disc on disc slices, and stays short of the body's front, so the
    aorta lying on it (enhanced: 200-400 HU) stays out. A box inside a closed cortical
    ring (``RING_FILL``) is a body slice whatever its marrow's density: an osteoporotic
    body (50-110 HU) reads as faint as a disc, its cortex does not; such a slice counts
    as ``DISC_MAX_HU`` + ``DISC_DEPTH_HU`` at least. ``f``: the kVp factor of bone.
    """
    dy, dx = grid.spacing_zyx[1], grid.spacing_zyx[2]
    a = anatomy.anterior_sign
    thr = CORTEX_HU * f
    ringed_hu = (DISC_MAX_HU + DISC_DEPTH_HU) * f
    depth = BODY_DEPTH_MM * unit
    near = (CANAL_RADIUS_MM * unit + BODY_BOX[0] * depth) / dy
    far = (CANAL_RADIUS_MM * unit + BODY_BOX[1] * depth) / dy
    hw = BODY_HALF_W_MM * unit / dx
    m = int(round(depth / dy))  # the ring closes around the box within a body's depth
    out: dict[int, float] = {}
    for k, (cr, cc) in canal.items():
        r_lo, r_hi = sorted((cr + a * near, cr + a * far))
        r0, r1 = int(round(r_lo)), int(round(r_hi)) + 1
        c0, c1 = int(round(cc - hw)), int(round(cc + hw)) + 1
        if r0 < 0 or c0 < 0 or r1 > grid.shape[1] or c1 > grid.shape[2]:
            continue
        w0, w1 = max(0, r0 - m), min(grid.shape[1], r1 + m)
        v0, v1 = max(0, c0 - m), min(grid.shape[2], c1 + m)
        win = grid.hu[k, w0:w1, v0:v1]
        _, filled = _closed_and_filled(win > thr)
        box = (slice(r0 - w0, r1 - w0), slice(c0 - v0, c1 - v0))
        value = float(win[box].mean())
        if float(filled[box].mean()) >= RING_FILL:
            value = max(value, ringed_hu)
        out[k] = value
    return out


def _rib_heads(grid: WorkGrid, anatomy: Anatomy, canal: dict[int, tuple[float, float]],
               unit: float, f: float) -> list[tuple[float, int]]:
    """(slice of the articulation, side +-1) of every rib beside the spine.

    Ribs are labelled in 3-D as bone lateral to the vertebra (more than
    ``RIB_EXCLUDE_MM`` from the canal's midline, which cuts each rib from the
    vertebra near its head and the transverse processes from the arch) in a slab
    around the canal (``RIB_SLAB_MM``), less thick bodies (``RIB_MAX_RADIUS_MM``). A
    component is a rib when its medial end lies within ``RIB_MEDIAL_MAX_MM`` of the
    midline, it reaches beyond ``RIB_REACH_MM`` (no transverse process does) and it is a
    bar (``RIB_MIN_ELONGATION``; an enhanced kidney's cortex is not). Its most medial part
    is its costovertebral end, and the slices there are its level: a rib slopes down as
    it runs laterally, so the lateral parts of the lowest ribs lie beside L1-L2 while
    their heads stay at T12. ``f``: the kVp factor of bone (``calcium_kvp_factor``).
    """
    dy, dx = grid.spacing_zyx[1], grid.spacing_zyx[2]
    a = anatomy.anterior_sign
    thr = CORTEX_HU * f
    ks = sorted(canal)
    k0, k1 = ks[0], ks[-1] + 1
    yy, xx = np.ogrid[: grid.shape[1], : grid.shape[2]]
    lateral = np.zeros((k1 - k0, grid.shape[1], grid.shape[2]), dtype=np.float32)
    slab = np.zeros(lateral.shape, dtype=bool)
    for k in ks:
        cr, cc = canal[k]
        lat = np.abs(xx - cc) * dx
        ahead = (yy - cr) * dy * a
        lateral[k - k0] = np.broadcast_to(np.sign(xx - cc) * lat, lateral.shape[1:])
        slab[k - k0] = ((lat > RIB_EXCLUDE_MM * unit) & (ahead <= RIB_SLAB_MM[0] * unit)
                        & (ahead >= -RIB_SLAB_MM[1] * unit))
    bone = slab & anatomy.body[k0:k1] & (grid.hu[k0:k1] > thr)
    # Thick bodies are not ribs: an enhanced kidney or aorta, a bowel loop with oral
    # contrast (a 2-voxel rim is left off with them).
    blobs = open_ball(bone, RIB_MAX_RADIUS_MM * unit, grid.spacing_zyx)
    bone &= ~grow(blobs, iterations=2)
    labels, n = ndi.label(bone)
    out: list[tuple[float, int]] = []
    for lab, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        comp = labels[sl] == lab
        lat = lateral[sl][comp]
        side = 1 if float(np.median(lat)) > 0 else -1
        dist = np.abs(lat)
        if dist.min() > RIB_MEDIAL_MAX_MM * unit or dist.max() < RIB_REACH_MM * unit:
            continue
        pts = np.argwhere(comp) * np.asarray(grid.spacing_zyx)
        sd = np.sqrt(np.clip(np.sort(np.linalg.eigvalsh(np.cov(pts.T)))[::-1], 1e-6, None))
        if sd[0] < RIB_MIN_ELONGATION * sd[1]:
            continue  # not a bar: a piece of an organ (an enhanced kidney)
        zs = np.nonzero(comp)[0] + sl[0].start + k0
        medial = dist <= dist.min() + RIB_HEAD_MM * unit
        out.append((float(np.mean(zs[medial])), side))
    return out


def _endplate(profile: dict[int, float], k: int, step: int, w: int) -> int | None:
    """The nearest endplate from the dip at ``k`` towards ``step``: the first slice
    within ``w`` reading ``DISC_DEPTH_HU`` above the dip, climbed to its local maximum."""
    j = k + step
    while j in profile and abs(j - k) <= w and profile[j] < profile[k] + DISC_DEPTH_HU:
        j += step
    if j not in profile or abs(j - k) > w:
        return None
    while j + step in profile and abs(j + step - k) <= w and profile[j + step] > profile[j]:
        j += step
    return j


def _discs(profile: dict[int, float], dz: float, unit: float) -> list[int]:
    """Disc centres (slices): dips of the body profile between two close endplates.

    A disc is a local minimum of the profile with a dense endplate on each side, the two
    at most ``MAX_DISC_SPAN_MM`` apart and both reading ``DISC_DEPTH_HU`` above it. The
    middle of a body is also a dip when its marrow is faint (osteoporosis), but its two
    endplates are a body's height apart. The deepest discs win; two discs are a body
    apart (``MIN_BODY_MM``).
    """
    span = MAX_DISC_SPAN_MM * unit
    w = max(1, int(np.ceil(span / dz)))
    cands: list[tuple[float, int]] = []
    for k, v in profile.items():
        if v > min(profile.get(k - 1, v), profile.get(k + 1, v)):
            continue  # not a local minimum
        up = _endplate(profile, k, 1, w)
        down = _endplate(profile, k, -1, w)
        if up is None or down is None or (up - down) * dz > span + 1e-6:
            continue
        cands.append((min(profile[up], profile[down]) - v, k))
    gap = MIN_BODY_MM * unit / dz
    chosen: list[int] = []
    for _, k in sorted(cands, reverse=True):
        if all(abs(k - c) >= gap for c in chosen):
            chosen.append(k)
    return sorted(chosen)


def _ribs_cut(grid: WorkGrid, anatomy: Anatomy, canal: dict[int, tuple[float, float]],
              unit: float, z12: float) -> bool:
    """Whether the image's edge cuts the rib slab beside the spine below ``z12``: a rib
    lower down could then be missed (``RIB_REACH_MM`` on either side must be in view)."""
    dx = grid.spacing_zyx[2]
    reach = RIB_REACH_MM * unit / dx
    cs = anatomy.cranial_sign
    for k, (cr, cc) in canal.items():
        if (k - z12) * cs >= 0:
            continue
        r = int(round(cr))
        for c in (int(round(cc - reach)), int(round(cc + reach))):
            if not 0 <= c < grid.shape[2]:
                return True
            if anatomy.edge is not None and anatomy.edge[min(max(r, 0), grid.shape[1] - 1), c]:
                return True
    return False


def _rib_pitch(heads: list[tuple[float, int]], z12: float, dz: float, unit: float,
               cs: int) -> float:
    """Vertebral pitch (slices) at T12: from the lowest rib head to the next one up."""
    default = PITCH_MM * unit / dz
    above = [(z - z12) * cs for z, _ in heads if (z - z12) * cs >= 0.5 * default]
    if above and 0.5 * default <= min(above) <= 1.6 * default:
        return float(min(above))
    return default


def find_l1(grid: WorkGrid, anatomy: Anatomy, spine: np.ndarray
            ) -> tuple[list[int], dict[int, tuple[float, int, int]], str]:
    """(L1's mid-body slices, ROI per slice, why not identified / how it was counted).

    T12 is the lowest rib-bearing vertebra (the lowest rib head, ``_rib_heads``); L1 is
    the body between the first disc below T12's rib head and the next disc below it, on
    the grid of discs one vertebral pitch apart (module docstring).
    """
    unit = _unit(grid, anatomy)
    dz = grid.spacing_zyx[0]
    if dz > MAX_SLICE_MM * unit + 0.01:
        return [], {}, (f"slices of {dz:.1f} mm are too thick to separate "
                        "the vertebrae by their discs, so L1 cannot be counted")
    f = calcium_kvp_factor(_kvp(grid))  # bone reads higher at lower kVp, as calcium does
    canal = _canal(grid, anatomy, spine, unit, f)
    if not canal:
        return [], {}, "the spinal canal was not found, so the vertebrae could not be counted"
    a, cs = anatomy.anterior_sign, anatomy.cranial_sign
    dy = grid.spacing_zyx[1]
    depth = BODY_DEPTH_MM * unit
    centre = (CANAL_RADIUS_MM * unit + 0.5 * depth) / dy
    bodies = {k: (0.45 * depth, int(round(cr + a * centre)), int(round(cc)))
              for k, (cr, cc) in canal.items()}
    heads = _rib_heads(grid, anatomy, canal, unit, f)
    if not heads:
        return [], bodies, ("no rib-bearing vertebra in the field of view, so T12 and L1 "
                            "cannot be counted")
    last = 0 if cs > 0 else grid.shape[0] - 1  # the most caudal slice

    def below(z: float) -> float:
        """Slices from z down to the scan's caudal end."""
        return (z - last) * cs

    z12, _ = min(heads, key=lambda h: h[0] * cs)  # the lowest articulation: T12
    pitch = _rib_pitch(heads, z12, dz, unit, cs)
    end = min(canal, key=lambda k: k * cs)  # the most caudal slice where the spine is followed
    if (end - last) * cs > pitch:
        return [], bodies, ("the spinal canal could not be followed to the caudal end of "
                            "the scan (the field of view cuts the spine), so L1 cannot be "
                            "counted")
    last = end
    if below(z12) < 0.5 * pitch:
        return [], bodies, ("L1 is not in the field of view: the scan ends at the lowest "
                            "rib-bearing vertebra (T12 or above)")
    if _ribs_cut(grid, anatomy, canal, unit, z12):
        return [], bodies, ("the field of view is too narrow to follow the ribs beside the "
                            "spine below the lowest rib found, so T12 and L1 cannot be "
                            "counted")
    profile = _body_profile(grid, anatomy, canal, unit, f)
    discs = _discs(profile, dz, unit)
    near = sorted(d for d in discs if abs(d - z12) <= 2.5 * pitch)
    if not near:
        if below(z12) < pitch + 1:
            return [], bodies, ("L1 is not in the field of view: the scan ends within one "
                                "vertebra below the lowest rib in view (T12 or above)")
        return [], bodies, ("no disc was found near the lowest rib, so L1 was not "
                            "identified (bodies and discs not told apart)")
    # The discs repeat every pitch: refine the pitch from neighbouring discs, anchor the
    # grid on the disc nearest the rib head, and snap each expected disc to a found one.
    steps = [b - a for a, b in zip(near, near[1:], strict=False)
             if 0.6 * pitch <= b - a <= 1.6 * pitch]
    if steps:
        pitch = float(np.median(steps))
    anchor = min(near, key=lambda d: abs(d - z12))
    n = np.floor((z12 - anchor) * cs / pitch + 1e-6)  # grid steps from anchor up to z12

    def snap(g: float) -> float:
        close = [d for d in near if abs(d - g) <= 0.25 * pitch]
        return float(min(close, key=lambda d: abs(d - g))) if close else g

    top = snap(anchor + cs * n * pitch)  # T12/L1: the first expected disc below the head
    if (z12 - top) * cs <= 0:
        top = snap(top - cs * pitch)
    bottom = snap(top - cs * pitch)  # L1/L2
    found = sum(any(abs(d - g) < 1e-6 for d in near) for g in (top, bottom))
    how = ("between the T12/L1 and L1/L2 discs" if found == 2 else
           f"one disc pitch ({pitch * dz:.0f} mm) below T12's rib head grid, {found} of its "
           "two discs resolved")
    if found == 0:
        # Neither of L1's discs seen: the level rests on the rib count alone, and a
        # 12th rib lost to a tight field of view or a thick section moves it a level up.
        return [], bodies, ("neither disc of L1 was resolved below the lowest rib found, "
                            "so the level rests on the rib count alone and is not measured")
    if below(bottom) < 1.0:
        return [], bodies, ("L1 is not wholly in the field of view: the scan ends less "
                            "than two vertebrae below the lowest rib in view (the L1/L2 "
                            "disc is not in view)")
    # Pickhardt's ROI is on the mid-body: the central 40 % of the slices between the discs.
    mid, half = 0.5 * (top + bottom), max(0.5, 0.2 * abs(top - bottom))
    l1 = sorted((k for k in canal if abs(k - mid) <= half), key=lambda k: -k * cs)
    sides = {side for z, side in heads if abs(z - z12) <= 0.5 * pitch}
    note = (f"L1 = the body {how}, the first below the lowest rib-bearing vertebra "
            "(T12), counted from 12 rib pairs")
    if len(sides) < 2:
        note += ("; the lowest rib was seen on one side only (a short 12th or an extra "
                 "rib?), so the count is less certain")
    return l1, bodies, note


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
    values: list[np.ndarray] = []
    roi_mask = np.zeros_like(spine)
    vox = grid.source.voxels
    fz, fy, fx = grid.factors
    kvp = _kvp(grid)
    f = calcium_kvp_factor(kvp)
    yy, xx = np.ogrid[: spine.shape[1], : spine.shape[2]]
    for k in l1:
        r, cy, cx = bodies[k]
        roi_mask[k] = (((yy - cy) * dy) ** 2 + ((xx - cx) * dx) ** 2) <= (0.5 * r) ** 2
        # Every full-resolution pixel of the ROI (Pickhardt's ROI is drawn on the image).
        fcy, fcx = cy * fy + (fy - 1) / 2.0, cx * fx + (fx - 1) / 2.0
        ry, rx = 0.5 * r / (dy / fy), 0.5 * r / (dx / fx)
        y0, y1 = max(0, int(fcy - ry)), min(vox.shape[1], int(fcy + ry) + 2)
        x0, x1 = max(0, int(fcx - rx)), min(vox.shape[2], int(fcx + rx) + 2)
        fyy, fxx = np.ogrid[y0:y1, x0:x1]
        disk = ((fyy - fcy) / ry) ** 2 + ((fxx - fcx) / rx) ** 2 <= 1.0
        patch = vox[k * fz:(k + 1) * fz, y0:y1, x0:x1][:, disk]
        if patch.size and float(np.median(patch)) <= TRABECULAR_MAX_HU * f:
            values.append(patch.ravel())  # above: an endplate (cortex), not trabecular bone
    if not values:
        return {name: Measure(name, None, unit, "L1 trabecular attenuation",
                              note="not assessed: only endplates of L1 on the slices")}
    value = float(np.median(np.concatenate(values)))
    note = f"{why}; {len(l1)} mid-body slice(s)"
    if f != 1.0:
        value /= f
        note += f"; corrected from {kvp:g} kVp to 120 kVp (hydroxyapatite factor {f:.2f})"
    ev = (component_evidence(grid, roi_mask, "L1 trabecular ROI"),)
    return {name: Measure(name, value, unit,
                          "trabecular attenuation of the L1 vertebral body (median over its "
                          "mid-body ROI)",
                          ev, note=note)}

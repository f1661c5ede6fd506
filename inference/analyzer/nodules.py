"""Nodule and mass candidates: thick, isolated blobs of dense tissue in or on the lung.

Why this design:
- Juxtapleural and juxtamediastinal lesions are cut out of a threshold lung
  mask. A 3-D closing of each lung by a 30 mm ball (Armato et al., Med Phys
  1999 use a rolling ball for the same reason) takes back what indents the
  lung, up to masses of ~60 mm that the lung wraps around.
- Vessel suppression by shape (Li et al., Med Phys 2003, dot vs line
  filters): every local maximum of the distance transform of dense tissue is
  the centre of the largest ball that fits there. A nodule is a ball from which
  nothing equally thick continues; a vessel or the hilum continues with about
  the same thickness. ``isolation`` compares the two.
- The candidate's probability is a logistic model of its shape: isolation
  and axial elongation terms from vessel geometry (``ISOLATION_LIMIT``,
  Murray's law; ``RATIO_LIMIT``), plus an intercept and a hilum term (graded
  by distance, ``HILAR_ZONE_MM``) fitted on a labelled phantom set
  (``SHAPE_MODEL``: size and seed stated there, reproduced by
  ``python -m evaluation.fit``). The intercept is the
  base rate of a lesion among candidates that are nearly all vessels, so it is
  weighed by the share of vessels that can be as thick as the candidate
  (``VESSEL_CALIBRE_MM``): a 40 mm blob is not held to the odds of a 5 mm dot.
  All of it times two gates with a physical basis: the
  share of its surface on aerated lung (``CONTACT_LIMIT``, geometry) and its
  size against the smallest reportable nodule (Fleischner 2017).
- Size as readers measure it: the longest axial diameter on the slice of
  largest extent (Bankier et al., Fleischner Society, Radiology 2017;285:584;
  the LIDC readers' outlines), taken at full resolution on the half-way
  iso-contour between lesion and lung (``reader_sizes``). A part-solid lesion
  is measured whole, its adjoining ground glass included, and its solid part
  is kept as a second measure (Fleischner 2017): the candidate itself is found
  on its solid part. >= 30 mm is a mass (Fleischner glossary, Hansell et al.,
  Radiology 2008;246:697), read with the readers' own measurement spread
  (``MASS_SIZE_SCALE_MM``): a lesion measured on the limit is half nodule, half mass.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ctnode.settings import AnalyzerSettings
from inference.analyzer.evidence import component_evidence
from inference.analyzer.grid import full_bbox
from inference.analyzer.kernel import standard_equivalent
from inference.analyzer.mapping_math import logistic
from inference.analyzer.morphology import close_ball, crop_box
from inference.analyzer.types import Anatomy, Lesion, Measure, WorkGrid
from inference.types import Evidence

logger = logging.getLogger(__name__)

CLOSING_RADIUS_MM = 30.0
"""Closing ball of each lung (the rolling ball of Armato et al., Med Phys 1999): takes back
lesions up to ~60 mm across that indent the lung."""
SOLID_HU = (-300.0, 400.0)
"""Solid and part-solid lesion tissue: from the -300 HU floor of consolidation-density
tissue (Hansell et al. 2008) to 400 HU, above which it is bone or dense calcium."""
HILAR_END_MM = 15.0
HILAR_LATERAL_MM = 50.0
HILAR_BELOW_MM = 15.0
"""Where the hila are when the airway track ends above the carina: ~50 mm either side
of the midline, ~15 mm below the carina (Breatnach et al., 1984; standard anatomy)."""
TRACHEA_RADIUS_MM = 12.5
"""Half the upper limit of normal of the tracheal coronal diameter in men, 25 mm
(Breatnach et al., AJR 1984;142:903): an airway track whose lowest part lies farther
than this from the track's midline ends in one main bronchus, not in the trachea."""
HILAR_ZONE_MM = (20.0, 4.55)
"""(midpoint, scale) of a candidate's hilar weight over the gap between it and where a
main bronchus enters its lung (centre distance less the inscribed radius): there lie
the hilar vessels and lobar bronchi, and the lobar bronchi are 1-3 cm long (Boyden,
Segmental Anatomy of the Lungs, 1955), so the weight is 0.9 at 10 mm, 0.5 at their mean
length of 20 mm and 0.1 at 30 mm (scale 10 / ln 9). Unenhanced, a central tumour cannot
be told from hilar vessels by shape, a known limitation said so in the note;
``SHAPE_MODEL`` weighs it. Graded, not a ball with a hard edge: a candidate on the
edge no longer changes its score by the whole hilum term when the airway track ends a
slice lower or the work grid is finer (issue 12)."""
MASS_CORE_RADIUS_MM = 10.0
"""Radius of the ball a solid mass holds: a mass is 30 mm or more (Fleischner glossary,
Hansell et al., Radiology 2008), while no normal hilar vessel holds a 20 mm ball (the
widest, the right interlobar artery, is at most 16 mm: Chang, AJR 1967). Only such a
candidate has a thick neighbour split off its extent (``_own_share``): below it, what
is joined across a neck may be the vessel it belongs to (a curved interlobar artery
split at its bend reads as a round 17 mm blob)."""
NEIGHBOUR_BALL = 0.5
"""A distance-map maximum beside a mass-thick candidate that holds a ball of at least half
its radius (what survives the extent's opening, ``_measure_lesion``) and is joined to it
across a neck (``NECK``) is a body of its own, another mass or the hilum, and is split
off (``_own_share``); thinner neighbours, vessels, stay attached as before."""
NECK = 0.7
"""The neighbour is split off only across a neck: somewhere on the straight line between
the two centres the distance map falls below 0.7 of the smaller ball's radius. A vessel
leaving a junction keeps its radius along its axis (tapering ~10 % per branch length,
Horsfield & Cumming 1968), so a dip of 30 % is a gap between two bodies, not a branch."""
MAX_PEAKS = 8000
MAX_LESIONS = 200
"""Compute limits: distance-transform maxima examined (largest first) and candidates kept."""
SHELL = (1.5, 2.5)
"""Isolation looks 1.5-2.5 inscribed radii out: past the lesion's own partial-volume
rim (~1 radius + a voxel) and before the next vessel generation (a branch is ~3-4
of its radii long, Horsfield & Cumming, J Appl Physiol 1968)."""
ISOLATION_LIMIT = 0.52
ISOLATION_SCALE = 0.092
"""Isolation term of the shape model (physics, not fitted). A vessel continues with
nearly its own thickness: at a bifurcation the larger daughter keeps at least
2^(-1/3) = 0.79 of the parent's radius (Murray's law, PNAS 1926;12:207, which the
pulmonary arteries follow), so vessels and their junctions measure >= 0.79. An
isolated sphere measures the operator's own floor, 0.25 (median of the 19 phantom
nodules of the fitting set below: partial volume and noise). The limit is the
midpoint of the two, the scale puts p = 0.05 at the vessel floor (0.27 / ln 19)."""
RATIO_LIMIT = 1.58
RATIO_SCALE = 0.156
"""Axial elongation term (physics, not fitted): the long over the short axial axis of
the candidate's tissue inside its 2.5-radius window. A sphere measures 1; a vessel
crossing the window in plane measures 2.5 (5 radii long, 2 wide). The limit is their
geometric midpoint sqrt(2.5) = 1.58, the scale (in ln units) puts p = 0.05 at 2.5
(ln(2.5 / 1.58) / ln 19). Not fitted on the phantoms: their nodules are all spheres,
so a fit learns that anything not round is a vessel."""
SHAPE_MODEL = (-3.29, -6.67)
"""(intercept, hilar weight) of the shape model, added to the isolation and elongation
terms, the intercept weighed by ``vessel_share`` of the candidate's thickness. Ridge
maximum-likelihood fit (penalty chosen by 5-fold cross-validated deviance) on the
candidates of a labelled phantom set, the gap-free cohort (``phantom.cohort``) of 30
cases, seed 101 (disjoint from the evaluation seed 0), each analysed at two matrices,
128 (2.7 mm pixels) and 256 (1.35 mm), both full-resolution work grids: 8391
candidates, 43 on inserted nodules or masses; ridge 0.1;
``python -m evaluation.fit --cases 30 --seed 101 --matrix 128 256`` reproduces it."""
VESSEL_CALIBRE_MM = (13.1, 0.92)
"""(midpoint, scale) of the vessel-calibre term: the share of the vessel base rate in
``SHAPE_MODEL``'s intercept that still applies to a candidate whose inscribed-ball
diameter (twice its distance-transform maximum) is D, 1 - logistic(D, midpoint, scale).
A candidate can only be a vessel if the patient has one at least that thick. The
thickest intrapulmonary vessel is the descending (interlobar) pulmonary artery, upper
limit of normal 16 mm (Chang, AJR 1962;87:929; 15 mm in women); upper limits of normal
are the mean + 2 SD, and large pulmonary arteries vary with an SD of ~11 % of their mean
(main pulmonary artery on CT: 27.2 +- 3.0 mm, Edwards et al., Br J Radiol 1998;71:1018;
25.1 +- 2.8 mm, Truong et al., Circ Cardiovasc Imaging 2012;5:147), so the thickest
vessel is 16 / 1.22 = 13.1 +- 1.44 mm. The inscribed diameter itself is uncertain by
+- half a 2 mm work voxel at each end (SD 2 / sqrt(6) = 0.82 mm); together SD 1.66 mm,
the logistic scale of the same SD 1.66 * sqrt(3) / pi = 0.92 mm. Not fitted."""
CONTACT_LIMIT = 0.125
CONTACT_SCALE = 0.035
"""Share of the lesion's surface on aerated lung at which the contact gate is 0.5.

Geometry: a lesion whose centre lies in the pleural cavity keeps at least the
part of its surface inside the cavity's solid angle on the lung side, 1/2 against
a flat pleura, 1/4 in a right-angled edge, 1/8 in a corner where three walls meet
(apex, sulci, cardiophrenic angles). Below 1/8 the centre lies outside: chest wall
or mediastinum. The scale is the sampling error of a surface fraction near 1/8
measured on the ~100 voxels of a 10 mm lesion's one-voxel ring on the 2 mm work
grid (binomial SD sqrt(0.125 * 0.875 / 100) = 0.033). A tumour walled in by
its own atelectasis or consolidation touches less aerated lung: a known limit."""
SIZE_SCALE_MM = 0.5
"""Width of the size gate: a quarter of the 2 mm work voxel, the partial-volume
uncertainty of a diameter measured on it."""
GGO_HU = (-700.0, -300.0)
"""Ground-glass attenuation (Hansell et al., Radiology 2008;246:697 for the pattern; the
band of Lederer et al.'s high-attenuation area, AJRCCM 2009, split at -300 HU): the same
band as ``parenchyma.GGO_BAND``. Its floor is also the edge of ground glass as readers
outline it, the half-way level between ground glass (-500..-600 HU) and aerated lung."""
GGO_OPEN_MM = 1.5
"""Radius of the disk that ground glass adjoining a lesion must hold somewhere on its slice
(physics of the blurred edge): the rind that every solid structure has in the ground-glass
band, from its half-way contour out to -700 HU, is ~0.8 sigma of the edge blur plus up to
one pixel of partial volume wide (~1.5 mm at 0.7-0.8 mm pixels with sigma ~1 mm), narrower
than a 3 mm disk. On coarse grids the disk is at least 5 pixels wide, wider than the
3-pixel disk that sets the ground glass's extent (``_ground_glass_part``)."""
GGO_REACH = 0.5
"""How far ground glass is followed from the solid part, as a share of the solid part's
long axis: up to a whole lesion twice the solid part, a consolidation-to-tumour ratio of
0.5, the limit between solid- and ground-glass-dominant part-solid adenocarcinomas
(Suzuki et al., JCOG 0201, J Thorac Oncol 2011;6:751). Diffuse ground glass around a
nodule (infection, dependent density) stops there; a ground-glass-dominant lesion is
measured short of its whole, a known limit."""
SUBPLEURAL_MM = 10.0
"""Depth of the subpleural zone: ground glass that reaches within 10 mm of the pleura
(the edge of the extended lungs) is not followed as a lesion's margin. Dependent density
and subpleural lines lie there (the Fleischner glossary's subpleural curvilinear line
lies less than 1 cm from the pleura, Hansell et al., Radiology 2008;246:697), and the
chest wall's partial volume on oblique sections."""
MASS_SIZE_SCALE_MM = 0.49
"""Width of the mass-size rule: the probability that a lesion measured ``m`` mm is >= 30 mm
as readers measure it is ``logistic(m, 30, 0.49)``. The analyzer's long axis is read as one
more reader's: two readers' long axes of the same nodule differ with 95 % limits of
agreement of -1.73..+1.73 mm (Revel et al., Radiology 2004;231:453, 54 nodules of 3-18 mm,
three readers), an SD of 1.73 / 1.96 = 0.88 mm, the logistic scale of the same SD
0.88 * sqrt(3) / pi = 0.49 mm. Larger lesions vary more between readers, so this is a
lower bound of the width. Not fitted. Replaces a hard cut at 30 mm that turned a mass
measured 30.2 mm on one reconstruction and 29.8 mm on another from p 0.87 to 0.00
(issue 12)."""
MEASURE_MIN_SCORE = 0.05
"""Candidates below this score are not re-measured at full resolution (compute only:
they are neither reported nor shown)."""
FINE_RADIUS_VOXELS = 3.0
"""Isolation is measured on a grid on which the candidate's inscribed radius spans at least
this many voxels, down to the scanner's own pixels (``fine_isolation``). A distance
transform reads a structure thinner than its voxel as one voxel thick: on the 2.2 mm work
grid of a 0.74 mm scan a 2 mm vessel in the shell of a 10 mm nodule reads 2.2 mm, 0.55 of
its radius, above ``ISOLATION_LIMIT``. One voxel must stay two ``ISOLATION_SCALE`` below
the limit, at most 0.52 - 2 x 0.092 = 0.34 of the radius: 3 voxels per radius."""
REFINE_MIN_SCORE = 0.001
"""Candidates scoring below this on the work grid keep the work grid's isolation (compute
only: the fine measurement costs a distance transform per candidate). All 1247
candidates of the three real shared cases, four 512-matrix phantoms and the benchmark's
targeted-field contrast phantom refined (issue 12, seventh pass): none scoring below
0.005 on the work grid reached ``MEASURE_MIN_SCORE`` (0.05) when refined, and one
vessel at 0.005 did (0.11); 303 score above this floor."""


def extended_lungs(anatomy: Anatomy, spacing: tuple[float, float, float]) -> np.ndarray:
    """Each lung closed by a 30 mm ball: takes back juxtapleural nodules and masses."""
    ext = np.zeros_like(anatomy.lung_left)
    for lung in (anatomy.lung_left, anatomy.lung_right):
        if lung.any():
            ext |= _close_beyond_fov(lung, spacing)
    # The lungs are inside the patient even where the body mask leaves them out: on a
    # field of view that cuts the chest, lung and lesion voxels open to the image edge
    # were missing from it (issue 12: LIDC-0003's mass on a 50 % field of view).
    return ext & (anatomy.body | anatomy.lungs)


def _close_beyond_fov(lung: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """``close_ball`` of one lung, the lung taken to continue past an in-plane image edge.

    A closing erodes from wherever the mask ends; where the lung is cut by the
    reconstruction's field of view it does not end there, it leaves the image. Without
    this, the erosion ran in from the edge and took back no lesion within the closing
    radius of it (issue 12: LIDC-0003's mass on a 50 % field of view lost its outer
    slices). The edge rows are repeated outwards by the closing radius, closed, and cut
    back; a lung that does not reach an edge is closed exactly as before.
    """
    pad = [(0, 0)] * 3
    for axis in (1, 2):  # in-plane only: the cranio-caudal coverage is checked elsewhere
        n = int(math.ceil(CLOSING_RADIUS_MM / spacing[axis])) + 1
        lo = bool(lung.take(0, axis=axis).any())
        hi = bool(lung.take(-1, axis=axis).any())
        pad[axis] = (n if lo else 0, n if hi else 0)
    if not any(a or b for a, b in pad):
        return close_ball(lung, CLOSING_RADIUS_MM, spacing)
    closed = close_ball(np.pad(lung, pad, mode="edge"), CLOSING_RADIUS_MM, spacing)
    return closed[tuple(slice(a, a + n) for (a, _), n in zip(pad, lung.shape, strict=True))]


@dataclass(frozen=True, slots=True)
class CandidateFeatures:
    """What the score of one candidate is computed from (kept for fitting ``SHAPE_MODEL``)."""

    isolation: float
    axis_ratio: float  # long / short axial axis on the work grid
    contact: float
    mean_diameter_mm: float
    min_diameter_mm: float
    hilar_weight: float  # 0-1, ``hilar_weight`` of its gap to the nearest hilum
    inscribed_mm: float = 0.0  # diameter of the largest ball inside (2 x EDT maximum)


def physics_logit(isolation: float, axis_ratio: float) -> float:
    """The isolation and elongation terms of the shape model (not fitted)."""
    return ((ISOLATION_LIMIT - isolation) / ISOLATION_SCALE
            + math.log(RATIO_LIMIT / max(axis_ratio, 1.0)) / RATIO_SCALE)


def vessel_share(inscribed_mm: float) -> float:
    """Share of the vessel base rate that applies at this thickness (``VESSEL_CALIBRE_MM``)."""
    mid, scale = VESSEL_CALIBRE_MM
    return 1.0 - logistic(inscribed_mm, mid, scale)


def shape_probability(f: CandidateFeatures) -> float:
    """The physics terms plus ``SHAPE_MODEL``, through the logistic function.

    The intercept is the phantom set's base rate of a lesion among candidates, which
    are nearly all vessels; it is weighed by the share of vessels that can be as
    thick as the candidate (``vessel_share``): beyond the thickest pulmonary vessel
    the shape terms and the hilum term decide alone.
    """
    b0, b_hilum = SHAPE_MODEL
    z = (physics_logit(f.isolation, f.axis_ratio) + b0 * vessel_share(f.inscribed_mm)
         + b_hilum * f.hilar_weight)
    return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, z))))


def candidate_score(f: CandidateFeatures) -> float:
    """Shape probability times the contact and size gates (module doc)."""
    return (shape_probability(f) * logistic(f.contact, CONTACT_LIMIT, CONTACT_SCALE)
            * logistic(f.mean_diameter_mm, f.min_diameter_mm, SIZE_SCALE_MM))


def find_lesions(grid: WorkGrid, anatomy: Anatomy, settings: AnalyzerSettings,
                 ext: np.ndarray) -> list[Lesion]:
    """Nodule/mass candidates, best score first; ``ext`` from ``extended_lungs``.

    Solid tissue (>= -300 HU) in the extended lungs: solid nodules, the solid
    core of part-solid nodules, and masses, including juxtapleural ones. Pure
    ground-glass nodules are not detected here (a -700 HU pass found the
    dependent lung and vessel partial volume as often as them); their density
    counts towards ``lung_opacity``. Candidates that may be reported are
    re-measured at full resolution as readers measure (``reader_sizes``): the
    whole lesion, ground-glass component included, and its solid part apart
    (``SizedLesion``).
    """
    out: list[Lesion] = []
    for les, feat in lesion_candidates(grid, anatomy, settings, ext):
        les = dataclasses.replace(les, score=candidate_score(feat))
        solid_long = les.long_axis_mm
        if les.score >= MEASURE_MIN_SCORE:
            size = reader_sizes(grid, les, ext)
            if size.long_axis_mm > 0:
                les = dataclasses.replace(les, long_axis_mm=size.long_axis_mm,
                                          short_axis_mm=size.short_axis_mm)
                solid_long = size.solid_long_axis_mm
        out.append(SizedLesion(**{f.name: getattr(les, f.name)
                                  for f in dataclasses.fields(Lesion)},
                               solid_long_axis_mm=solid_long))
    out.sort(key=lambda les: -les.score)
    return out


def lesion_candidates(grid: WorkGrid, anatomy: Anatomy, settings: AnalyzerSettings,
                      ext: np.ndarray) -> list[tuple[Lesion, CandidateFeatures]]:
    """Every candidate with the features its score is computed from (unscored)."""
    spacing = grid.spacing_zyx
    box = crop_box(ext, margin=2)
    if box is None:
        return []
    hu = grid.hu[box]
    aerated = anatomy.lungs[box] & (hu < -500)
    solid = ext[box] & (hu >= SOLID_HU[0]) & (hu <= SOLID_HU[1])
    # Air enclosed by lesion tissue on every side (cavitation, bubbly lucencies, air
    # bronchograms cut across) belongs to the lesion; the aerated lung reaches the
    # edge of the extended lungs, so it is never enclosed.
    solid = ndi.binary_fill_holes(solid)
    found = _detect(solid, aerated, hu, spacing, settings, box)
    sp = np.asarray(spacing)
    anchors = hilar_anchors(anatomy, spacing)
    out = []
    for les, feat in found:
        centre = np.asarray(les.centre) * sp
        gap = (min(float(np.linalg.norm(centre - a)) for a in anchors) - les.radius_mm
               if anchors else np.inf)
        feat = dataclasses.replace(feat, hilar_weight=hilar_weight(gap))
        if candidate_score(feat) >= REFINE_MIN_SCORE:
            fine = fine_isolation(grid, ext, les)
            if fine is not None:
                les = dataclasses.replace(les, isolation=fine)
                feat = dataclasses.replace(feat, isolation=fine)
        out.append((les, feat))
    return out


def fine_isolation(grid: WorkGrid, ext: np.ndarray, les: Lesion) -> float | None:
    """The candidate's isolation measured at full resolution (``FINE_RADIUS_VOXELS``).

    None when the work grid is already fine enough for its radius (the work grid's
    isolation stands) or when no solid tissue is found there; also when the slices are
    thicker than the radius: the lesion's own section on the next slice then lies in
    the shell, and reads as a vessel once measured on fine pixels (LIDC-0003's 13 mm
    nodule on 5 mm slices: 0.35 on the work grid, 0.53 on its 0.82 mm pixels), while
    the work grid's coarser pixels blur it as the slice does. The full-resolution
    voxels around the candidate, at a standard kernel's resolution
    (``kernel.standard_equivalent``), are block-averaged to the coarsest grid on which its
    radius spans ``FINE_RADIUS_VOXELS`` (never coarser than the work grid), thresholded
    as on the work grid (``SOLID_HU``, inside ``ext``), and the ratio is taken as in
    ``_measure_lesion``: the thickest tissue in the shell over the inscribed radius,
    both from this grid's distance transform.
    """
    full_sp = np.asarray(grid.source.spacing[::-1], dtype=float)
    work_sp = np.asarray(grid.spacing_zyx)
    r = les.radius_mm
    k = np.array([max(1, min(f, int(r / (FINE_RADIUS_VOXELS * s))))
                  for f, s in zip(grid.factors, full_sp, strict=True)])
    fine_sp = full_sp * k
    if np.array_equal(k, grid.factors) or fine_sp.max() > r:
        return None
    r_max = r + float(work_sp.max())  # the work grid's radius is within a voxel
    _, outer = shell_radii(r_max, fine_sp)
    # Distances up to r_max are exact in the crop when it reaches r_max past the shell;
    # larger ones only matter as "more than the candidate's own radius".
    half = np.ceil((outer + r_max) / full_sp).astype(int) + k
    # At a standard kernel's resolution, as calcium is read: an edge-enhancing kernel's
    # overshoot thickens every structure on fine pixels, a vessel in the shell as well.
    vol = standard_equivalent(grid)[0].source
    centre = (np.asarray(les.centre) + 0.5) * grid.factors - 0.5
    lo = np.maximum(np.floor(centre).astype(int) - half, 0)
    hi = np.minimum(np.ceil(centre).astype(int) + half + 1, vol.shape)
    n = (hi - lo) // k
    if np.any(n < 3):
        return None
    hi = lo + n * k
    block = vol.voxels[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].astype(np.float32)
    hu = block.reshape(n[0], k[0], n[1], k[1], n[2], k[2]).mean(axis=(1, 3, 5))
    # Each fine voxel's work voxel, for the extended-lung mask.
    idx = [np.minimum((lo[a] + np.arange(n[a]) * k[a] + k[a] // 2) // grid.factors[a],
                      ext.shape[a] - 1) for a in range(3)]
    inside = ext[np.ix_(*idx)]
    dense = ndi.binary_fill_holes(inside & (hu >= SOLID_HU[0]) & (hu <= SOLID_HU[1]))
    edt = ndi.distance_transform_edt(dense, sampling=tuple(fine_sp))
    zz, yy, xx = np.ogrid[: n[0], : n[1], : n[2]]
    c = (centre - lo - (k - 1) / 2.0) / k

    def dist_from(q: np.ndarray) -> np.ndarray:
        return np.sqrt(((zz - q[0]) * fine_sp[0]) ** 2 + ((yy - q[1]) * fine_sp[1]) ** 2
                       + ((xx - q[2]) * fine_sp[2]) ** 2)

    # The ball's centre lies within a work voxel of the work grid's peak.
    near = dist_from(c) <= min(r, float(work_sp.max()))
    if not (near & dense).any():
        return None
    peak = np.unravel_index(np.argmax(np.where(near, edt, 0.0)), edt.shape)
    r_fine = float(edt[peak])
    d = dist_from(np.asarray(peak, dtype=float))
    inner, outer = shell_radii(r_fine, fine_sp)
    shell = (d >= inner) & (d <= outer)
    return float(edt[shell].max() / r_fine) if shell.any() else 0.0


def hilar_weight(gap_mm: float) -> float:
    """How surely a candidate ``gap_mm`` from a hilum lies among its vessels (``HILAR_ZONE_MM``)."""
    mid, scale = HILAR_ZONE_MM
    return 1.0 - logistic(gap_mm, mid, scale)


def _detect(dense: np.ndarray, aerated: np.ndarray, hu: np.ndarray,
            spacing: tuple[float, float, float], settings: AnalyzerSettings,
            box: tuple[slice, slice, slice]) -> list[tuple[Lesion, CandidateFeatures]]:
    """Blob candidates and their features, in work-grid coordinates."""
    edt = ndi.distance_transform_edt(dense, sampling=spacing)
    r_min = settings.nodule_min_mm / 2.0
    peaks = np.argwhere((edt >= r_min) & (edt == ndi.maximum_filter(edt, size=3)))
    radii = edt[tuple(peaks.T)]
    order = np.argsort(-radii, kind="stable")[:MAX_PEAKS]
    peaks, radii = peaks[order], radii[order]
    sp = np.asarray(spacing)
    kept_pos: list[np.ndarray] = []
    kept_r: list[float] = []
    out: list[tuple[Lesion, CandidateFeatures]] = []
    z0, y0, x0 = box[0].start, box[1].start, box[2].start
    for p, r in zip(peaks, radii, strict=True):
        pm = p * sp
        if kept_pos:
            d = np.linalg.norm(np.asarray(kept_pos) - pm, axis=1)
            if np.any(d < np.maximum(np.asarray(kept_r), r) * 1.2):
                continue
        kept_pos.append(pm)
        kept_r.append(float(r))
        measured = _measure_lesion(p, float(r), edt, dense, aerated, hu, spacing, settings)
        if measured is not None:
            lesion, feat = measured
            lz0, ly0, lx0, lz1, ly1, lx1 = lesion.box
            out.append((dataclasses.replace(
                lesion, centre=(int(p[0]) + z0, int(p[1]) + y0, int(p[2]) + x0),
                box=(lz0 + z0, ly0 + y0, lx0 + x0, lz1 + z0, ly1 + y0, lx1 + x0)), feat))
        if len(kept_pos) >= MAX_LESIONS:
            break
    return out


def hilar_anchors(anatomy: Anatomy, spacing: tuple[float, float, float]) -> list[np.ndarray]:
    """Positions (mm, work grid) of the two main bronchi where the airway mask ends.

    The hila lie there: pulmonary arteries, veins and bronchi side by side,
    which without contrast look like a lobulated soft-tissue blob.
    """
    aw = anatomy.airway
    zs = np.nonzero(aw.any(axis=(1, 2)))[0]
    if zs.size == 0:
        return []
    sp = np.asarray(spacing)
    low = zs[zs <= zs.min() + int(HILAR_END_MM / sp[0])] if anatomy.cranial_sign > 0 \
        else zs[zs >= zs.max() - int(HILAR_END_MM / sp[0])]
    pts = (np.argwhere(aw[low.min():low.max() + 1]) + [low.min(), 0, 0]) * sp
    labels, n = ndi.label(aw[low.min():low.max() + 1])
    if n >= 2:
        mid = np.argwhere(aw)[:, 2].mean() * sp[2]
        return [pts[side].mean(axis=0) for side in (pts[:, 2] < mid, pts[:, 2] >= mid)
                if side.any()]
    end = pts.mean(axis=0)
    mid = np.argwhere(aw)[:, 2].mean() * sp[2]
    if abs(end[2] - mid) > TRACHEA_RADIUS_MM:
        # One main bronchus was followed to its lung: that hilum, and the other
        # one mirrored across the midline.
        return [end, end * [1.0, 1.0, -1.0] + [0.0, 0.0, 2.0 * mid]]
    # The track ended in the trachea: the hila lie ~50 mm either side of the
    # midline, ~15 mm below the carina (Breatnach 1984; standard anatomy). The carina
    # is at or below the end of the track (noise or a narrow lumen may stop it early),
    # so the hila may be at any level from there to the lung bases: anchors every
    # hilar zone midpoint down that column.
    step = -anatomy.cranial_sign
    lung_z = np.nonzero(anatomy.lungs.any(axis=(1, 2)))[0]
    base = (lung_z.min() if step < 0 else lung_z.max()) * sp[0] if lung_z.size else end[0]
    every = HILAR_ZONE_MM[0] * step
    levels = np.arange(end[0] + HILAR_BELOW_MM * step, base + every, every)
    levels = levels if levels.size else np.array([end[0] + HILAR_BELOW_MM * step])
    return [np.array([z, end[1], end[2] + side]) for z in levels
            for side in (HILAR_LATERAL_MM, -HILAR_LATERAL_MM)]


def shell_radii(r: float, spacing: np.ndarray) -> tuple[float, float]:
    """Inner and outer radius (mm) of the isolation shell of a ball of radius ``r`` (``SHELL``).

    On thick slices the shell must reach two slices away (1.2 of the coarsest voxel
    past its start), or a vessel crossing the slices obliquely looks like a dot.
    """
    inner = SHELL[0] * r
    return inner, max(SHELL[1] * r, inner + 1.2 * float(np.max(spacing)))


def _measure_lesion(p: np.ndarray, r: float, edt: np.ndarray, dense: np.ndarray,
                    aerated: np.ndarray, hu: np.ndarray, spacing: tuple[float, float, float],
                    settings: AnalyzerSettings) -> tuple[Lesion, CandidateFeatures] | None:
    """Isolation, extent and size of the blob centred at ``p`` (local crop coordinates)."""
    sp = np.asarray(spacing)
    # On thick slices the shell must reach two slices away, or a vessel crossing
    # the slices obliquely looks like a dot.
    inner, outer = shell_radii(r, sp)
    half = np.ceil(outer / sp).astype(int) + 1
    lo = np.maximum(p - half, 0)
    hi = np.minimum(p + half + 1, edt.shape)
    sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    e, dn, air, h = edt[sl], dense[sl], aerated[sl], hu[sl]
    zz, yy, xx = np.ogrid[: e.shape[0], : e.shape[1], : e.shape[2]]
    c = p - lo
    dist = np.sqrt(((zz - c[0]) * sp[0]) ** 2 + ((yy - c[1]) * sp[1]) ** 2
                   + ((xx - c[2]) * sp[2]) ** 2)
    shell = (dist >= inner) & (dist <= outer)
    isolation = float(e[shell].max() / r) if shell.any() else 0.0
    if isolation > 1.2:
        return None  # plainly a vessel or the hilum: skip the costly part
    elongation = _elongation(e, dn & (dist <= outer), sp)
    # Extent: opening at half the inscribed radius, the part connected to the centre.
    rho = max(0.5 * r, float(sp.min()))
    core = e >= rho
    opened = dn & (ndi.distance_transform_edt(~core, sampling=spacing) <= rho)
    opened &= dist <= outer
    if r >= MASS_CORE_RADIUS_MM:
        opened &= _own_share(e, opened, c, r, dist, sp)
    labels, _ = ndi.label(opened)
    lab = labels[tuple(c)]
    if lab == 0:
        return None
    mask = labels == lab
    long_ax, short_ax = _axial_axes(mask, spacing)
    ring = ndi.binary_dilation(mask, iterations=1) & ~mask
    contact = float(air[ring].mean()) if ring.any() else 0.0
    mean_d = (long_ax + short_ax) / 2.0
    # Thick slices cannot show a nodule smaller than ~1.5 slices (Fleischner 2017
    # asks for <= 1.5 mm sections to size nodules): raise the floor with them.
    min_d = max(settings.nodule_min_mm, 1.5 * float(sp[0]))
    feat = CandidateFeatures(isolation, long_ax / max(short_ax, 1e-6), contact, mean_d, min_d,
                             0.0, inscribed_mm=2.0 * r)
    vox_ml = float(np.prod(sp)) / 1000.0
    return Lesion(
        centre=(int(p[0]), int(p[1]), int(p[2])), radius_mm=r, isolation=isolation,
        elongation=elongation,
        lung_contact=contact, long_axis_mm=long_ax, short_axis_mm=short_ax,
        volume_ml=float(mask.sum()) * vox_ml, mean_hu=float(h[mask].mean()),
        box=(int(lo[0]), int(lo[1]), int(lo[2]), int(hi[0]), int(hi[1]), int(hi[2])),
        mask=mask, score=0.0), feat


def _own_share(e: np.ndarray, opened: np.ndarray, c: np.ndarray, r: float, dist: np.ndarray,
               sp: np.ndarray) -> np.ndarray:
    """Voxels nearer to this candidate's inscribed ball than to a neighbouring thick one.

    A mass that abuts the hilum or another mass is joined to it through a neck the
    opening keeps when both hold its ball; its extent then takes in the neighbour (a
    40 mm mass beside the hilum measured 55 mm and 1.7:1 on a 1.5 mm grid, round on a
    2.4 mm one). Split at the neck: each voxel goes to the ball whose surface is nearer
    (an additively weighted Voronoi split, the distance-transform split of touching
    blobs), against every other local maximum of the distance map that lies outside
    this ball and holds a ball of at least ``NEIGHBOUR_BALL`` of this one's radius.
    Thinner neighbours (vessels) stay attached, as before: isolation weighs them.
    """
    own = np.ones(e.shape, dtype=bool)
    peaks = np.argwhere(opened & (e >= NEIGHBOUR_BALL * r)
                        & (e == ndi.maximum_filter(e, size=3)))
    if peaks.size == 0:
        return own
    peaks = peaks[np.linalg.norm((peaks - c) * sp, axis=1) > r]
    peaks = peaks[np.argsort(-e[tuple(peaks.T)], kind="stable")]
    zz, yy, xx = np.ogrid[: e.shape[0], : e.shape[1], : e.shape[2]]
    used: list[tuple[np.ndarray, float]] = []
    for q in peaks:
        rq = float(e[tuple(q)])
        # A plateau or ridge has many maxima: one ball of a neighbour speaks for it.
        if any(np.linalg.norm((q - u) * sp) < ru for u, ru in used):
            continue
        if not _neck_between(e, c, q):
            continue
        used.append((q, rq))
        dq = np.sqrt(((zz - q[0]) * sp[0]) ** 2 + ((yy - q[1]) * sp[1]) ** 2
                     + ((xx - q[2]) * sp[2]) ** 2)
        own &= dist - r <= dq - rq
    return own


def _neck_between(e: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool:
    """Whether the distance map dips below ``NECK`` of the smaller ball between a and b.

    Two touching blobs meet at a neck; a vessel that goes on from a junction keeps its
    thickness along its axis, with no dip to split at.
    """
    n = int(np.abs(b - a).max()) * 2 + 1
    pts = np.rint(a + np.linspace(0.0, 1.0, n)[:, None] * (b - a)).astype(int)
    along = e[tuple(pts.T)]
    return float(along.min()) < NECK * min(float(e[tuple(a)]), float(e[tuple(b)]))


def _elongation(edt: np.ndarray, region: np.ndarray, sp: np.ndarray) -> float:
    """sqrt(largest / smallest) principal variance of the tissue, weighted by thickness^2.

    Reported with each candidate (a tube through the ball measures ~2.9, a
    ball 1-1.6), not scored: on the phantom cohort it removed as many true
    nodules (attached to thick vessels near the hila) as vessels.
    """
    pts = np.argwhere(region)
    if len(pts) < 4:
        return 1.0
    w = edt[region] ** 2
    x = pts * sp
    mean = (x * w[:, None]).sum(axis=0) / w.sum()
    d = x - mean
    cov = (d * w[:, None]).T @ d / w.sum()
    ev = np.linalg.eigvalsh(cov)
    return float(np.sqrt(max(ev[-1], 1e-9) / max(ev[0], 1e-9)))


def _axial_axes(mask: np.ndarray, spacing: tuple[float, float, float]) -> tuple[float, float]:
    """Long axis and the axis perpendicular to it (mm) on the slice of largest area.

    Fleischner 2017 (Bankier et al.): the long axis is the longest chord on the
    axial slice, the short axis is measured perpendicular to it.
    """
    k = int(np.argmax(mask.sum(axis=(1, 2))))
    return _chord_axes(mask[k], spacing[1], spacing[2])


def _chord_axes(mask2d: np.ndarray, dy: float, dx: float) -> tuple[float, float]:
    """Longest extent of a 2-D mask over 36 directions and the extent perpendicular to it.

    One pixel is added for the pixels' own width.
    """
    ys, xs = np.nonzero(mask2d)
    if ys.size == 0:
        return 0.0, 0.0
    pts = np.column_stack([ys * dy, xs * dx]).astype(float)
    pix = float(min(dy, dx))
    angles = np.deg2rad(np.arange(0.0, 180.0, 5.0))
    dirs = np.column_stack([np.sin(angles), np.cos(angles)])
    proj = pts @ dirs.T
    extent = proj.max(axis=0) - proj.min(axis=0) + pix
    i = int(np.argmax(extent))
    j = (i + len(angles) // 2) % len(angles)
    return float(extent[i]), float(min(extent[j], extent[i]))


@dataclass(frozen=True, slots=True, eq=False)
class SizedLesion(Lesion):
    """A candidate measured as readers measure it: ``long_axis_mm`` and ``short_axis_mm``
    of the whole lesion, ground-glass component included; ``solid_long_axis_mm`` the
    long axis of its solid part alone (equal for a solid lesion), the second measure
    Fleischner 2017 asks of a part-solid nodule."""

    solid_long_axis_mm: float = 0.0


@dataclass(frozen=True, slots=True)
class ReaderSize:
    """Whole-lesion long and short axial axes, and the solid part's long axis (mm)."""

    long_axis_mm: float
    short_axis_mm: float
    solid_long_axis_mm: float


def reader_sizes(grid: WorkGrid, lesion: Lesion, ext: np.ndarray | None = None
                 ) -> ReaderSize:
    """The lesion at full resolution as readers outline it, slice by slice.

    Solid part: the candidate's work-grid core, taken to full resolution, is grown
    inside the half-way iso-contour between the core's median HU and the surrounding
    aerated lung's (the edge of a blurred step lies where the profile crosses half
    the step, as a full width at half maximum), by at most the opening radius that
    cut the core from its surroundings in ``_measure_lesion``: lobulations and
    spicule bases the opening trimmed come back, attached vessels are not followed
    further than that (``_solid_part``).

    Whole lesion: the solid part plus the ground glass that adjoins it
    (``_ground_glass_part``): readers outline a part-solid nodule whole and report its
    solid component apart (Bankier et al., Radiology 2017;285:584). Only the slices of
    the candidate's solid core are measured: ground glass above or below the solid
    part alone is not, a known limit. Ground glass is not followed into the
    subpleural zone of ``ext`` (``_shallow``, worked around this lesion only).

    The long axis is the longest chord on the slice where the whole lesion's section is
    largest (the slice of largest extent; its area, not its longest chord, picks it): the
    longest chord over all slices follows a strand of ground glass that noise or a soft
    kernel joins to the lesion on one slice, where an area hardly moves (issue 12:
    LIDC-0003's mass measured 30.2 mm on the original, 33.1 mm with 40 HU of noise by the
    longest chord, 30.5 mm on its largest section; the originals measure the same either way).
    The whole lesion is never shorter than its solid part, whose long axis may lie on
    another slice.
    Growth stays inside the extended lungs ``ext`` when given: readers' outlines stop
    at the pleura, the chest wall and mediastinum beyond it are as dense as the
    lesion. Zero sizes when no lung level is found.
    """
    vol = grid.source
    fz, fy, fx = grid.factors
    sx, sy, _ = vol.spacing
    rho = max(0.5 * lesion.radius_mm, min(grid.spacing_zyx))
    # The crop reaches as far as ground glass may be followed (``GGO_REACH`` of the solid
    # part, which lies within the candidate's window grown by ``rho``).
    window = max(lesion.box[4] - lesion.box[1], lesion.box[5] - lesion.box[2])
    reach = rho + GGO_REACH * (window * max(grid.spacing_zyx[1:]) + 2.0 * rho)
    my, mx = int(math.ceil(reach / sy)) + fy, int(math.ceil(reach / sx)) + fx
    z0, y0, x0, z1, y1, x1 = full_bbox(lesion.box, grid)
    ny, nx = vol.shape[1], vol.shape[2]
    oy, ox = min(my, y0), min(mx, x0)
    hu = vol.voxels[z0:z1, y0 - oy:min(ny, y1 + my), x0 - ox:min(nx, x1 + mx)]
    up = np.repeat(np.repeat(np.repeat(lesion.mask, fz, axis=0), fy, axis=1), fx, axis=2)
    core = np.zeros(hu.shape, dtype=bool)
    core[:, oy:oy + (y1 - y0), ox:ox + (x1 - x0)] = up[: z1 - z0, : y1 - y0, : x1 - x0]
    # The lung level is read within ``rho`` of the candidate's window: the lung next to it.
    ry, rx = int(math.ceil(rho / sy)) + fy, int(math.ceil(rho / sx)) + fx
    near = (slice(None), slice(oy - min(ry, oy), oy + (y1 - y0) + ry),
            slice(ox - min(rx, ox), ox + (x1 - x0) + rx))
    lung = hu[near] < -500
    if not core.any() or not lung.any():
        return ReaderSize(0.0, 0.0, 0.0)
    level = (float(np.median(hu[core])) + float(np.median(hu[near][lung]))) / 2.0
    wz0, wy0, wx0, wz1 = lesion.box[0], (y0 - oy) // fy, (x0 - ox) // fx, lesion.box[3]
    wy1, wx1 = -(-(y0 - oy + hu.shape[1]) // fy), -(-(x0 - ox + hu.shape[2]) // fx)
    sy0, sx0 = (y0 - oy) - wy0 * fy, (x0 - ox) - wx0 * fx

    window_slices = (slice(wz0, wz1), slice(wy0, wy1), slice(wx0, wx1))

    def full(work: np.ndarray, cropped: bool = False) -> np.ndarray:
        w = work if cropped else work[window_slices]
        m = np.repeat(np.repeat(np.repeat(w, fz, axis=0), fy, axis=1), fx, axis=2)
        return m[: hu.shape[0], sy0:sy0 + hu.shape[1], sx0:sx0 + hu.shape[2]]

    allowed = full(ext) if ext is not None else np.ones(hu.shape, dtype=bool)
    inside = (hu >= level) & allowed
    band = (hu >= GGO_HU[0]) & ~inside & allowed
    subpleural = ~allowed
    if ext is not None:
        subpleural |= full(_shallow(ext, window_slices, grid.spacing_zyx), cropped=True)
    pix = min(sx, sy)
    steps = max(1, int(math.ceil(rho / pix)))
    slices = np.nonzero(core.any(axis=(1, 2)))[0]
    solid = {int(k): _solid_part(core[k] & inside[k], inside[k], steps) for k in slices}
    solid_axes = {k: _chord_axes(m, sy, sx) for k, m in solid.items() if m.any()}
    if not solid_axes:
        return ReaderSize(0.0, 0.0, 0.0)
    solid_long = max(a[0] for a in solid_axes.values())
    best, best_area = (0.0, 0.0), 0
    for k, m in solid.items():
        if not m.any():
            continue
        whole = m | _ground_glass_part(m, band[k], subpleural[k], pix,
                                       GGO_REACH * solid_long)
        area = int(whole.sum())
        if area > best_area:
            best, best_area = _chord_axes(whole, sy, sx), area
    return ReaderSize(max(best[0], solid_long), best[1], solid_long)


def _shallow(ext: np.ndarray, region: tuple[slice, slice, slice],
             spacing: tuple[float, float, float]) -> np.ndarray:
    """Voxels of ``region`` (work grid) less than ``SUBPLEURAL_MM`` from the edge of ``ext``.

    The distance transform runs on a crop that reaches ``SUBPLEURAL_MM`` (and a voxel)
    past the region on every side: an edge voxel nearer than that lies inside it, so the
    answer equals that of a whole-volume transform, for ~1/50 of its cost on a chest
    (it was 2.6 s of ``find_lesions`` on LIDC-0003).
    """
    pad = [int(math.ceil(SUBPLEURAL_MM / s)) + 1 for s in spacing]
    inner = [slice(min(r.start, n), min(r.stop, n)) for r, n in zip(region, ext.shape, strict=True)]
    lo = [max(0, r.start - p) for r, p in zip(inner, pad, strict=True)]
    hi = [min(n, r.stop + p) for r, n, p in zip(inner, ext.shape, pad, strict=True)]
    sub = ext[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    keep = tuple(slice(r.start - a, r.stop - a) for r, a in zip(inner, lo, strict=True))
    if sub.all():  # no edge within reach: nothing is shallow
        return np.zeros(sub[keep].shape, dtype=bool)
    depth = ndi.distance_transform_edt(sub, sampling=spacing)
    return np.asarray(depth[keep] < SUBPLEURAL_MM)


def _solid_part(seed: np.ndarray, inside: np.ndarray, steps: int) -> np.ndarray:
    """The seed grown by ``steps`` pixels inside the half-way contour (one slice)."""
    if not seed.any():
        return seed
    return ndi.binary_dilation(seed, iterations=steps, mask=inside)


def _ground_glass_part(solid: np.ndarray, band: np.ndarray, subpleural: np.ndarray,
                       pix_mm: float, reach_mm: float) -> np.ndarray:
    """Ground glass adjoining the solid part on one slice, at most ``reach_mm`` from it.

    ``band`` is the ground-glass attenuation below the solid part's half-way contour.
    The blur puts a rind of it around every solid structure, the solid part itself,
    vessels and bronchial walls included; an opening with a disk as wide as
    ``GGO_OPEN_MM`` removes those rinds and keeps ground glass thicker than them.
    What survives and comes within the opening radius (the rind it removed) of the
    solid part belongs to the lesion, unless it reaches into the ``subpleural`` zone
    (``SUBPLEURAL_MM``): ground-glass attenuation there is dependent density or the
    partial volume of the chest wall on an oblique section, which readers leave out.
    """
    if not band.any():
        return band
    # Two openings: the extent is what a 3-pixel disk covers (no rind of one or two
    # pixels holds it); a region counts only where it also holds the core disk, wider
    # than the rind in mm and, on coarse grids, at least 5 pixels wide.
    ggo = ndi.binary_opening(band, structure=_disk(1))
    core = ndi.binary_opening(ggo, structure=_disk(max(2, int(round(GGO_OPEN_MM / pix_mm)))))
    if not core.any():
        return core
    near = ndi.binary_dilation(solid, structure=_disk(1), iterations=2)
    labels, n = ndi.label(ggo)
    touching = np.intersect1d(np.unique(labels[near & ggo]), np.unique(labels[core]))
    pleural = np.unique(labels[subpleural & ggo])
    keep = np.isin(labels, np.setdiff1d(touching[touching > 0], pleural))
    within = ndi.distance_transform_edt(~solid) * pix_mm <= reach_mm
    return keep & within


def _disk(r: int) -> np.ndarray:
    """A 2-D disk structuring element of radius ``r`` pixels."""
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return np.asarray(yy ** 2 + xx ** 2 <= r * r + r)


def mass_size_probability(long_axis_mm: float, settings: AnalyzerSettings) -> float:
    """Probability that readers would measure the lesion at least ``mass_min_mm``
    (``MASS_SIZE_SCALE_MM``): near the limit a lesion is as much a nodule as a mass."""
    return logistic(long_axis_mm, settings.mass_min_mm, MASS_SIZE_SCALE_MM)


def lesion_measures(grid: WorkGrid, lesions: list[Lesion],
                    settings: AnalyzerSettings) -> dict[str, Measure]:
    """Most nodule-like and most mass-like candidate, with evidence.

    A candidate is a mass with probability score x P(long axis >= ``mass_min_mm``)
    and a nodule with score x P(long axis < ``mass_min_mm``) (``mass_size_probability``),
    so a lesion measured on the limit counts half to each instead of jumping from one
    to the other when its measure moves by a millimetre.
    """
    out: dict[str, Measure] = {}
    p_mass = {id(les): mass_size_probability(les.long_axis_mm, settings) for les in lesions}
    kinds = {"mass": lambda les: les.score * p_mass[id(les)],
             "nodule": lambda les: les.score * (1.0 - p_mass[id(les)])}
    for name, prob in kinds.items():
        group = sorted((les for les in lesions if prob(les) > 0.0), key=lambda les: -prob(les))
        best = group[0] if group else None
        evidence = tuple(_lesion_evidence(grid, les, name) for les in group[:5]
                         if prob(les) >= 0.1)
        out[f"{name}_score"] = Measure(
            f"{name}_score", prob(best) if best else 0.0, "1",
            f"probability of the most {name}-like candidate (shape model x lung contact x "
            f"size, x the probability that its size is that of a {name})", evidence)
        out[f"{name}_diameter"] = Measure(
            f"{name}_diameter", best.long_axis_mm if best else 0.0, "mm",
            f"longest axial diameter of the most {name}-like candidate")
        out[f"{name}_solid_diameter"] = Measure(
            f"{name}_solid_diameter", _solid_long(best), "mm",
            f"longest axial diameter of the solid part of the most {name}-like candidate "
            "(the whole lesion less its ground-glass component)")
        out[f"{name}_volume"] = Measure(
            f"{name}_volume", best.volume_ml if best else 0.0, "ml",
            f"volume of the most {name}-like candidate")
        out[f"{name}_count"] = Measure(
            f"{name}_count", float(sum(prob(les) >= 0.5 for les in group)), "{count}",
            f"{name} candidates with probability >= 0.5")
    return out


def _solid_long(lesion: Lesion | None) -> float:
    """The solid part's long axis (the whole lesion's when it was not measured apart)."""
    if lesion is None:
        return 0.0
    return lesion.solid_long_axis_mm if isinstance(lesion, SizedLesion) else lesion.long_axis_mm


def _lesion_evidence(grid: WorkGrid, lesion: Lesion, what: str) -> Evidence:
    full = lesion_mask(grid, [lesion], min_score=0.0)
    solid = _solid_long(lesion)
    part = (f" (solid part {solid:.0f} mm)"
            if 0.0 < solid < lesion.long_axis_mm - SIZE_SCALE_MM else "")
    return component_evidence(
        grid, full,
        f"{what} candidate {lesion.long_axis_mm:.0f} x {lesion.short_axis_mm:.0f} mm{part}, "
        f"{lesion.mean_hu:.0f} HU, score {lesion.score:.2f}",
        diameter_mm=lesion.long_axis_mm)


def lesion_mask(grid: WorkGrid, lesions: list[Lesion], min_score: float = 0.1) -> np.ndarray:
    """Union of the candidate masks scoring at least ``min_score`` (work grid)."""
    out = np.zeros(grid.shape, dtype=bool)
    for lesion in lesions:
        if lesion.score >= min_score:
            z0, y0, x0, z1, y1, x1 = lesion.box
            out[z0:z1, y0:y1, x0:x1] |= lesion.mask
    return out

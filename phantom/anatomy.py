"""The normal chest: tissue labels for body, chest wall, lungs, mediastinum, heart, vessels, bones.

Anatomy lives in physical millimetres around a lung of height ``L`` (apex to
the deepest posterior costophrenic recess); a normalised level ``u`` runs 0 at
the recess to 1 at the apex. Cross-sections are built slice by slice with 2-D
numpy operations; tubular and ellipsoidal structures (heart, aorta, airways,
ribs, lung vessels) are rasterised in 3-D inside their own bounding boxes.
Sizes follow adult reference values (e.g. ascending aorta ~32 mm, descending
~24 mm, CTR ~0.45, trabecular bone ~200 HU) and vary a little with the seed.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from phantom._raster import Grid, capsule, ellipsoid_distance, member_mask
from phantom._trees import Segment, grow_tree
from phantom.types import Bronchiectasis, LungSite, LymphStation, Side, Tissue

logger = logging.getLogger(__name__)

_U_KNOTS = np.array([-0.8, -0.1, 0.1, 0.3, 0.55, 0.75, 0.9, 1.0, 1.4])
_A_KNOTS = np.array([140, 138, 136, 132, 122, 108, 92, 84, 76], dtype=float)  # half width
_B_KNOTS = np.array([104, 101, 97, 92, 84, 76, 68, 64, 58], dtype=float)  # half depth
# Vertebral pitch (body + disc) equals the posterior rib spacing, so that rib pair i
# articulates with vertebra T(i+1) and levels can be counted from the ribs as on a real
# scan. 12 pitches span apex to recess (~T1-T12), i.e. lung height / 11.5 ~ 21 mm.
_VERTEBRA_PITCH_MM = 21.0
_VERTEBRA_BODY_FRACTION = 0.8
_RIB_PITCH_MM = _VERTEBRA_PITCH_MM
# Scoliotic curve: one thoracic curve between these lung levels (apex ~T8-T9).
_SCOLIOSIS_U = (0.05, 0.9)

# Tissues a mediastinal structure may displace (never bone or the chest wall).
_SOFT_INSIDE = (
    Tissue.LUNG, Tissue.MEDIASTINAL_FAT, Tissue.SOFT_TISSUE, Tissue.LIVER, Tissue.SPLEEN,
    Tissue.STOMACH, Tissue.BOWEL_GAS, Tissue.MUSCLE,
)


@dataclass(frozen=True, slots=True)
class AnatomyOptions:
    """What lesions change in the normal anatomy before it is built."""

    ctr: float | None = None
    ascending_diameter_mm: float | None = None
    descending_diameter_mm: float | None = None
    pericardial_effusion_mm: float = 0.0
    trabecular_hu: float | None = None
    bronchiectasis: tuple[Bronchiectasis, ...] = ()
    bronchial_wall_factor: float = 1.0
    # Patient and scan variation (PhantomSpec knobs, issue 12). Lengths here are in the
    # anatomy's own millimetres (already divided by ``length_scale`` for a child).
    fat_mm: float | None = None
    scoliosis_deg: float = 0.0
    right_arch: bool = False
    arms_down: bool = False
    length_scale: float = 1.0  # how region radii given in real mm map to anatomy mm


@dataclass(slots=True)
class Landmarks:
    """Where the generator put things; lesions and the ground truth read it."""

    center_xy: tuple[float, float]
    z_base: float
    lung_height: float
    width_scale: float
    depth_scale: float
    fat_mm: float
    back_y: float
    trabecular_hu: float
    heart_center: np.ndarray
    heart_axes: np.ndarray
    heart_radii: np.ndarray
    pericardial_effusion_mm: float
    epicardial_fat_mm: float
    aorta_path: np.ndarray  # (n, 3) LPS mm centre line, root to diaphragm
    aorta_radius: np.ndarray  # (n,) mm
    aorta_segment: list[str]  # per point: ascending / arch / descending
    ascending_diameter_mm: float
    descending_diameter_mm: float
    coronary_paths: dict[str, np.ndarray] = field(default_factory=dict)
    hila: dict[str, np.ndarray] = field(default_factory=dict)
    vertebra_z: list[tuple[float, float]] = field(default_factory=list)
    vessel_fraction: np.ndarray | None = None
    airway_wall_fraction: np.ndarray | None = None
    airway_lumen_fraction: np.ndarray | None = None
    lung_region: np.ndarray | None = None  # intrapulmonary voxels (bool), before lesions
    notes: dict[str, list[dict[str, object]]] = field(default_factory=dict)
    size_scale: float = 1.0  # body_scale: the vertebral body's fixed mm terms scale with it
    scoliosis_amp_mm: float = 0.0  # signed lateral shift of the curve's apex (+x = left)
    scoliosis_deg: float = 0.0
    right_arch: bool = False
    arms_down: bool = False
    vertebra_names: list[str] = field(default_factory=list)

    def spine_dx(self, u: float) -> float:
        """Lateral shift (mm, LPS x) of the spine's midline at lung level u (scoliosis)."""
        if self.scoliosis_amp_mm == 0.0:
            return 0.0
        t = (u - _SCOLIOSIS_U[0]) / (_SCOLIOSIS_U[1] - _SCOLIOSIS_U[0])
        if not 0.0 < t < 1.0:
            return 0.0
        return self.scoliosis_amp_mm * math.sin(math.pi * t)

    def rescale(self, s: float) -> None:
        """Scale every length by ``s`` (a child built in adult millimetres, then shrunk)."""
        if s == 1.0:
            return
        self.center_xy = (self.center_xy[0] * s, self.center_xy[1] * s)
        for name in ("z_base", "lung_height", "width_scale", "depth_scale", "fat_mm", "back_y",
                     "pericardial_effusion_mm", "epicardial_fat_mm", "ascending_diameter_mm",
                     "descending_diameter_mm", "size_scale", "scoliosis_amp_mm"):
            setattr(self, name, getattr(self, name) * s)
        self.heart_center = self.heart_center * s
        self.heart_radii = self.heart_radii * s
        self.aorta_path = self.aorta_path * s
        self.aorta_radius = self.aorta_radius * s
        self.coronary_paths = {k: v * s for k, v in self.coronary_paths.items()}
        self.hila = {k: v * s for k, v in self.hila.items()}
        self.vertebra_z = [(a * s, b * s) for a, b in self.vertebra_z]
        for note in self.notes.get("bronchiectasis", []):
            note["center_lps_mm"] = [round(float(v) * s, 2)
                                     for v in note["center_lps_mm"]]  # type: ignore[attr-defined]
            note["radius_mm"] = round(float(note["radius_mm"]) * s, 3)  # type: ignore[arg-type]

    def u(self, z: float | np.ndarray) -> float | np.ndarray:
        """Normalised lung level of a z position."""
        return (z - self.z_base) / self.lung_height

    def z(self, u: float) -> float:
        """z position of a normalised lung level."""
        return self.z_base + u * self.lung_height

    def half_width(self, u: float | np.ndarray) -> float | np.ndarray:
        """Inner half width (mm) of the thoracic cavity at level u."""
        return np.interp(u, _U_KNOTS, _A_KNOTS) * self.width_scale

    def half_depth(self, u: float | np.ndarray) -> float | np.ndarray:
        """Inner half depth (mm) of the thoracic cavity at level u."""
        return np.interp(u, _U_KNOTS, _B_KNOTS) * self.depth_scale

    def vertebral_body(self, u: float) -> tuple[float, float, float]:
        """(y centre, x radius, y radius) of the vertebral body at level u (relative y)."""
        b = float(self.half_depth(u))
        t = float(np.clip(1.0 - u, 0.0, 1.3))
        k = self.size_scale
        return b - 14.0 * k, (15.0 + 5.0 * t) * k, (12.5 + 4.0 * t) * k

    def max_thoracic_width(self) -> float:
        """Largest inner thoracic width over the lung levels (mm): the CTR denominator."""
        us = np.linspace(0.0, 1.0, 101)
        return float(2.0 * np.max(self.half_width(us)))


def _chaikin(points: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Smooth a polyline by corner cutting, keeping its end points."""
    p = np.asarray(points, dtype=float)
    for _ in range(iterations):
        q = 0.75 * p[:-1] + 0.25 * p[1:]
        r = 0.25 * p[:-1] + 0.75 * p[1:]
        inner = np.empty((2 * len(q), 3))
        inner[0::2], inner[1::2] = q, r
        p = np.vstack([p[:1], inner, p[-1:]])
    return p


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


class _Painter:
    """Writes structures into the label volume with rules about what they may replace."""

    def __init__(self, grid: Grid, labels: np.ndarray) -> None:
        self.grid = grid
        self.labels = labels

    def tube(
        self,
        path: np.ndarray,
        radii: np.ndarray | float,
        tissue: Tissue,
        allowed: tuple[Tissue, ...] | None = None,
        margin_fat: float = 0.0,
    ) -> None:
        r = np.broadcast_to(np.asarray(radii, dtype=float), (len(path),))
        if margin_fat > 0:
            for i in range(len(path) - 1):
                self._paint_capsule(path[i], path[i + 1], r[i] + margin_fat, r[i + 1] + margin_fat,
                                    Tissue.MEDIASTINAL_FAT, (Tissue.LUNG,))
        for i in range(len(path) - 1):
            self._paint_capsule(path[i], path[i + 1], r[i], r[i + 1], tissue, allowed)

    def _paint_capsule(
        self, p0: np.ndarray, p1: np.ndarray, r0: float, r1: float, tissue: Tissue,
        allowed: tuple[Tissue, ...] | None,
    ) -> None:
        res = capsule(self.grid, p0, p1, r0, r1)
        if res is None:
            return
        box, frac = res
        self.put(box, frac >= 0.5, tissue, allowed)

    def put(
        self, box: tuple[slice, slice, slice], mask: np.ndarray, tissue: Tissue,
        allowed: tuple[Tissue, ...] | None,
    ) -> None:
        sub = self.labels[box]
        if allowed is not None:
            mask = mask & member_mask(sub, allowed)
        sub[mask] = np.uint8(tissue)


def _sample_params(rng: np.random.Generator) -> dict[str, float]:
    return {
        "lung_height": float(rng.uniform(232.0, 258.0)),
        "width_scale": float(rng.uniform(0.95, 1.05)),
        "depth_scale": float(rng.uniform(0.95, 1.05)),
        "fat_mm": float(np.clip(15.0 * math.exp(rng.normal(0.0, 0.3)), 6.0, 35.0)),
        "ctr": float(rng.uniform(0.41, 0.47)),
        "asc": float(rng.uniform(29.0, 34.0)),
        "desc": float(rng.uniform(21.0, 25.5)),
        "trab": float(rng.uniform(175.0, 230.0)),
        # Drawn only to keep the random stream of older phantoms; the vertebral levels are
        # now aligned with the ribs (see _build_slices).
        "pitch_phase": float(rng.uniform(0.0, _VERTEBRA_PITCH_MM)),
    }


def scan_z_origin(spec_num_slices: int, spacing_z: float, lung_height: float,
                  z_offset: float) -> float:
    """z of the first (most caudal) slice: the scan range is centred on the lungs."""
    centre = -lung_height / 2.0 - 4.0 + z_offset
    return centre - (spec_num_slices - 1) * spacing_z / 2.0


def build_anatomy(
    grid_shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    center_xy: tuple[float, float],
    z_offset: float,
    options: AnatomyOptions,
    rng: np.random.Generator,
) -> tuple[Grid, np.ndarray, Landmarks]:
    """The grid, the label volume (uint8 Tissue) and landmarks of a normal chest."""
    prm = _sample_params(rng)
    nz, ny, nx = grid_shape
    origin = (
        -(nx - 1) * spacing[0] / 2.0,
        -(ny - 1) * spacing[1] / 2.0,
        scan_z_origin(nz, spacing[2], prm["lung_height"], z_offset),
    )
    grid = Grid(grid_shape, spacing, origin)
    lm = Landmarks(
        center_xy=center_xy,
        z_base=-prm["lung_height"],
        lung_height=prm["lung_height"],
        width_scale=prm["width_scale"],
        depth_scale=prm["depth_scale"],
        fat_mm=prm["fat_mm"],
        back_y=0.0,
        trabecular_hu=options.trabecular_hu if options.trabecular_hu is not None else prm["trab"],
        heart_center=np.zeros(3),
        heart_axes=np.eye(3),
        heart_radii=np.ones(3),
        pericardial_effusion_mm=options.pericardial_effusion_mm,
        epicardial_fat_mm=3.0,
        aorta_path=np.zeros((2, 3)),
        aorta_radius=np.zeros(2),
        aorta_segment=[],
        ascending_diameter_mm=options.ascending_diameter_mm or prm["asc"],
        descending_diameter_mm=options.descending_diameter_mm or prm["desc"],
        scoliosis_deg=options.scoliosis_deg,
        right_arch=options.right_arch,
        arms_down=options.arms_down,
    )
    if options.fat_mm is not None:
        lm.fat_mm = options.fat_mm
    if options.scoliosis_deg:
        # Cobb angle = angle between the end vertebrae's tangents = 2 atan(max slope) for
        # x = A sin(pi t) over a curve of height H: A = H tan(Cobb / 2) / pi. Positive Cobb
        # (convex right) shifts the apex to the patient's right (-x in LPS).
        height = (_SCOLIOSIS_U[1] - _SCOLIOSIS_U[0]) * lm.lung_height
        amp = height * math.tan(math.radians(abs(options.scoliosis_deg)) / 2.0) / math.pi
        lm.scoliosis_amp_mm = -amp if options.scoliosis_deg > 0 else amp
    labels = np.zeros(grid_shape, dtype=np.uint8)
    _build_slices(grid, labels, lm, prm)
    painter = _Painter(grid, labels)
    _build_heart(painter, lm, options.ctr if options.ctr is not None else prm["ctr"])
    _build_great_vessels(painter, lm)
    _build_airways_central(painter, lm)
    _build_ribs(painter, lm)
    _build_lymph_nodes(painter, lm, rng)
    _build_lung_trees(grid, labels, lm, rng, options)
    return grid, labels, lm


def vertebra_name(n: int) -> str:
    """Name of the vertebra ``n`` pitches below T1 (n = 0 is T1, -1 is C7, 12 is L1)."""
    level = n + 1
    if level <= 0:
        return f"C{max(7 + level, 1)}"
    if level <= 12:
        return f"T{level}"
    if level <= 17:
        return f"L{level - 12}"
    return "S1"


def _build_slices(grid: Grid, labels: np.ndarray, lm: Landmarks, prm: dict[str, float]) -> None:
    """Body, chest wall, cavity, lungs, abdomen, spine, sternum and table, slice by slice."""
    cx, cy = lm.center_xy
    xs = grid.x[None, :] - np.float32(cx)
    ys = grid.y[:, None] - np.float32(cy)
    x_abs = grid.x[None, :]
    fat = lm.fat_mm
    b_max = float(lm.half_depth(0.1))
    back = b_max + 30.0 + 0.8 * fat  # flat back resting on the table (relative y)
    lm.back_y = cy + back
    table_top = back + 6.0
    plate = max(3.5, 1.01 * grid.spacing[1])  # carbon shells, at least one pixel thick
    # Hemidiaphragm domes in units of lung level u (right higher than left).
    a0, b0 = float(lm.half_width(0.2)), float(lm.half_depth(0.2))
    dome: np.ndarray = np.empty((grid.shape[1], grid.shape[2]), dtype=np.float32)
    for sign, h in ((-1.0, 0.27), (1.0, 0.22)):
        xd, yd = sign * 0.42 * a0, -0.15 * b0
        r2 = ((xs - xd) / (0.58 * a0)) ** 2 + ((ys - yd) / (1.1 * b0)) ** 2
        d = h - h * np.power(r2, 0.8) - 0.04 * np.clip(ys / b0, 0.0, 1.0)
        d = np.maximum(d, 0.0)  # u = 0 is the deepest recess by definition
        sel = (xs < 0) if sign < 0 else (xs >= 0)
        dome = np.where(np.broadcast_to(sel, dome.shape), d, dome)
    # Vertebra T1's body centre sits at the first rib's posterior end; a body centre is at
    # phase 0.4 of the pitch (body 0..0.8, disc 0.8..1).
    z_t1 = lm.z(1.0) + 4.0
    pitch_phase = (0.4 * _VERTEBRA_PITCH_MM - z_t1) % _VERTEBRA_PITCH_MM
    arms = _arm_geometry(lm) if lm.arms_down else None
    for k, z in enumerate(grid.z):
        u = float(lm.u(float(z)))
        a, b = float(lm.half_width(u)), float(lm.half_depth(u))
        sl = labels[k]
        # Cavity: ellipse with an approximate signed distance (mm, negative inside).
        d_cav = _ellipse_distance(xs, ys, a, b, 0.0)
        # Body: the chest wall ellipse united with a broad paraspinal block down to the flat
        # back, so the back rests on the table at every level.
        d_wall = _ellipse_distance(xs, ys, a + 14.0 + fat, b + 14.0 + fat, 0.0)
        y_para = b - 30.0
        d_para = _ellipse_distance(xs, ys, 88.0 + fat, back + 10.0 - y_para, y_para)
        d_para = np.where(ys > y_para, d_para, np.float32(1e3))
        d_body = np.minimum(d_wall, d_para)
        body = (d_body < 0) & (ys < back)
        d_body = np.maximum(d_body, ys - np.float32(back))
        sl[:] = Tissue.AIR
        table = (np.abs(x_abs) < 205.0) & (
            ((ys >= table_top) & (ys < table_top + plate))
            | ((ys >= table_top + 34.0) & (ys < table_top + 34.0 + plate))
        )
        sl[np.broadcast_to(table, sl.shape)] = Tissue.TABLE
        sl[body] = Tissue.MUSCLE
        sl[body & (d_body > -fat)] = Tissue.FAT
        if 0.55 < u < 1.02:
            # Scapulae: thin plates on the posterolateral chest wall, a triangle that
            # narrows to its inferior angle.
            t = (u - 0.55) / 0.47
            ax = np.abs(xs)
            scap = ((d_cav > 15.0) & (d_cav < 19.5) & (ys > 0.15 * b) & (d_body < -3.0)
                    & (ax > (0.55 - 0.25 * t) * a) & (ax < (0.6 + 0.4 * t) * a))
            sl[scap] = Tissue.BONE_CORTEX
        cav = d_cav < 0
        if u > 1.0:
            sl[cav] = Tissue.SOFT_TISSUE
        else:
            below = cav & (u <= dome)
            diaphragm = below & (u > dome - 5.0 / lm.lung_height)
            liver = below & (xs < 15.0 + 45.0 * np.clip(-ys / b, 0.0, 1.0))
            spleen = below & ~liver & (xs > 0.3 * a) & (ys > 0.05 * b)
            stomach = below & ~liver & ~spleen & (
                ((xs - 0.4 * a) / (0.38 * a)) ** 2 + ((ys + 0.25 * b) / (0.5 * b)) ** 2 < 1.0
            )
            gas = stomach & (ys < -0.6 * b)
            sl[cav] = Tissue.MEDIASTINAL_FAT
            sl[below] = Tissue.SOFT_TISSUE
            sl[liver] = Tissue.LIVER
            sl[spleen] = Tissue.SPLEEN
            sl[stomach] = Tissue.STOMACH
            sl[gas] = Tissue.BOWEL_GAS
            sl[diaphragm] = Tissue.MUSCLE
            y_vb, rx, ry = lm.vertebral_body(u)
            band = np.abs(xs - 2.0) < 8.0 + 20.0 * np.clip((ys + 0.55 * b) / (0.5 * b), 0.0, 1.0)
            xsp = xs - np.float32(lm.spine_dx(u))
            spine_excl = ((xsp / (rx + 8.0)) ** 2 + ((ys - y_vb) / (ry + 8.0)) ** 2 < 1.0) | (
                (np.abs(xsp) < rx + 8.0) & (ys > y_vb)
            )
            lung = cav & (u > dome) & ~band & ~spine_excl
            if u > 0.72:
                s = max(0.0, (1.0 - u) / 0.28) ** 0.4
                env = ((np.abs(xs) - 0.48 * a) / max(0.55 * a * s, 1e-3)) ** 2 + (
                    (ys - 0.1 * b) / max(0.95 * b * s, 1e-3)
                ) ** 2 < 1.0
                lung &= env
            sl[lung] = Tissue.LUNG
            if u > 0.75:
                # Around the apices the thoracic inlet holds muscle and vessels, not fat.
                sl[cav & ~lung & ~band & ~spine_excl] = Tissue.MUSCLE
        _spine_slice(sl, xs - np.float32(lm.spine_dx(u)), ys, lm, u, float(z) + pitch_phase,
                     back)
        if arms is not None:
            _arm_slice(sl, xs, ys, arms)
        if 0.2 <= u <= 0.86:
            y_st = -b - 7.0
            hw = 14.0 + (9.0 if u > 0.75 else 0.0)
            sternum = (np.abs(xs) < hw) & (np.abs(ys - y_st) < 6.0)
            inner = (np.abs(xs) < hw - 1.6) & (np.abs(ys - y_st) < 4.4)
            sl[sternum] = Tissue.BONE_CORTEX
            sl[inner] = Tissue.BONE_MARROW
    # Vertebral levels (body z ranges) for the ground truth.
    z0, z1 = float(grid.z[0]), float(grid.z[-1])
    start = math.floor((z0 + pitch_phase) / _VERTEBRA_PITCH_MM) * _VERTEBRA_PITCH_MM - pitch_phase
    zz = start
    while zz < z1:
        lm.vertebra_z.append((zz, zz + _VERTEBRA_BODY_FRACTION * _VERTEBRA_PITCH_MM))
        centre = zz + 0.4 * _VERTEBRA_PITCH_MM
        lm.vertebra_names.append(vertebra_name(int(round((z_t1 - centre) / _VERTEBRA_PITCH_MM))))
        zz += _VERTEBRA_PITCH_MM


def _arm_geometry(lm: Landmarks) -> tuple[float, float, float, float, float]:
    """(x offset, y centre, x radius, y radius, fat) of the arms hanging beside the chest.

    An adult upper arm is about 90 mm across (muscle and humerus) plus its fat; it lies
    against the lateral chest wall, level with the mid-axillary line.
    """
    cx, cy = lm.center_xy
    arm_fat = 0.6 * lm.fat_mm
    rx, ry = 40.0 + arm_fat, 46.0 + arm_fat
    chest = float(np.max(lm.half_width(np.linspace(0.0, 1.0, 21)))) + 14.0 + lm.fat_mm
    return chest + 6.0 + rx, cy + 0.05 * float(lm.half_depth(0.5)), rx, ry, arm_fat


def _arm_slice(sl: np.ndarray, xs: np.ndarray, ys: np.ndarray,
               arms: tuple[float, float, float, float, float]) -> None:
    """Both upper arms (skin, fat, muscle, humerus with marrow) where the slice is still air."""
    off, yc, rx, ry, fat = arms
    for sign in (-1.0, 1.0):
        dx = xs - np.float32(sign * off)
        dy = ys - np.float32(yc)
        e = np.sqrt((dx / rx) ** 2 + (dy / ry) ** 2)
        air = sl == Tissue.AIR
        sl[air & (e < 1.0)] = Tissue.FAT
        sl[air & (e < 1.0 - fat / max(rx, 1e-3))] = Tissue.MUSCLE
        r2 = dx**2 + dy**2
        sl[air & (r2 < 11.0**2)] = Tissue.BONE_CORTEX
        sl[air & (r2 < 6.5**2)] = Tissue.BONE_MARROW


def _ellipse_distance(xs: np.ndarray, ys: np.ndarray, a: float, b: float,
                      y0: float) -> np.ndarray:
    """Approximate signed distance (mm, negative inside) to an axis-aligned ellipse."""
    yy = ys - np.float32(y0)
    q = np.sqrt((xs / a) ** 2 + (yy / b) ** 2)
    grad = np.sqrt((xs / a**2) ** 2 + (yy / b**2) ** 2) / np.maximum(q, 1e-6)
    return ((q - 1.0) / np.maximum(grad, 1e-6)).astype(np.float32)


def _spine_slice(sl: np.ndarray, xs: np.ndarray, ys: np.ndarray, lm: Landmarks, u: float,
                 zp: float, back: float) -> None:
    phase = (zp % _VERTEBRA_PITCH_MM) / _VERTEBRA_PITCH_MM
    y_vb, rx, ry = lm.vertebral_body(u)
    e = np.sqrt((xs / rx) ** 2 + ((ys - y_vb) / ry) ** 2)
    vb = e < 1.0
    if phase < _VERTEBRA_BODY_FRACTION:
        sl[vb] = Tissue.BONE_CORTEX
        endplate = phase < 0.06 or phase > _VERTEBRA_BODY_FRACTION - 0.06
        if not endplate:
            sl[vb & ((1.0 - e) * min(rx, ry) > 2.2)] = Tissue.VERTEBRAL_TRABECULAR
    else:
        sl[vb] = Tissue.DISC
    yc = y_vb + ry + 9.0
    r2 = xs**2 + (ys - yc) ** 2
    sl[(r2 < 13.0**2) & (ys > y_vb + ry - 3.0)] = Tissue.BONE_CORTEX
    sl[r2 < 8.0**2] = Tissue.SPINAL_CANAL
    if phase < 0.6:
        sl[(np.abs(xs) < 4.0) & (ys > yc + 12.0) & (ys < min(yc + 30.0, back - 6.0))] = (
            Tissue.BONE_CORTEX)
    if 0.15 < phase < 0.65:
        sl[(np.abs(xs) > 10.0) & (np.abs(xs) < 36.0) & (np.abs(ys - yc + 2.0) < 5.0)] = (
            Tissue.BONE_CORTEX
        )


def _build_heart(p: _Painter, lm: Landmarks, ctr: float) -> None:
    """Heart as a rotated ellipsoid with four chambers, epicardial fat, pericardium."""
    cx, cy = lm.center_xy
    u_h = 0.33
    e_l = _unit(np.array([0.65, -0.45, -0.45]))
    e2 = _unit(np.cross(e_l, np.array([0.0, 0.0, 1.0])))
    e3 = np.cross(e_l, e2)
    axes = np.vstack([e_l, e2, e3])
    unit_radii = np.array([1.0, 0.76, 0.68])
    half_w_unit = math.sqrt(float(np.sum((unit_radii * axes[:, 0]) ** 2)))
    scale = ctr * lm.max_thoracic_width() / 2.0 / half_w_unit
    radii = unit_radii * scale
    center = np.array([cx + 12.0, cy - 0.27 * float(lm.half_depth(u_h)), lm.z(u_h)])
    # An enlarged heart grows from its base (great vessels stay), towards the apex.
    nominal = 0.44 * lm.max_thoracic_width() / 2.0 / half_w_unit
    center = center + 0.8 * (scale - nominal) * e_l
    lm.heart_center, lm.heart_axes, lm.heart_radii = center, axes, radii
    eff, epi = lm.pericardial_effusion_mm, lm.epicardial_fat_mm
    res = ellipsoid_distance(p.grid, center, radii, axes, margin=epi + eff + 8.0)
    if res is None:
        return
    box, dist = res
    allowed = _SOFT_INSIDE
    p.put(box, dist < epi + eff + 6.0, Tissue.MEDIASTINAL_FAT, (Tissue.LUNG,))
    p.put(box, dist < epi + eff + 1.5, Tissue.PERICARDIUM, allowed + (Tissue.MEDIASTINAL_FAT,))
    if eff > 0:
        p.put(box, dist < epi + eff, Tissue.PERICARDIAL_EFFUSION, (Tissue.PERICARDIUM,))
    p.put(box, dist < epi, Tissue.MEDIASTINAL_FAT, (Tissue.PERICARDIUM,))
    p.put(box, dist < 0, Tissue.MYOCARDIUM, (Tissue.MEDIASTINAL_FAT,))
    zs, ys, xs = p.grid.coords(box)
    v = [xs - center[0], ys - center[1], zs - center[2]]
    loc = [(v[0] * axes[k][0] + v[1] * axes[k][1] + v[2] * axes[k][2]) / radii[k]
           for k in range(3)]
    chambers = {  # centre and radii in the heart's normalised frame (long, e2, e3)
        "lv": ((0.12, -0.22, 0.0), (0.58, 0.42, 0.55)),
        "rv": ((0.05, 0.5, 0.0), (0.5, 0.28, 0.55)),
        "la": ((-0.62, -0.25, 0.1), (0.28, 0.4, 0.45)),
        "ra": ((-0.52, 0.45, 0.0), (0.32, 0.33, 0.45)),
    }
    for c, r in chambers.values():
        inside = sum(((loc[k] - c[k]) / r[k]) ** 2 for k in range(3)) < 1.0
        p.put(box, inside & (dist < -1.5), Tissue.BLOOD, (Tissue.MYOCARDIUM,))
    # Coronary arteries in the epicardial fat (atrioventricular and interventricular grooves).
    off = 1.0 + 1.8 / float(np.min(radii))
    paths: dict[str, np.ndarray] = {}
    l_av = -0.42
    ring = math.sqrt(1.0 - l_av**2)

    def surf(lv: float, phi: float) -> np.ndarray:
        rr = math.sqrt(max(1.0 - lv**2, 0.0))
        local = np.array([lv, rr * math.cos(phi), rr * math.sin(phi)]) * off
        return center + (local * radii) @ axes

    phi_lad = -math.pi / 2.0
    paths["lm"] = np.array([surf(l_av, phi_lad + 0.9 * k / 4) for k in range(5)][::-1])
    paths["lad"] = np.array([surf(l_av + (0.95 - l_av) * t, phi_lad)
                             for t in np.linspace(0, 1, 16)])
    paths["lcx"] = np.array([surf(l_av, phi_lad - t * 2.2) for t in np.linspace(0, 1, 16)])
    paths["rca"] = np.array([surf(l_av, phi_lad + 0.9 + t * 2.6) for t in np.linspace(0, 1, 16)])
    del ring
    lm.coronary_paths = paths
    for name, path in paths.items():
        p.tube(path, 2.2 if name == "lm" else 1.7, Tissue.BLOOD, (Tissue.MEDIASTINAL_FAT,))


def _build_great_vessels(p: _Painter, lm: Landmarks) -> None:
    """Aorta (root, arch, descending), arch branches, SVC, pulmonary arteries and veins."""
    cx, cy = lm.center_xy
    c, axes, radii = lm.heart_center, lm.heart_axes, lm.heart_radii
    y_vb, _, ry = lm.vertebral_body(0.55)
    y_desc = cy + y_vb - ry - 8.0
    y_asc = cy - 0.25 * float(lm.half_depth(0.55))
    root = c - 0.55 * radii[0] * axes[0] - 0.25 * radii[1] * axes[1]
    ra, rd = lm.ascending_diameter_mm / 2.0, lm.descending_diameter_mm / 2.0
    z_arch, z_top = lm.z(0.64), lm.z(0.74)
    ctrl = np.array([
        root,
        [cx - 2.0, y_asc, lm.z(0.5)],
        [cx - 2.0, y_asc, z_arch],
        [cx + 10.0, y_asc + 0.15 * (y_desc - y_asc), z_top - 3.0],
        [cx + 26.0, 0.5 * (y_asc + y_desc), z_top],
        [cx + 24.0, y_desc, z_arch + 6.0],
        [cx + 22.0, y_desc, z_arch - 20.0],
        [cx + 18.0, y_desc + 2.0, lm.z(0.0)],
        [cx + 12.0, y_desc + 4.0, lm.z(-0.6)],
    ])
    if lm.right_arch:
        # Mirror arch and descending aorta to the right of the spine; it returns towards the
        # midline at the aortic hiatus.
        ctrl[1:, 0] = 2.0 * cx - ctrl[1:, 0]
        ctrl[-1, 0] = cx - 2.0
    path = _chaikin(ctrl, 3)
    seg: list[str] = []
    rad = np.empty(len(path))
    # Segment by position: ascending until the arch level, arch above, descending after.
    i_top = int(np.argmax(path[:, 2]))
    for i, pt in enumerate(path):
        if i <= i_top and pt[2] < z_arch:
            seg.append("ascending")
            rad[i] = ra
        elif pt[2] >= z_arch - 1.0 and (i <= i_top or pt[2] >= z_arch - 1.0):
            seg.append("arch")
            frac = min(1.0, max(0.0, abs(pt[0] - ctrl[1, 0]) / 26.0))
            rad[i] = ra + (rd - ra) * frac
        else:
            seg.append("descending")
            rad[i] = rd
    lm.aorta_path, lm.aorta_radius, lm.aorta_segment = path, rad, seg
    allowed = _SOFT_INSIDE + (Tissue.PERICARDIUM, Tissue.MYOCARDIUM, Tissue.PERICARDIAL_EFFUSION)
    p.tube(path, rad, Tissue.AORTA, allowed, margin_fat=4.0)
    top = lm.z(1.35)
    apex = path[i_top]
    for dx, r in ((-14.0, 6.5), (4.0, 4.5), (16.0, 5.0)):
        dx = -dx if lm.right_arch else dx
        start = apex + np.array([dx, 0.0, -2.0])
        branch = np.array([start, start + np.array([dx * 0.4, -3.0, 30.0]),
                           [cx + dx * 1.6, start[1] - 6.0, top]])
        p.tube(_chaikin(branch, 2), r, Tissue.BLOOD, _SOFT_INSIDE, margin_fat=3.0)
    # Superior vena cava into the right atrium.
    ra_pt = c + (-0.55 * radii[0]) * axes[0] + 0.5 * radii[1] * axes[1]
    svc = np.array([[cx - 30.0, y_asc + 6.0, top], [cx - 26.0, y_asc + 6.0, lm.z(0.62)], ra_pt])
    p.tube(_chaikin(svc, 2), 9.0, Tissue.SVC,
           _SOFT_INSIDE + (Tissue.PERICARDIUM, Tissue.PERICARDIAL_EFFUSION),
           margin_fat=3.0)
    # Left brachiocephalic vein: crosses in front of the arch branches into the SVC (the
    # route of contrast injected in the left arm).
    bcv = np.array([[cx + 48.0, y_asc - 2.0, lm.z(1.2)], [cx + 10.0, y_asc - 8.0, lm.z(1.05)],
                    [cx - 28.0, y_asc + 4.0, lm.z(0.98)]])
    p.tube(_chaikin(bcv, 2), 5.5, Tissue.SVC, _SOFT_INSIDE, margin_fat=2.0)
    # Inferior vena cava: from the right atrium down through the diaphragm, in the liver,
    # in front of and right of the spine; the portal vein lower in the liver hilum.
    y_vb0, _, ry0 = lm.vertebral_body(0.0)
    y_ivc = cy + y_vb0 - ry0 - 16.0
    ivc = np.array([ra_pt + np.array([0.0, 8.0, -12.0]), [cx - 24.0, y_ivc - 6.0, lm.z(0.02)],
                    [cx - 20.0, y_ivc, lm.z(-0.8)]])
    p.tube(_chaikin(ivc, 2), 11.0, Tissue.IVC,
           (Tissue.MEDIASTINAL_FAT, Tissue.SOFT_TISSUE, Tissue.LIVER, Tissue.MUSCLE,
            Tissue.PERICARDIUM, Tissue.PERICARDIAL_EFFUSION))
    b0 = float(lm.half_depth(0.0))
    portal = np.array([[cx - 4.0, cy + 0.12 * b0, lm.z(-0.55)],
                       [cx - 55.0, cy - 0.05 * b0, lm.z(-0.32)]])
    p.tube(portal, 7.0, Tissue.PORTAL_VEIN, (Tissue.LIVER, Tissue.SOFT_TISSUE))
    # Pulmonary trunk from the right ventricular outflow to the hila.
    a55 = float(lm.half_width(0.57))
    b55 = float(lm.half_depth(0.57))
    hilum_r = np.array([cx - 0.42 * a55, cy + 0.08 * b55, lm.z(0.57)])
    hilum_l = np.array([cx + 0.42 * a55, cy + 0.12 * b55, lm.z(0.6)])
    lm.hila = {"right": hilum_r, "left": hilum_l}
    rvot = c + 0.15 * radii[0] * axes[0] + 0.6 * radii[1] * axes[1] - 0.7 * radii[2] * axes[2]
    rvot = np.array([cx + 14.0, rvot[1], max(rvot[2], lm.z(0.45))])
    bif = np.array([cx + 12.0, cy + 0.02 * b55, lm.z(0.585)])
    allowed_pa = _SOFT_INSIDE + (Tissue.PERICARDIUM, Tissue.PERICARDIAL_EFFUSION)
    p.tube(_chaikin(np.array([rvot, rvot + [0, 8.0, 20.0], bif]), 2), 13.0,
           Tissue.PULMONARY_ARTERY, allowed_pa, margin_fat=3.0)
    for hil, r in ((hilum_r, 10.5), (hilum_l, 10.0)):
        mid = 0.5 * (bif + hil) + np.array([0.0, -6.0, 2.0])
        p.tube(_chaikin(np.array([bif, mid, hil]), 2), r, Tissue.PULMONARY_ARTERY, allowed_pa,
               margin_fat=3.0)
    # Pulmonary veins from the lower hila into the left atrium.
    la = c - 0.62 * radii[0] * axes[0] - 0.25 * radii[1] * axes[1]
    for sign in (-1.0, 1.0):
        lower = np.array([cx + sign * 0.36 * a55, cy + 0.22 * b55, lm.z(0.45)])
        lm.hila["vein_right" if sign < 0 else "vein_left"] = lower
        p.tube(np.array([lower, la]), 6.5, Tissue.BLOOD, allowed_pa, margin_fat=2.0)


def _build_airways_central(p: _Painter, lm: Landmarks) -> None:
    """Trachea and main bronchi (air with a soft-tissue wall) and the oesophagus."""
    cx, cy = lm.center_xy
    y_vb, _, ry = lm.vertebral_body(0.75)
    y_tr = cy + y_vb - ry - 26.0
    carina = np.array([cx - 1.0, y_tr - 4.0, lm.z(0.62)])
    lm.hila["carina"] = carina
    lm.hila["trachea_top"] = np.array([cx - 2.0, y_tr, lm.z(0.9)])
    top = np.array([cx - 2.0, y_tr, lm.z(1.5)])
    trachea = np.array([top, [cx - 2.0, y_tr, lm.z(0.9)], carina])
    allowed = _SOFT_INSIDE
    ends, bronchi = {}, []
    for side, sign, drop in (("right", -1.0, 0.07), ("left", 1.0, 0.04)):
        hil = lm.hila[side] + np.array([0.0, 14.0, 4.0])
        end = np.array([hil[0] - sign * 4.0, hil[1], lm.z(0.62 - drop - 0.04)])
        path = np.array([carina, 0.5 * (carina + end) + np.array([0, 0, 4.0]), end])
        bronchi.append(_chaikin(path, 2))
        ends[side] = end
    # Every wall first, then every lumen: one open air column from the trachea into
    # both bronchi, with the carina as the only ridge. Painting a bronchus's wall after
    # the tracheal lumen left a plug of wall in the trachea just above the carina.
    p.tube(trachea, 11.0, Tissue.AIRWAY_WALL, allowed, margin_fat=2.0)
    for path in bronchi:
        p.tube(path, 8.0, Tissue.AIRWAY_WALL, allowed, margin_fat=2.0)
    p.tube(trachea, 9.0, Tissue.AIRWAY_LUMEN, (Tissue.AIRWAY_WALL,))
    for path in bronchi:
        p.tube(path, 6.0, Tissue.AIRWAY_LUMEN, (Tissue.AIRWAY_WALL, Tissue.AIRWAY_LUMEN))
    lm.hila["bronchus_right"], lm.hila["bronchus_left"] = ends["right"], ends["left"]
    y_es = cy + y_vb - ry - 9.0
    oes = np.array([[cx + 2.0, y_es, lm.z(1.5)], [cx + 4.0, y_es, lm.z(0.5)],
                    [cx + 20.0, y_es - 10.0, lm.z(0.05)]])
    p.tube(_chaikin(oes, 2), 7.0, Tissue.ESOPHAGUS, _SOFT_INSIDE, margin_fat=2.0)


def _build_ribs(p: _Painter, lm: Landmarks) -> None:
    """Twelve pairs of ribs descending anteriorly, with costal cartilages to the sternum."""
    cx, cy = lm.center_xy
    allowed = (Tissue.MUSCLE, Tissue.FAT, Tissue.LUNG, Tissue.MEDIASTINAL_FAT,
               Tissue.SOFT_TISSUE, Tissue.LIVER, Tissue.SPLEEN, Tissue.STOMACH)
    z_apex = lm.z(1.0)
    for i in range(12):
        z_post = z_apex + 4.0 - i * _RIB_PITCH_MM
        drop = 70.0 + 3.0 * i
        if i < 7:
            bone_end, cart_end = 2.2, None
        elif i < 10:
            bone_end, cart_end = 2.2, 2.65
        else:
            bone_end, cart_end = 1.85, None
        for sign in (-1.0, 1.0):
            def point(theta: float, z_post: float = z_post, drop: float = drop,
                      sign: float = sign) -> np.ndarray:
                z = z_post - drop * (theta / math.pi) ** 1.3
                u = float(lm.u(z))
                a, b = float(lm.half_width(u)), float(lm.half_depth(u))
                return np.array([cx + sign * (a + 6.0) * math.sin(theta),
                                 cy + (b + 6.0) * math.cos(theta), z])

            bone = np.array([point(t) for t in np.linspace(0.3, bone_end, 14)])
            p.tube(bone, 5.0, Tissue.BONE_CORTEX, allowed)
            p.tube(bone, 2.8, Tissue.BONE_MARROW, (Tissue.BONE_CORTEX,))
            if cart_end is not None or i < 7:
                end = cart_end if cart_end is not None else None
                if end is None:
                    u = float(lm.u(z_post - drop))
                    a = float(lm.half_width(u))
                    end = math.pi - math.asin(min(1.0, 16.0 / (a + 6.0)))
                cart = np.array([point(t) for t in np.linspace(bone_end, end, 6)])
                p.tube(cart, 4.5, Tissue.CARTILAGE, allowed)


def station_center(lm: Landmarks, station: LymphStation) -> np.ndarray:
    """Where a lymph node station lies (LPS mm), from the airway and vessel landmarks."""
    car = lm.hila["carina"]
    top = lm.hila["trachea_top"]
    if station is LymphStation.SUBCARINAL:
        return car + np.array([0.0, 10.0, -16.0])
    if station is LymphStation.RIGHT_PARATRACHEAL:
        return 0.5 * (car + top) + np.array([-17.0, -4.0, -8.0])
    if station is LymphStation.LEFT_PARATRACHEAL:
        return 0.5 * (car + top) + np.array([15.0, -2.0, -14.0])
    if station is LymphStation.AORTOPULMONARY:
        return car + np.array([24.0, -18.0, 8.0])
    hil = lm.hila["right" if station is LymphStation.RIGHT_HILAR else "left"]
    sign = -1.0 if station is LymphStation.RIGHT_HILAR else 1.0
    return hil + np.array([sign * 4.0, 16.0, -8.0])


def paint_node(p: _Painter, center: np.ndarray, short_axis: float,
               allowed: tuple[Tissue, ...]) -> int:
    """An ovoid lymph node (long axis 1.5 x short, craniocaudal); returns voxels painted."""
    radii = np.array([short_axis / 2.0, short_axis / 2.0, 0.75 * short_axis])
    res = ellipsoid_distance(p.grid, center, radii, np.eye(3), margin=0.0)
    if res is None:
        return 0
    box, dist = res
    mask = (dist < 0) & member_mask(p.labels[box], allowed)
    p.labels[box][mask] = Tissue.LYMPH_NODE
    return int(mask.sum())


_NODE_ALLOWED = (Tissue.MEDIASTINAL_FAT, Tissue.LUNG, Tissue.SOFT_TISSUE)


def _build_lymph_nodes(p: _Painter, lm: Landmarks, rng: np.random.Generator) -> None:
    """Normal small nodes (short axis 4-7 mm) at the usual stations, as on any chest CT."""
    for station in LymphStation:
        short = float(rng.uniform(4.0, 7.0))
        paint_node(p, station_center(lm, station) + rng.normal(0.0, 2.0, 3), short,
                   _NODE_ALLOWED)


def _site_point(grid: Grid, lung: np.ndarray, center_x: float, site: LungSite) -> np.ndarray:
    """A lung voxel near a LungSite (bounding-box fractions on the level's slice)."""
    right = (grid.x < center_x)[None, None, :]
    mask = lung & (right if site.side is Side.RIGHT else ~right)
    ks = np.nonzero(mask.any(axis=(1, 2)))[0]
    if len(ks) == 0:
        return np.array([center_x, 0.0, float(grid.z[len(grid.z) // 2])])
    k = int(round(ks[0] + site.level * (ks[-1] - ks[0])))
    js, is_ = np.nonzero(mask[k])
    if len(js) == 0:
        k = int(ks[len(ks) // 2])
        js, is_ = np.nonzero(mask[k])
    jt = js.min() + site.ap * (js.max() - js.min())
    span = is_.max() - is_.min()
    it = (is_.max() - site.lateral * span) if site.side is Side.RIGHT else (
        is_.min() + site.lateral * span)
    n = int(np.argmin((js - jt) ** 2 + (is_ - it) ** 2))
    return grid.to_lps(k, float(js[n]), float(is_[n]))


def _draw_bronchi(grid: Grid, segs: list[Segment], wall: np.ndarray, lumen: np.ndarray,
                  regions: list[tuple[np.ndarray, float, float]], wall_factor: float,
                  visible_r: float, counts: list[int]) -> None:
    """Bronchi: normal ones to generation 6; inside a bronchiectasis region all, dilated."""
    for sg in segs:
        mid = 0.5 * (sg.p0 + sg.p1)
        dil = 1.0
        for i, (c, radius, factor) in enumerate(regions):
            if np.linalg.norm(mid - c) <= radius:
                dil = max(dil, factor)
                counts[i] += 1
        if dil == 1.0 and (sg.generation > 6 or sg.r0 < 0.7 * visible_r):
            continue
        r0 = sg.r0 * dil
        r1 = r0 if dil > 1.0 else sg.r1
        w0 = (0.35 * sg.r0 + 0.4) * wall_factor * (1.6 if dil > 1.0 else 1.0)
        w1 = (0.35 * sg.r1 + 0.4) * wall_factor * (1.6 if dil > 1.0 else 1.0)
        for out, ra, rb in ((wall, r0 + w0, r1 + w1), (lumen, r0, r1)):
            res = capsule(grid, sg.p0, sg.p1, ra, rb)
            if res is None:
                continue
            box, frac = res
            np.maximum(out[box], (frac * 255.0).astype(np.uint8), out=out[box])


def _build_lung_trees(grid: Grid, labels: np.ndarray, lm: Landmarks,
                      rng: np.random.Generator, options: AnatomyOptions) -> None:
    """Pulmonary arteries, veins and bronchi in each lung, as partial-volume fractions."""
    lm.lung_region = labels == Tissue.LUNG
    vessel = np.zeros(labels.shape, dtype=np.uint8)
    wall = np.zeros(labels.shape, dtype=np.uint8)
    lumen = np.zeros(labels.shape, dtype=np.uint8)
    voxel = grid.blur_mm
    stride = max(1, int(round(4.0 / max(min(grid.spacing), 0.5))))
    sub = labels[::stride, ::stride, ::stride] == Tissue.LUNG
    ks, js, is_ = np.nonzero(sub)
    if len(ks) == 0:
        lm.vessel_fraction, lm.airway_wall_fraction, lm.airway_lumen_fraction = (
            vessel, wall, lumen)
        return
    pts_all = np.stack([
        grid.origin[0] + is_ * stride * grid.spacing[0],
        grid.origin[1] + js * stride * grid.spacing[1],
        grid.origin[2] + ks * stride * grid.spacing[2],
    ], axis=1)
    cx = lm.center_xy[0]
    regions = [(_site_point(grid, lm.lung_region, cx, b.site),
                b.radius_mm / options.length_scale, b.dilation)
               for b in options.bronchiectasis]
    counts = [0] * len(regions)
    n_pts = int(np.clip(2400.0 / max(voxel, 0.5) ** 1.5, 250, 3000))
    min_r = max(0.45, 0.22 * voxel)
    for side in (Side.RIGHT, Side.LEFT):
        sel = pts_all[:, 0] < cx if side is Side.RIGHT else pts_all[:, 0] >= cx
        pts = pts_all[sel]
        if len(pts) < 10:
            continue
        jit = stride * np.array(grid.spacing) / 2.0
        trees: list[tuple[np.ndarray, np.ndarray, float, str]] = []
        for kind, root_key, r0 in (("artery", side.value, 6.0),
                                   ("vein", f"vein_{side.value}", 5.5),
                                   ("bronchus", f"bronchus_{side.value}", 5.5)):
            n = n_pts if kind != "bronchus" else n_pts // 6
            choice = pts[rng.choice(len(pts), size=min(n, len(pts)), replace=False)]
            choice = choice + rng.uniform(-1.0, 1.0, choice.shape) * jit
            trees.append((lm.hila[root_key], choice, r0, kind))
        for root, cloud, r0, kind in trees:
            if kind == "bronchus":
                segs = grow_tree(root, cloud, r0, rng, min_radius=0.6,
                                 min_points=2, max_generation=9, step=0.5)
                _draw_bronchi(grid, segs, wall, lumen, regions,
                              options.bronchial_wall_factor, max(1.4, 0.45 * voxel), counts)
            else:
                segs = grow_tree(root, cloud, r0, rng, min_radius=min_r)
                _raster_segments(grid, segs, vessel, scale=1.0, add=0.0)
    lm.vessel_fraction, lm.airway_wall_fraction, lm.airway_lumen_fraction = vessel, wall, lumen
    lm.notes["bronchiectasis"] = [
        {"center_lps_mm": [round(float(v), 2) for v in c], "radius_mm": r, "dilation": f,
         "dilated_segments": n} for (c, r, f), n in zip(regions, counts, strict=True)]
    lung = lm.lung_region
    labels[lung & (wall >= 128)] = Tissue.AIRWAY_WALL
    labels[lung & (vessel >= 128)] = Tissue.LUNG_VESSEL
    labels[lung & (lumen >= 128)] = Tissue.AIRWAY_LUMEN
    labels[(labels == Tissue.AIRWAY_WALL) & (lumen >= 128) & (wall >= 128)] = Tissue.AIRWAY_LUMEN


def _raster_segments(grid: Grid, segs: list[Segment], out: np.ndarray, scale: float,
                     add: float) -> None:
    for s in segs:
        res = capsule(grid, s.p0, s.p1, s.r0 * scale + add, s.r1 * scale + add)
        if res is None:
            continue
        box, frac = res
        np.maximum(out[box], (frac * 255.0).astype(np.uint8), out=out[box])

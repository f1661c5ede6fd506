"""What the image covers: the reconstructed field, where it cuts the body and the lungs.

Real studies are often reconstructed with a targeted field of view (a chest
CTA centred on the mediastinum cuts both lungs), an obese patient's skin
touches the reconstruction circle, and a scan may start below the apices or
stop above the bases. Two facts matter downstream:

- *Where the image ends*: the outer ring of the matrix, and the pixels outside
  the reconstruction circle. Scanners fill those with a padding value (often
  -2000 or -3024 HU), which the loader turns into air (``series_selector``
  sets padding and everything below -1024 HU to -1024). A pixel that holds the
  volume's minimum on *every* slice was never measured: real air carries
  quantum noise and varies from slice to slice.
- *What touches it*: lung or body reaching the image end is cut. A measure of
  the whole organ (lung volume, thoracic width, cardiothoracic ratio) is then
  not assessable and is reported as such (``gate_measures``), never scored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage as ndi

from inference.analyzer.types import Anatomy, Measure, WorkGrid
from series_selector.anatomy import circle_complement
from series_selector.types import HUVolume

logger = logging.getLogger(__name__)

PADDING_MAX_HU = -1000.0
"""A constant minimum at or below this is padding/clipping (air is -1000 HU)."""
MIN_CUT_CM2 = 1.0
"""Least area of an organ lying on the image end for the organ to count as cut.

If the organ does not reach the end of the image it cannot lie on it at all;
1 cm2 (25 voxels of 2 x 2 mm) only keeps a stray partial-volume voxel from
counting."""
SIDES = ("right lateral", "left lateral", "anterior", "posterior")


@dataclass(frozen=True, slots=True)
class Coverage:
    """Where the image cuts the lungs and the body (sides in patient terms)."""

    lungs_cut: tuple[str, ...] = ()  # subset of SIDES, then "apices" / "bases"
    body_cut: tuple[str, ...] = ()  # subset of SIDES
    notes: tuple[str, ...] = ()

    @property
    def lungs_cut_in_plane(self) -> bool:
        return any(s in SIDES for s in self.lungs_cut)

    @property
    def lungs_cut_laterally(self) -> bool:
        return any(s.endswith("lateral") for s in self.lungs_cut)

    @property
    def lungs_complete(self) -> bool:
        return not self.lungs_cut

    @property
    def body_truncated(self) -> bool:
        return bool(self.body_cut)


def outside_reconstruction(volume: HUVolume) -> np.ndarray:
    """2-D mask [y, x] of pixels outside the reconstructed field on every slice.

    A pixel that equals the volume's minimum (<= -1000 HU) on all slices was
    padded or clipped, never measured. Returns all False when there is no such
    minimum (no padding, or an image without air at all).
    """
    vox = volume.voxels
    vmin = float(vox.min())
    out = np.zeros(vox.shape[1:], dtype=bool)
    if vmin > PADDING_MAX_HU or vox.shape[0] < 2:
        return out
    out[:] = True
    for k in range(vox.shape[0]):
        out &= vox[k] == vmin
    return circle_complement(out)


def image_edge(grid: WorkGrid) -> np.ndarray:
    """2-D mask [y, x] of work-grid pixels at the end of the image.

    The outer ring of the matrix and any work pixel at least partly outside
    the reconstruction circle, grown by one pixel so that tissue ending there
    (blurred by the block average) lies on it.
    """
    fz, fy, fx = grid.factors
    _, ny, nx = grid.shape
    outside = outside_reconstruction(grid.source)
    py, px = ny * fy - outside.shape[0], nx * fx - outside.shape[1]
    if py or px:
        outside = np.pad(outside, ((0, py), (0, px)), mode="edge")
    blocks = outside.reshape(ny, fy, nx, fx).any(axis=(1, 3))
    edge = np.zeros((ny, nx), dtype=bool)
    edge[0, :] = edge[-1, :] = edge[:, 0] = edge[:, -1] = True
    if blocks.any():
        edge |= ndi.binary_dilation(blocks, iterations=1)
    return edge


def _contact_by_side(mask: np.ndarray, edge: np.ndarray, grid: WorkGrid,
                     anatomy: Anatomy) -> dict[str, float]:
    """Area (cm2) of ``mask`` lying on the image edge, per patient side."""
    dz, dy, dx = grid.spacing_zyx
    on_edge = (mask & edge[None]).sum(axis=0)  # per edge pixel: slices where it touches
    ys, xs = np.nonzero(on_edge)
    out = dict.fromkeys(SIDES, 0.0)
    if ys.size == 0:
        return out
    _, ny, nx = mask.shape
    vy, vx = (ys - (ny - 1) / 2.0) * dy, (xs - (nx - 1) / 2.0) * dx
    area = on_edge[ys, xs] * dz * (dy + dx) / 2.0 / 100.0
    lateral = np.abs(vx) >= np.abs(vy)
    left = np.sign(vx) == anatomy.left_sign
    anterior = np.sign(vy) == anatomy.anterior_sign
    out["left lateral"] = float(area[lateral & left].sum())
    out["right lateral"] = float(area[lateral & ~left].sum())
    out["anterior"] = float(area[~lateral & anterior].sum())
    out["posterior"] = float(area[~lateral & ~anterior].sum())
    return out


def assess_coverage(grid: WorkGrid, anatomy: Anatomy, edge: np.ndarray | None = None
                    ) -> Coverage:
    """Which sides of the lungs and the body the image cuts, and apex/base coverage."""
    if edge is None:
        edge = image_edge(grid)
    lungs = anatomy.lungs
    lung_cut = [s for s, a in _contact_by_side(lungs, edge, grid, anatomy).items()
                if a >= MIN_CUT_CM2]
    body_cut = [s for s, a in _contact_by_side(anatomy.body, edge, grid, anatomy).items()
                if a >= MIN_CUT_CM2]
    dz, dy, dx = grid.spacing_zyx
    area = lungs.sum(axis=(1, 2)) * dy * dx / 100.0
    top, bottom = (area[-1], area[0]) if anatomy.cranial_sign > 0 else (area[0], area[-1])
    if top >= MIN_CUT_CM2:
        lung_cut.append("apices")
    if bottom >= MIN_CUT_CM2:
        lung_cut.append("bases")
    notes: list[str] = []
    lateral = [s.split()[0] for s in lung_cut if s.endswith("lateral")]
    if lateral:
        notes.append(f"lungs truncated laterally ({', '.join(lateral)}) by the image border")
    ap = [s for s in lung_cut if s in ("anterior", "posterior")]
    if ap:
        notes.append(f"lungs truncated {' and '.join(ap)}ly by the image border")
    if "apices" in lung_cut:
        notes.append("lung apices not covered (lung on the first slice)")
    if "bases" in lung_cut:
        notes.append("lung bases not covered (lung on the last slice)")
    if body_cut and not (lateral or ap):
        notes.append(f"body outline cut by the image border ({', '.join(body_cut)}); "
                     "lungs fully in the field")
    elif body_cut:
        notes.append(f"body outline cut by the image border ({', '.join(body_cut)}): "
                     "targeted field of view or patient larger than the field")
    logger.info("coverage: lungs cut %s, body cut %s", lung_cut or "nowhere",
                body_cut or "nowhere")
    return Coverage(tuple(lung_cut), tuple(body_cut), tuple(notes))


def touches_edge(mask: np.ndarray, grid: WorkGrid, edge: np.ndarray | None = None) -> bool:
    """Whether ``mask`` lies on the image edge (in plane) over at least ``MIN_CUT_CM2``."""
    if edge is None:
        edge = image_edge(grid)
    dz, dy, dx = grid.spacing_zyx
    return float((mask & edge[None]).sum()) * dz * (dy + dx) / 2.0 / 100.0 >= MIN_CUT_CM2


# Measures of a whole organ, and the coverage each needs: a function of the
# Coverage that returns why the measure is not assessable, or "" when it is.
Requirement = Callable[[Coverage], str]


def _whole_lungs(c: Coverage) -> str:
    if c.lungs_complete:
        return ""
    return "not assessed: lungs not wholly in the image (cut " + ", ".join(c.lungs_cut) + ")"


def _chest_width(c: Coverage) -> str:
    # The inner thoracic width runs rib to rib along the lungs: whole when the lungs
    # are not cut laterally (shoulders or arms cut at other levels do not matter).
    if not c.lungs_cut_laterally:
        return ""
    return ("not assessed: the thoracic width is cut by the image border "
            "(targeted field of view)")


REQUIREMENTS: dict[str, Requirement] = {
    "lung_volume": _whole_lungs,
    "lung_volume_left": _whole_lungs,
    "lung_volume_right": _whole_lungs,
    "thoracic_width": _chest_width,
    "cardiothoracic_ratio": _chest_width,
}
"""Measure name -> coverage it needs. NOTE(A1->A2): add the heart/aorta/bone
measures that need an organ wholly in the image here (or gate them where they
are measured, with ``touches_edge``)."""


def gate_measures(measures: dict[str, Measure], coverage: Coverage) -> dict[str, Measure]:
    """Measures whose organ is not wholly in the image become not assessed (value None)."""
    out = dict(measures)
    for name, need in REQUIREMENTS.items():
        m = out.get(name)
        if m is None or m.value is None:
            continue
        why = need(coverage)
        if why:
            out[name] = replace(m, value=None, evidence=(), note=why)
    return out

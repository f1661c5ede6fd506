"""Where a lesion lies on its source image: 2D graphic data for SCOORD (PS3.3 C.18.6).

SCOORD coordinates are (column, row) in pixels of the referenced image, with
(0, 0) the top-left corner of the top-left pixel, so the centre of pixel
(c, r) is (c + 0.5, r + 0.5). Points are projected from LPS through the
source image's own Image Position / Orientation / Pixel Spacing when its
header is at hand, so a volume that was re-oriented on loading still lands on
the right pixels; without a header the volume's in-plane indices are used.

Graphic type by what is known (TID 1410/1411 Image Region):
- a mask on the key slice: a closed POLYLINE outline (simplified to half a pixel);
- no mask, a diameter of at least ``POINT_MAX_MM``: a CIRCLE of that diameter;
- otherwise a POINT at the centre.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from skimage import measure

from inference.types import Evidence
from series_selector.types import HUVolume

POINT_MAX_MM = 6.0
"""Below this diameter a lesion is marked by a point: a 6 mm circle is a few pixels
wide on a reading screen and hides the lesion it marks."""

_TOLERANCE_PX = 0.5  # polygon simplification: below a pixel, invisible to the reader


@dataclass(frozen=True, slots=True)
class Region2D:
    """A 2D graphic on one source image, ready for a SCOORD content item."""

    graphic_type: str  # "POINT", "POLYLINE" or "CIRCLE"
    points: np.ndarray  # (n, 2) column, row
    sop_instance_uid: str
    frame_number: int | None


def _plane(header: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float] | None:
    try:
        origin = np.asarray([float(v) for v in header.ImagePositionPatient])
        iop = [float(v) for v in header.ImageOrientationPatient]
        row_mm, col_mm = (float(v) for v in header.PixelSpacing)
    except (AttributeError, TypeError, ValueError):
        return None
    return origin, np.asarray(iop[:3]), np.asarray(iop[3:]), col_mm, row_mm


def to_pixels(points_lps: np.ndarray, volume: HUVolume, z: int,
              header: Dataset | None) -> np.ndarray:
    """(column, row) pixel positions on slice ``z`` of LPS points (n, 3)."""
    plane = _plane(header) if header is not None else None
    if plane is not None:
        origin, row_dir, col_dir, col_mm, row_mm = plane
        rel = points_lps - origin
        # ImageOrientationPatient: first triplet = direction of increasing column index
        cols = rel @ row_dir / col_mm
        rows = rel @ col_dir / row_mm
        return np.stack([cols + 0.5, rows + 0.5], axis=1)
    d = np.asarray(volume.direction, dtype=float).reshape(3, 3)
    ijk = np.linalg.solve(d, (points_lps - np.asarray(volume.origin)).T).T
    ijk = ijk / np.asarray(volume.spacing, dtype=float)
    return np.stack([ijk[:, 0] + 0.5, ijk[:, 1] + 0.5], axis=1)


def mask_on_key_slice(evidence: Evidence) -> tuple[np.ndarray, int, int] | None:
    """The evidence mask on its key slice (cropped to the box) and the box's row/column
    origin; None without a mask or when the key slice is outside the box."""
    if evidence.mask is None or evidence.bbox is None:
        return None
    z0, y0, x0, z1, _, _ = evidence.bbox
    if not z0 <= evidence.slice_index < z1:
        return None
    return evidence.mask[evidence.slice_index - z0], y0, x0


def _outline(evidence: Evidence) -> np.ndarray | None:
    """Volume (z, y, x) indices of the mask's largest outline on the key slice, closed."""
    cropped = mask_on_key_slice(evidence)
    if cropped is None:
        return None
    mask, y0, x0 = cropped
    z = evidence.slice_index
    plane = np.pad(mask.astype(float), 1)
    contours = measure.find_contours(plane, 0.5)
    if not contours:
        return None
    longest = max(contours, key=len)
    simple = measure.approximate_polygon(longest, tolerance=_TOLERANCE_PX)
    if len(simple) < 4:
        return None
    yx = simple - 1.0 + np.asarray([y0, x0])
    out = np.column_stack([np.full(len(yx), float(z)), yx])
    if not np.allclose(out[0], out[-1]):
        out = np.vstack([out, out[:1]])
    return out


def lesion_region(volume: HUVolume, evidence: Evidence,
                  headers_by_uid: dict[str, Dataset]) -> Region2D | None:
    """The 2D region of one piece of evidence on its key slice (None: no source image)."""
    z = evidence.slice_index
    if not volume.slice_sop_instance_uids or not 0 <= z < volume.shape[0]:
        return None
    sop = volume.slice_sop_instance_uids[z]
    frame = volume.slice_frame_numbers[z] if volume.slice_frame_numbers else None
    header = headers_by_uid.get(sop) if frame is None else None  # multi-frame: volume axes
    outline = _outline(evidence)
    if outline is not None:
        lps = np.asarray([volume.index_to_lps(*p) for p in outline])
        return Region2D("POLYLINE", to_pixels(lps, volume, z, header), sop, frame)
    # the centre projected onto the key slice's plane (the centroid may lie between slices)
    centre = np.asarray([evidence.center_lps], dtype=float)
    pix = to_pixels(centre, volume, z, header)
    if evidence.diameter_mm is not None and evidence.diameter_mm >= POINT_MAX_MM:
        radius_px = evidence.diameter_mm / 2.0 / float(volume.spacing[0])
        edge = pix + np.asarray([[radius_px, 0.0]])
        return Region2D("CIRCLE", np.vstack([pix, edge]), sop, frame)
    return Region2D("POINT", pix, sop, frame)


def headers_by_sop(source_datasets: Sequence[Dataset]) -> dict[str, Dataset]:
    """Source headers by SOP Instance UID (to find a key slice's geometry)."""
    return {str(ds.SOPInstanceUID): ds for ds in source_datasets if "SOPInstanceUID" in ds}

"""Lesion truths from readers' marks: centre, extent, diameter and consensus count.

- Pixel marks go to patient space with each slice's own header geometry
  (ImagePositionPatient, ImageOrientationPatient, PixelSpacing; PS3.3 C.7.6.2),
  looked up by the SOPInstanceUID the mark names, so a truth does not depend
  on how a volume was later resampled.
- A reader's diameter is the longest distance between two points of one of
  that reader's outlines, over the slices (the longest axial diameter on the
  slice of largest extent: Fleischner 2017, Bankier et al., Radiology
  2017;285:584; pylidc's ``Annotation.diameter`` for LIDC). The lesion's
  diameter is the readers' mean.
- Readers' nodules are one lesion when their centres lie closer than the sum
  of their radii (the LUNA16 merge rule, Setio et al., Med Image Anal
  2017;42:1); the consensus count is how many different readers are merged.
- Box annotations (Lung-PET-CT-Dx) have no outline: the diameter is the
  larger side of the largest box (for a tight box a lower bound of the longest
  diameter; these boxes are drawn with a margin, so it reads high and is not
  used for diameter errors); boxes on neighbouring slices that overlap are one
  lesion.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from evaluation.errors import AnnotationError
from evaluation.types import BoxMark, LesionTruth, PointMark, ReaderNodule, SliceRegion
from series_selector.types import DicomIndex

Point3 = tuple[float, float, float]


@dataclass(frozen=True, slots=True)
class SliceGeometry:
    """Header geometry of one slice: pixel (column, row) to LPS (mm)."""

    position: np.ndarray  # ImagePositionPatient
    row_dir: np.ndarray  # direction of increasing column index
    col_dir: np.ndarray  # direction of increasing row index
    spacing: tuple[float, float]  # PixelSpacing: (between rows, between columns)

    def to_lps(self, columns: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """LPS points (n, 3) of pixel centres (column, row)."""
        c = np.asarray(columns, dtype=float)[:, None] * self.spacing[1]
        r = np.asarray(rows, dtype=float)[:, None] * self.spacing[0]
        return self.position[None, :] + c * self.row_dir[None, :] + r * self.col_dir[None, :]


def slice_geometries(index: DicomIndex) -> dict[str, SliceGeometry]:
    """SOPInstanceUID -> geometry for every single-frame image with full geometry."""
    out: dict[str, SliceGeometry] = {}
    for h in index.instances:
        if h.image_position is None or h.image_orientation is None or h.pixel_spacing is None:
            continue
        o = np.asarray(h.image_orientation, dtype=float)
        out[h.sop_instance_uid] = SliceGeometry(
            np.asarray(h.image_position, dtype=float), o[:3], o[3:],
            (float(h.pixel_spacing[0]), float(h.pixel_spacing[1])))
    return out


def slice_spacing(geoms: dict[str, SliceGeometry]) -> float:
    """Median distance between neighbouring slice positions along z (mm)."""
    zs = np.unique(np.round([g.position[2] for g in geoms.values()], 3))
    return float(np.median(np.diff(zs))) if zs.size > 1 else 1.0


def _geom(geoms: dict[str, SliceGeometry], uid: str, what: str) -> SliceGeometry:
    g = geoms.get(uid)
    if g is None:
        raise AnnotationError(f"{what} names slice {uid}, which is not in the series")
    return g


def _area_centroid(xy: np.ndarray) -> tuple[float, np.ndarray]:
    """Area and centroid of a closed polygon (shoelace); tiny ones: mean."""
    if len(xy) < 3:
        return 0.0, xy.mean(axis=0)
    x, y = xy[:, 0], xy[:, 1]
    xs, ys = np.roll(x, -1), np.roll(y, -1)
    cross = x * ys - xs * y
    a = cross.sum() / 2.0
    if abs(a) < 1e-6:
        return 0.0, xy.mean(axis=0)
    cx = ((x + xs) * cross).sum() / (6.0 * a)
    cy = ((y + ys) * cross).sum() / (6.0 * a)
    return abs(float(a)), np.array([cx, cy])


def _longest_chord(xy: np.ndarray) -> float:
    if len(xy) < 2:
        return 0.0
    d = xy[:, None, :] - xy[None, :, :]
    return float(np.sqrt((d ** 2).sum(axis=-1)).max())


@dataclass(frozen=True, slots=True)
class _ReaderLesion:
    reader: str
    centre: np.ndarray
    diameter: float
    regions: tuple[SliceRegion, ...]
    lo: np.ndarray
    hi: np.ndarray
    malignancy: int | None
    texture: int | None


def _reader_lesion(n: ReaderNodule, geoms: dict[str, SliceGeometry]) -> _ReaderLesion:
    weighted = np.zeros(3)
    total = 0.0
    diameter = 0.0
    regions: list[SliceRegion] = []
    all_pts: list[np.ndarray] = []
    for o in n.outlines:
        g = _geom(geoms, o.sop_uid, f"reader {n.reader} nodule {n.nodule_id}")
        cols, rows = np.asarray(o.points, dtype=float).T
        pts = g.to_lps(cols, rows)
        all_pts.append(pts)
        area, c2 = _area_centroid(pts[:, :2])
        z = float(pts[:, 2].mean())
        sign = 1.0 if o.inclusion else -1.0
        w = sign * max(area, 1e-3)
        weighted += w * np.array([c2[0], c2[1], z])
        total += w
        if o.inclusion:
            diameter = max(diameter, _longest_chord(pts[:, :2]))
            regions.append(SliceRegion(z, (tuple((float(a), float(b)) for a, b in pts[:, :2]),)))
    pts_all = np.concatenate(all_pts)
    centre = weighted / total if total > 0 else pts_all.mean(axis=0)
    return _ReaderLesion(n.reader, centre, diameter, tuple(regions), pts_all.min(axis=0),
                         pts_all.max(axis=0), n.characteristic("malignancy"),
                         n.characteristic("texture"))


def _groups(n: int, linked: Callable[[int, int], bool]) -> list[list[int]]:
    """Single-linkage groups of ``n`` items under the pairwise rule ``linked``."""
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            if linked(i, j):
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


def _clusters(items: list[_ReaderLesion]) -> list[list[_ReaderLesion]]:
    """The LUNA16 rule: readers' nodules whose centres are closer than their radii's sum."""
    def linked(i: int, j: int) -> bool:
        d = float(np.linalg.norm(items[i].centre - items[j].centre))
        return d < (items[i].diameter + items[j].diameter) / 2.0

    return [[items[i] for i in g] for g in _groups(len(items), linked)]


def _merge_regions(regions: Iterable[SliceRegion]) -> tuple[SliceRegion, ...]:
    by_z: dict[float, list[tuple[tuple[float, float], ...]]] = {}
    for r in regions:
        by_z.setdefault(round(r.z_mm, 2), []).extend(r.polygons)
    return tuple(SliceRegion(z, tuple(p)) for z, p in sorted(by_z.items()))


def lidc_truths(nodules: Iterable[ReaderNodule], geoms: dict[str, SliceGeometry],
                prefix: str = "lidc") -> tuple[LesionTruth, ...]:
    """The readers' nodules merged into lesions, largest consensus first."""
    items = [_reader_lesion(n, geoms) for n in nodules]
    spacing = slice_spacing(geoms)
    out = []
    for group in _clusters(items):
        readers = sorted({g.reader for g in group})
        centre = np.mean([g.centre for g in group], axis=0)
        mal = [g.malignancy for g in group if g.malignancy is not None]
        tex = [g.texture for g in group if g.texture is not None]
        # A reader who outlined the lesion in two pieces counts once, with the larger.
        per_reader = [max(g.diameter for g in group if g.reader == r) for r in readers]
        out.append(LesionTruth(
            lesion_id="", source="lidc",
            centre_lps=_p3(centre),
            extent_min_lps=_p3(np.min([g.lo for g in group], axis=0)),
            extent_max_lps=_p3(np.max([g.hi for g in group], axis=0)),
            diameter_mm=float(np.mean(per_reader)),
            reader_diameters_mm=tuple(float(d) for d in per_reader),
            n_readers=len(readers),
            regions=_merge_regions(r for g in group for r in g.regions),
            slice_spacing_mm=spacing,
            malignancy=float(np.mean(mal)) if mal else None,
            texture=float(np.mean(tex)) if tex else None))
    out.sort(key=lambda t: (-t.n_readers, -t.diameter_mm, t.centre_lps))
    return tuple(_with_id(t, f"{prefix}-{i + 1}") for i, t in enumerate(out))


def point_marks_lps(points: Iterable[PointMark], geoms: dict[str, SliceGeometry]
                    ) -> tuple[Point3, ...]:
    """LPS positions of single-point marks (small nodules, non-nodules)."""
    out = []
    for p in points:
        g = _geom(geoms, p.sop_uid, f"{p.kind} {p.mark_id}")
        out.append(_p3(g.to_lps(np.array([p.column]), np.array([p.row]))[0]))
    return tuple(out)


def box_truths(boxes: Iterable[BoxMark], geoms: dict[str, SliceGeometry],
               prefix: str = "box") -> tuple[LesionTruth, ...]:
    """Box annotations grouped into lesions (overlapping boxes on neighbouring slices)."""
    spacing = slice_spacing(geoms)
    rects = []
    for b in boxes:
        g = _geom(geoms, b.sop_uid, f"box annotation {b.sop_uid}")
        corners = g.to_lps(np.array([b.xmin, b.xmax, b.xmax, b.xmin], dtype=float),
                           np.array([b.ymin, b.ymin, b.ymax, b.ymax], dtype=float))
        rects.append((b, corners))
    def linked(i: int, j: int) -> bool:
        a, b = rects[i][1], rects[j][1]
        near = abs(a[0, 2] - b[0, 2]) <= 1.5 * spacing
        overlap = (a[:, 0].min() <= b[:, 0].max() and b[:, 0].min() <= a[:, 0].max()
                   and a[:, 1].min() <= b[:, 1].max() and b[:, 1].min() <= a[:, 1].max())
        return bool(near and overlap and rects[i][0].label == rects[j][0].label)

    groups = [[rects[i] for i in g] for g in _groups(len(rects), linked)]
    out = []
    for group in groups:
        pts = np.concatenate([c for _, c in group])
        areas = np.array([np.ptp(c[:, 0]) * np.ptp(c[:, 1]) for _, c in group]) + 1e-6
        centres = np.array([c.mean(axis=0) for _, c in group])
        side = max(max(np.ptp(c[:, 0]), np.ptp(c[:, 1])) for _, c in group)
        regions = _merge_regions(
            SliceRegion(float(c[0, 2]), (tuple((float(x), float(y)) for x, y in c[:, :2]),))
            for _, c in group)
        out.append(LesionTruth(
            lesion_id="", source="voc",
            centre_lps=_p3((centres * areas[:, None]).sum(axis=0) / areas.sum()),
            extent_min_lps=_p3(pts.min(axis=0)), extent_max_lps=_p3(pts.max(axis=0)),
            diameter_mm=float(side), reader_diameters_mm=(float(side),), n_readers=1,
            regions=regions, slice_spacing_mm=spacing))
    out.sort(key=lambda t: (-t.diameter_mm, t.centre_lps))
    return tuple(_with_id(t, f"{prefix}-{i + 1}") for i, t in enumerate(out))


def _p3(v: np.ndarray) -> Point3:
    return (float(v[0]), float(v[1]), float(v[2]))


def _with_id(t: LesionTruth, lesion_id: str) -> LesionTruth:
    return dataclasses.replace(t, lesion_id=lesion_id)

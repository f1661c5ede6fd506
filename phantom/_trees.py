"""Branching trees (pulmonary arteries, veins, bronchi) that fill a lung.

A territory-splitting construction: each branch owns a cloud of points sampled
inside the lung, grows towards their centroid, then splits the cloud in two
across its principal axis; radii follow Murray's law (r^3 proportional to the
territory served). This gives space-filling trees that thin towards the pleura,
which is what vessel-suppression and airway segmentation expect to see.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Segment:
    """One tube of a tree: from p0 (radius r0) to p1 (radius r1), at a generation."""

    p0: np.ndarray
    p1: np.ndarray
    r0: float
    r1: float
    generation: int


def grow_tree(
    root: np.ndarray,
    points: np.ndarray,
    root_radius: float,
    rng: np.random.Generator,
    *,
    min_radius: float,
    min_points: int = 3,
    max_generation: int = 30,
    step: float = 0.55,
) -> list[Segment]:
    """Segments of a tree from ``root`` serving ``points`` (N x 3, LPS mm)."""
    segments: list[Segment] = []
    n_root = max(len(points), 1)
    stack: list[tuple[np.ndarray, np.ndarray, float, int]] = [(root, points, root_radius, 0)]
    while stack:
        start, pts, radius, gen = stack.pop()
        if len(pts) == 0:
            continue
        centroid = pts.mean(axis=0)
        leaf = len(pts) <= min_points or radius <= min_radius or gen >= max_generation
        if leaf:
            # Terminal branches taper away before the pleura, as on CT.
            tip = start + (centroid - start) * 0.85
            segments.append(Segment(start, tip, radius, radius * 0.3, gen))
            continue
        jitter = rng.normal(0.0, 0.04)
        end = start + (centroid - start) * (step + jitter)
        centred = pts - centroid
        # Principal axis of the territory: split it across that axis.
        cov = centred.T @ centred
        _, vecs = np.linalg.eigh(cov)
        axis = vecs[:, -1]
        side = centred @ axis >= 0
        halves = [pts[side], pts[~side]]
        if min(len(halves[0]), len(halves[1])) == 0:
            segments.append(Segment(start, centroid, radius, radius * 0.7, gen))
            continue
        segments.append(Segment(start, end, radius, radius * 0.97, gen))
        for half in halves:
            r_child = root_radius * (len(half) / n_root) ** (1.0 / 3.0)
            r_child = min(r_child, radius * 0.95)
            stack.append((end, half, r_child, gen + 1))
    return segments

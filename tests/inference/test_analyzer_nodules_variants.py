"""Lung nodule / mass probabilities that hold across reconstructions of one case (issue 12).

Two causes of instability on the real variants: a hard 30 mm cut between nodule and mass
(a mass measured 30.2 mm on one reconstruction and 29.8 mm on another went from p 0.87 to
0.00), and extended lungs that stopped short of the image edge when the field of view cuts
the chest (LIDC-0003's mass on the 50 % crop lost its outer slices and scored 0.05).
"""

from __future__ import annotations

import numpy as np
import pytest

from ctnode.settings import AnalyzerSettings
from inference.analyzer.nodules import (
    CLOSING_RADIUS_MM,
    extended_lungs,
    mass_size_probability,
)
from inference.analyzer.types import Anatomy


def test_mass_size_probability_has_no_jump_at_the_limit() -> None:
    s = AnalyzerSettings()
    assert mass_size_probability(s.mass_min_mm, s) == pytest.approx(0.5)
    # 29.8 and 30.2 mm are the same lesion to a reader (Revel 2004: +-1.73 mm between
    # readers): the probabilities are close, not 0 and 1.
    assert abs(mass_size_probability(30.2, s) - mass_size_probability(29.8, s)) < 0.25
    # Well clear of the limit the call is firm either way.
    assert mass_size_probability(33.0, s) > 0.99
    assert mass_size_probability(27.0, s) < 0.01
    # The limit is the site's setting.
    assert mass_size_probability(26.0, AnalyzerSettings(mass_min_mm=25.0)) > 0.8


def _anatomy(lung: np.ndarray, body: np.ndarray) -> Anatomy:
    empty = np.zeros_like(lung)
    return Anatomy(body=body, lung_left=lung, lung_right=empty, airway=empty,
                   free_gas=empty, cranial_sign=1, left_sign=1, anterior_sign=1)


def _lung_cut_by_the_image_edge() -> tuple[np.ndarray, np.ndarray]:
    """A lung filling the right part of the image up to its edge, with a 16 mm lesion
    indenting it 8 mm from the edge (2 mm voxels)."""
    shape = (24, 40, 40)
    zz, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
    lesion = (zz - 12) ** 2 + (yy - 20) ** 2 + (xx - 35) ** 2 <= 16
    lung = (xx >= 10) & ~lesion
    return lung, lesion


def _edge_lesion_share(cx: int) -> float:
    """Share of a 12 mm lesion under the lung's lower border, centred at column ``cx`` of a
    48-column image, that the extended lungs take back (2 mm voxels)."""
    zz, yy, xx = np.ogrid[:24, :48, :48]
    lesion = (zz - 12) ** 2 + (yy - 24) ** 2 + (xx - cx) ** 2 <= 9
    lung = (xx >= 10) & (yy < 26) & ~lesion  # lung above and beside it, chest wall below
    ext = extended_lungs(_anatomy(lung, np.ones_like(lung)), (2.0, 2.0, 2.0))
    assert ext[lung].all()
    return float(ext[lesion].mean())


def test_extended_lungs_take_back_a_lesion_at_the_field_of_view_edge() -> None:
    """The field of view cuts the lesion (column 46 of 48): it is taken back as much as
    the same lesion well inside the image. Without the lung continued past the edge the
    closing eroded in from it: 0.60 of it against 0.82."""
    inside = _edge_lesion_share(40)
    assert inside > 0.7
    assert _edge_lesion_share(46) >= inside - 0.05


def test_extended_lungs_keep_lung_that_the_body_mask_left_out() -> None:
    """On a cropped field of view the body mask lost lung open to the image edge."""
    lung, lesion = _lung_cut_by_the_image_edge()
    body = np.ones_like(lung)
    body[:, :, 30:] = False  # the body mask stops short of the edge, lung and lesion
    ext = extended_lungs(_anatomy(lung, body), (2.0, 2.0, 2.0))
    assert ext[lung].all()


def test_extended_lungs_unchanged_inside_the_image() -> None:
    """A lung clear of every edge is closed exactly as before (no padding)."""
    from inference.analyzer.morphology import close_ball

    lung, _ = _lung_cut_by_the_image_edge()
    inner = np.zeros_like(lung)
    inner[:, 5:35, 5:35] = lung[:, 5:35, 5:35]
    ext = extended_lungs(_anatomy(inner, np.ones_like(inner)), (2.0, 2.0, 2.0))
    assert np.array_equal(ext, close_ball(inner, CLOSING_RADIUS_MM, (2.0, 2.0, 2.0)))


@pytest.mark.parametrize("variant", ["crop50", "sharp"])
@pytest.mark.real_analysis("lidc_idri_0003")
def test_lidc_0003_mass_probability_holds_across_variants(variant: str) -> None:
    """LIDC-0003's part-solid mass (readers 31 mm) measures 29.8-30.2 mm on these
    reconstructions: lung_mass was 0.87 on the original and 0.00 on both (the 50 % crop
    lost the mass's outer slices; the sharp kernel measured it 29.8 mm). Measured after
    the fix: 0.53 original, 0.39 crop50, 0.36 sharp."""
    from tests.conftest import real_analysis

    original = real_analysis("lidc_idri_0003").probabilities
    varied = real_analysis("lidc_idri_0003", variant).probabilities
    assert varied["lung_mass"] is not None and original["lung_mass"] is not None
    assert abs(varied["lung_mass"] - original["lung_mass"]) <= 0.2
    # The 15 mm nodule keeps the nodule call; the mass on the limit does not replace it.
    assert varied["lung_nodule"] is not None and original["lung_nodule"] is not None
    assert abs(varied["lung_nodule"] - original["lung_nodule"]) <= 0.15



@pytest.mark.real_analysis("lidc_idri_0003")
def test_lidc_0003_mass_measured_on_its_largest_section_under_noise() -> None:
    """With 40 HU of noise a strand of ground glass joined LIDC-0003's part-solid mass on one
    slice: the longest chord over all slices went 30.2 -> 33.1 mm and lung_mass 0.53 -> 0.89.
    The long axis is now read on the slice of largest section: 30.2 -> 30.5 mm, lung_mass
    0.53 -> 0.66 (measured)."""
    from tests.conftest import real_analysis

    original = real_analysis("lidc_idri_0003")
    noisy = real_analysis("lidc_idri_0003", "noise40")
    d0 = original.analysis.measures["mass_diameter"].value
    d = noisy.analysis.measures["mass_diameter"].value
    assert d0 is not None and d is not None
    assert abs(d - d0) <= 1.0, (d0, d)
    p0, p = original.probabilities["lung_mass"], noisy.probabilities["lung_mass"]
    assert p0 is not None and p is not None
    assert abs(p - p0) <= 0.15, (p0, p)

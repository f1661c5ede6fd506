"""Lesions by name (CLI syntax) and random lesion sets for cohorts."""

from __future__ import annotations

import numpy as np
import pytest

from phantom import (
    LungSite,
    Metal,
    MetalKind,
    Nodule,
    NoduleKind,
    PhantomSpecError,
    PleuralEffusion,
    Pneumothorax,
    Side,
)
from phantom.presets import PRESETS, lesion_from_text, lesions_from_text, random_lesions


def test_plain_names_build_every_preset() -> None:
    for name in PRESETS:
        lesion_from_text(name)


def test_fields_and_site_fields() -> None:
    n = lesion_from_text("nodule:diameter_mm=14:kind=part_solid:side=left:level=0.3")
    assert isinstance(n, Nodule) and n.diameter_mm == 14 and n.kind is NoduleKind.PART_SOLID
    assert n.site == LungSite(Side.LEFT, 0.3, 0.5, 0.6)
    got = lesions_from_text("effusion:side=left:volume_ml=500, pacemaker")
    assert got == (PleuralEffusion("left", 500.0), Metal(MetalKind.PACEMAKER))
    c = lesion_from_text("nodule:center_mm=10,20,-100")
    assert isinstance(c, Nodule) and c.center_mm == (10.0, 20.0, -100.0)


@pytest.mark.parametrize("text, match", [
    ("tumour", "unknown lesion"),
    ("nodule:size=3", "no field"),
    ("nodule:diameter_mm", "field=value"),
    ("nodule:diameter_mm=500", "diameter_mm"),
    ("effusion:side=middle", "side"),
])
def test_bad_texts_are_refused(text: str, match: str) -> None:
    with pytest.raises(PhantomSpecError, match=match):
        lesion_from_text(text)


def test_random_lesions_are_seeded_and_consistent() -> None:
    a = random_lesions(np.random.default_rng(1), p_each=0.5)
    b = random_lesions(np.random.default_rng(1), p_each=0.5)
    assert a == b and len(a) > 0
    for seed in range(40):
        les = random_lesions(np.random.default_rng(seed), p_each=0.6)
        eff = [x.side for x in les if isinstance(x, PleuralEffusion)]
        ptx = [x.side for x in les if isinstance(x, Pneumothorax)]
        assert not set(eff) & set(ptx)
    assert random_lesions(np.random.default_rng(0), p_each=0.0) == ()

"""Shared phantoms for the phantom tests: generated once per session, small."""

from __future__ import annotations

from pathlib import Path

import pytest

from phantom import (
    AorticCalcification,
    CoronaryCalcification,
    Emphysema,
    LowBoneDensity,
    LungSite,
    Metal,
    Nodule,
    Phantom,
    PleuralEffusion,
    Pneumothorax,
    WrittenStudy,
    generate_phantom,
    small_spec,
    write_small_study,
)

LESIONS = (
    Nodule(12.0, "solid", LungSite("right", 0.55, 0.5, 0.6)),
    Nodule(16.0, "ground_glass", LungSite("left", 0.7, 0.4, 0.5)),
    PleuralEffusion("left", 300.0),
    Pneumothorax("right", 200.0),
    Emphysema(0.15, "upper"),
    CoronaryCalcification("lad", 0.3, 10.0, 4.0, 700.0),
    AorticCalcification("descending", 3, 6.0, 800.0),
    Metal("port"),
    LowBoneDensity(80.0),
)


@pytest.fixture(scope="session")
def normal_phantom() -> Phantom:
    return generate_phantom(small_spec(seed=7))


@pytest.fixture(scope="session")
def diseased_phantom() -> Phantom:
    return generate_phantom(small_spec(LESIONS, seed=11))


@pytest.fixture(scope="session")
def small_study(tmp_path_factory: pytest.TempPathFactory) -> WrittenStudy:
    out: Path = tmp_path_factory.mktemp("small_study")
    return write_small_study(out, [Nodule(14.0)], seed=3)

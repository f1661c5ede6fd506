"""Pleural space and devices on generated phantoms: effusion, pneumothorax, metal."""

from __future__ import annotations

import pytest

from inference.models.chest_quant import ChestQuantModel
from tests.inference.analyzer_synth import phantom_case

phantom = pytest.importorskip("phantom")


def _run(lesions: tuple, seed: int):  # type: ignore[no-untyped-def]
    volume, truth = phantom_case(lesions, seed=seed)
    out = ChestQuantModel().predict(volume)
    p = {f.key: f.probability for f in out.findings}
    features = dict(out.features)
    return out, p, features, truth


@pytest.fixture(scope="module")
def pleural():  # type: ignore[no-untyped-def]
    return _run((phantom.PleuralEffusion("left", 400.0), phantom.Pneumothorax("right", 300.0),
                 phantom.Metal("pacemaker")), seed=0)


@pytest.fixture(scope="module")
def emphysema_only():  # type: ignore[no-untyped-def]
    return _run((phantom.Emphysema(0.2, "upper"),), seed=1)


def test_effusion_volume_and_side(pleural) -> None:  # type: ignore[no-untyped-def]
    out, p, f, truth = pleural
    assert p["pleural_effusion"] > 0.5
    expected = truth["measurements"]["pleural_effusion_ml"]["left"]
    assert f["pleural_effusion_volume_left"] == pytest.approx(expected, rel=0.35)
    assert f["pleural_effusion_volume_right"] < 0.1 * expected
    ev = {x.key: x for x in out.findings}["pleural_effusion"].evidence[0]
    assert ev.center_lps[0] > 0  # patient left is +x in LPS


def test_pneumothorax_found_and_kept_out_of_the_emphysema_index(pleural) -> None:  # type: ignore[no-untyped-def]
    _, p, f, truth = pleural
    assert p["pneumothorax"] > 0.5
    assert f["pneumothorax_volume"] == pytest.approx(
        truth["measurements"]["pneumothorax_ml"]["right"], rel=0.5)
    # Free air is not emphysema: what is left of its partial-volume edge is small.
    assert f["laa950"] < 3.0 and p["emphysema"] < 0.5


def test_metal_device_is_medical_material(pleural) -> None:  # type: ignore[no-untyped-def]
    _, p, f, _ = pleural
    assert p["medical_material"] > 0.5 and f["metal_volume"] > 0.05


def test_emphysema_is_not_a_pneumothorax(emphysema_only) -> None:  # type: ignore[no-untyped-def]
    _, p, f, truth = emphysema_only
    assert p["emphysema"] > 0.5
    assert f["laa950"] == pytest.approx(truth["measurements"]["laa950_percent"], abs=3.0)
    assert p["pneumothorax"] < 0.5
    assert p["pleural_effusion"] < 0.5 and p["medical_material"] < 0.5

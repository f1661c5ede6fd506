"""Weights manifest: parse, install from a local file, verify, load into a real network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from monai.networks.nets import ResNet

from weights import ChecksumError, ManifestError, install, load_manifest, sha256_of, verify


def _tiny_resnet() -> torch.nn.Module:
    return ResNet("basic", [1, 1, 1, 1], [4, 8, 8, 8], spatial_dims=3, n_input_channels=1,
                  num_classes=2)


def _manifest(tmp_path: Path, sha: str, name: str = "tiny_resnet") -> Path:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"entries": [{
        "name": name, "version": "0.0.1", "file": f"{name}.pt", "source": "https://example.invalid/x.pt",
        "sha256": sha, "license": "MIT", "model": "test", "input_spec": "1x16x16x16 HU",
        "output_spec": "2 logits"}]}))
    return path


def test_shipped_manifest_parses() -> None:
    assert isinstance(load_manifest(), dict)


def test_install_verify_and_load(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = _tiny_resnet()
    src = tmp_path / "src.pt"
    torch.save(net.state_dict(), src)
    entry = load_manifest(_manifest(tmp_path, sha256_of(src)))["tiny_resnet"]
    weights_dir = tmp_path / "weights"
    assert not verify(entry, weights_dir).installed
    installed = install(entry, weights_dir, from_file=src)
    status = verify(entry, weights_dir)
    assert status.installed and status.intact
    torch.manual_seed(1)
    fresh = _tiny_resnet()
    fresh.load_state_dict(torch.load(installed, weights_only=True))
    x = torch.randn(1, 1, 16, 16, 16)
    net.eval()
    fresh.eval()
    with torch.no_grad():
        assert torch.allclose(net(x), fresh(x))


def test_checksum_mismatch_installs_nothing(tmp_path: Path) -> None:
    src = tmp_path / "src.pt"
    src.write_bytes(b"not the promised weights")
    entry = load_manifest(_manifest(tmp_path, "0" * 64))["tiny_resnet"]
    with pytest.raises(ChecksumError):
        install(entry, tmp_path / "weights", from_file=src)
    assert list((tmp_path / "weights").iterdir()) == []


def test_tampered_file_is_reported(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"weights")
    entry = load_manifest(_manifest(tmp_path, sha256_of(src)))["tiny_resnet"]
    install(entry, tmp_path / "w", from_file=src)
    (tmp_path / "w" / entry.file).write_bytes(b"tampered")
    status = verify(entry, tmp_path / "w")
    assert status.installed and not status.intact and "expected" in status.detail


def test_bad_manifest_fails_fast(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="sha256"):
        load_manifest(_manifest(tmp_path, "not-a-sha"))
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ManifestError):
        load_manifest(bad)

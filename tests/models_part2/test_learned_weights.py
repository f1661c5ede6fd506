"""Learned models end to end: add/install → verify → load, refusals, /health and the ensemble."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from ctnode.commands import weights as weights_command
from inference.ensemble import MODEL_REGISTRY, Ensemble, build_ensemble
from inference.findings import FINDING_KEYS
from inference.models.base import Model
from inference.models.checkpoint import CheckpointError
from inference.models.chest_quant import ChestQuantModel
from inference.models.ctclip.model import CTClipModel
from inference.models.embed_prompts import install_prompts
from inference.models.learned import FAMILIES, add_checkpoint, family, resolve_checkpoint
from inference.stacker import MaxFindingStacker
from inference.types import ModelOutput, ModelStatus
from series_selector.types import HUVolume
from tests.models_part2.conftest import ctclip_prompts, fvlm_prompts, settings_for
from weights import load_site_manifest, verify

LEARNED = list(FAMILIES)


def _save(model: str, path: Path) -> Path:
    torch.manual_seed(0)
    torch.save(family(model).build().state_dict(), path)
    return path


@pytest.mark.usefixtures("tiny_families")
@pytest.mark.parametrize("model", LEARNED)
def test_checkpoint_round_trips_add_verify_load(model: str, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, [model])
    directory = settings.weights.directory
    ckpt = _save(model, tmp_path / f"{model}.pth")
    entry = add_checkpoint(model, ckpt, directory)
    assert entry.name == f"{model}_site" and entry.model == model
    assert load_site_manifest(directory)[entry.name].sha256 == entry.sha256
    assert verify(entry, directory).intact
    path, found = resolve_checkpoint(model, directory)
    assert found == entry and path.read_bytes() == ckpt.read_bytes()
    cls = MODEL_REGISTRY[model].split(":")
    built = getattr(__import__(cls[0], fromlist=[cls[1]]), cls[1]).from_settings(settings)
    original = torch.load(ckpt, weights_only=True)
    loaded = built.net.state_dict()
    assert all(torch.equal(original[k], loaded[k]) for k in original)
    assert built.weights_sha256 == entry.sha256


@pytest.mark.usefixtures("tiny_families")
def test_add_refuses_a_mismatch_and_installs_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "weights"
    state = family("mednext").build().state_dict()
    state["head.weight"] = torch.zeros(5, state["head.weight"].shape[1])
    state.pop("head.bias")
    state["head.extra"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError) as err:
        add_checkpoint("mednext", tmp_path / "bad.pt", directory)
    text = str(err.value)
    assert "missing key(s): head.bias" in text and "unexpected key(s): head.extra" in text
    assert "head.weight expected [22, 64] found [5, 64]" in text
    assert load_site_manifest(directory) == {}


@pytest.mark.usefixtures("tiny_families")
def test_cli_add_install_and_refusal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_for(tmp_path, ["mednext"])
    for module in ("ctnode.commands.weights", "ctnode.commands.weights_models"):
        monkeypatch.setattr(f"{module}.get_settings", lambda: settings)
    runner = CliRunner()
    app = weights_command.weights_app
    good = _save("mednext", tmp_path / "mednext.pt")
    r = runner.invoke(app, ["add", "mednext", str(good), "--version", "site-1"])
    assert r.exit_code == 0, r.output
    assert load_site_manifest(settings.weights.directory)["mednext_site"].version == "site-1"
    r = runner.invoke(app, ["install", "fvlm", "--from", str(good)])  # wrong family
    assert r.exit_code == 1 and "does not fit the fvlm architecture" in r.output
    fv = _save("fvlm", tmp_path / "fvlm.pt")
    r = runner.invoke(app, ["install", "fvlm", "--from", str(fv)])  # no shipped entry: checked
    assert r.exit_code == 0, r.output
    assert "fvlm_site" in load_site_manifest(settings.weights.directory)
    r = runner.invoke(app, ["install", "ctclip"])
    assert r.exit_code == 2 and "--from FILE" in r.output


def test_without_weights_every_family_says_so_in_health(tmp_path: Path) -> None:
    from api.app import create_app

    settings = settings_for(tmp_path, ["chest_quant", *LEARNED])
    with TestClient(create_app(settings)) as client:
        body = client.get("/health").json()
    models = {m["name"]: m for m in body["models"]}
    assert set(LEARNED) <= set(models)
    for name in LEARNED:
        assert models[name]["weights_installed"] is False
        assert "does not vote" in models[name]["description"]
    assert "ctnode weights install ctclip_classfine --from CT_LiPro_v2.pt" in \
        models["ctclip_classfine"]["description"]


class _Cached(Model):
    """chest_quant's output on the phantom, computed once for the three ensembles."""

    def __init__(self, output: ModelOutput) -> None:
        self.output = output

    @property
    def status(self) -> ModelStatus:
        return self.output.model

    def predict(self, volume: HUVolume) -> ModelOutput:
        return self.output


@pytest.fixture(scope="module")
def chest_quant_output(chest: HUVolume) -> ModelOutput:
    return ChestQuantModel().predict(chest)


@pytest.mark.usefixtures("tiny_families")
@pytest.mark.parametrize("installed", [(), ("ctclip_classfine",), tuple(LEARNED)])
def test_ensemble_with_none_one_and_all_learned(installed: tuple[str, ...], tmp_path: Path,
                                                chest: HUVolume,
                                                chest_quant_output: ModelOutput) -> None:
    settings = settings_for(tmp_path, LEARNED)
    directory = settings.weights.directory
    for model in installed:
        entry = add_checkpoint(model, _save(model, tmp_path / f"{model}.pt"), directory)
        if model in ("ctclip", "fvlm"):
            make = ctclip_prompts if model == "ctclip" else fvlm_prompts
            dim = 512 if model == "ctclip" else None
            install_prompts(make(entry.sha256) if dim is None else make(entry.sha256, dim),
                            directory)
    learned = build_ensemble(settings)
    ensemble = Ensemble([_Cached(chest_quant_output), *learned.runners], learned.stacker)
    try:
        assert isinstance(ensemble, Ensemble) and isinstance(ensemble.stacker, MaxFindingStacker)
        status = {s.name: s.weights_installed for s in ensemble.statuses}
        assert status == {"chest_quant": True} | {m: m in installed for m in LEARNED}
        out = ensemble.run(chest)
    finally:
        ensemble.close()
    ran = {o.model.name for o in out.outputs}
    assert ran == {"chest_quant", *installed}
    assert tuple(f.key for f in out.stacked.findings) == FINDING_KEYS
    assert 0.0 <= out.stacked.probability <= 1.0
    runs = {r.name: r.status.value for r in out.runs}
    assert all(runs[m] == ("ok" if m in installed else "not_run") for m in LEARNED)
    if "ctclip_classfine" in installed:
        p = next(f for f in out.outputs if f.model.name == "ctclip_classfine").findings[0]
        assert p.key == "medical_material" and 0 <= (p.probability or 0) <= 1


def test_ctclip_refuses_prompts_of_another_checkpoint() -> None:
    model = CTClipModel(None, weights_sha256="a" * 64)
    with pytest.raises(ValueError, match="another checkpoint"):
        model.set_prompts(ctclip_prompts("b" * 64))
    model.set_prompts(ctclip_prompts("a" * 64))
    assert model.findings and model.prompts is not None


def test_manifest_entry_of_the_published_classfine() -> None:
    manifest = json.loads((Path(__file__).parents[2] / "weights" / "manifest.json").read_text())
    entry = next(e for e in manifest["entries"] if e["name"] == "ctclip_classfine")
    assert entry["model"] == "ctclip_classfine" and entry["file"] == "CT_LiPro_v2.pt"
    assert "CC BY-NC-SA" in entry["license"]


@pytest.mark.usefixtures("tiny_families")
def test_published_quirks_are_accepted_by_add(tmp_path: Path) -> None:
    """A ClassFine file as published: text tower (with position_ids), unused projections."""
    state = dict(family("ctclip_classfine").build().state_dict())
    pooled = state["trained_model.to_visual_latent.weight"].shape[1]
    state |= {"trained_model.text_transformer.embeddings.position_ids": torch.arange(512)[None],
              "trained_model.text_transformer.embeddings.word_embeddings.weight":
                  torch.zeros(10, 768),
              "trained_model.to_text_latent.weight": torch.zeros(512, 768),
              "trained_model.to_text_latent_extra.weight": torch.zeros(512, 768),
              "trained_model.to_visual_latent_extra.weight": torch.zeros(512, pooled)}
    torch.save(state, tmp_path / "CT_LiPro_like.pt")
    entry = add_checkpoint("ctclip_classfine", tmp_path / "CT_LiPro_like.pt", tmp_path / "w")
    assert entry.name == "ctclip_classfine_site"

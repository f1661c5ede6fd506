"""The ML engineer's loop end to end on a phantom cohort: features → train → install →
predict → evaluate. Phantom-trained heads only test the loop (README)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import inference.ensemble as ensemble_mod
from ctnode.cli import app
from ctnode.commands.train import evaluate_features_cli
from ctnode.settings import Settings, get_settings
from inference import run_pipeline
from inference.ensemble import build_ensemble
from inference.models.heads import HeadSet
from inference.training import (
    ExtractionSummary,
    TrainingResult,
    TrainOptions,
    evaluate_features,
    extract_features,
    load_dataset,
    read_labels,
    train,
    write_phantom_cohort,
)
from inference.training.cache import FeatureCache
from inference.types import StudyResult
from tests.models.fakes import HistogramModel
from weights import install_listed, sha256_of

N_STUDIES = 10


@dataclass
class Loop:
    root: Path
    settings: Settings
    studies: Path
    labels: Path
    cache: Path
    first: ExtractionSummary
    second: ExtractionSummary
    trained: TrainingResult
    case: Path
    before: StudyResult
    after: StudyResult


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    root = tmp_path_factory.mktemp("loop")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(ensemble_mod.MODEL_REGISTRY, "hu_histogram",
                   "tests.models.fakes:HistogramModel")
        settings = Settings(node={"work_dir": root / "var"},
                            weights={"directory": root / "weights"},
                            inference={"enabled_models": ["chest_quant", "hu_histogram"],
                                       "model_isolation": "thread"})
        studies, labels = write_phantom_cohort(
            root / "cohort", N_STUDIES, seed=7, p_each=0.4, menu=("emphysema", "effusion"),
            fmt="dicom", matrix=64, slice_spacing_mm=5.0)
        cache = root / "cache"
        first = extract_features(studies, cache, settings)
        second = extract_features(studies, cache, settings)
        case = sorted(studies.iterdir())[0]
        before = run_pipeline(case, settings, ensemble=build_ensemble(settings))
        trained = train(load_dataset(cache, labels), root / "trained",
                        TrainOptions(target_sensitivity=settings.inference.target_sensitivity,
                                     bootstrap=200, data_description="phantom cohort (test)"))
        assert trained.manifest is not None
        install_listed(trained.manifest, settings.weights.directory)
        after = run_pipeline(case, settings, ensemble=build_ensemble(settings))
        yield Loop(root, settings, studies, labels, cache, first, second, trained, case,
                   before, after)


def test_features_are_cached_by_study_uid_and_resumable(loop: Loop) -> None:
    assert [s.status for s in loop.first.studies] == ["done"] * N_STUDIES
    assert [s.status for s in loop.second.studies] == ["cached"] * N_STUDIES
    uids = {s.study for s in loop.first.studies}
    assert uids == set(read_labels(loop.labels).values)  # keyed by Study Instance UID
    cache = FeatureCache(loop.cache)
    uid = loop.first.studies[0].study
    fv = loop.first.models["hu_histogram"]
    cached = cache.get(uid, "hu_histogram", fv)
    assert cached is not None and cached.output.embedding is not None
    assert cached.output.embedding.shape == (32,)
    # lose one model's output: the next run recomputes that one only
    cache.path(uid, "hu_histogram", fv).unlink()
    again = extract_features(loop.studies, loop.cache, loop.settings)
    redone = [s for s in again.studies if s.status == "done"]
    assert [s.study for s in redone] == [uid]
    assert {r.name: r.detail for r in redone[0].runs} == {"chest_quant": "cached",
                                                          "hu_histogram": ""}


def test_training_writes_heads_stacker_cards_and_a_checked_manifest(loop: Loop) -> None:
    out = loop.trained.out_dir
    names = {a.name for a in loop.trained.artefacts}
    assert names == {"heads_hu_histogram", "stacker"}
    manifest = json.loads((out / "manifest.json").read_text())
    for entry in manifest["entries"]:
        assert sha256_of(out / entry["file"]) == entry["sha256"]
    heads = next(a for a in loop.trained.artefacts if a.name == "heads_hu_histogram")
    assert {m.target for m in heads.metrics} >= {"emphysema", "pleural_effusion"}
    for m in heads.metrics:  # threshold picked on the folds for the target sensitivity
        assert m.sensitivity >= loop.settings.inference.target_sensitivity
        assert m.auc_lo <= m.auc <= m.auc_hi
    card = (out / heads.card).read_text()
    for text in (f"n = {N_STUDIES}", "| Emphysema |", "AUC [95 % CI]", "phantom cohort (test)",
                 "| hu_histogram | 1.0 |", "| chest_quant |", "Trained with `ctnode train` on",
                 "only tests the training loop"):
        assert text in card, text
    assert (loop.settings.weights.directory / heads.card).is_file()  # installed beside it


def test_round_trip_changes_the_result_as_the_head_says(loop: Loop) -> None:
    before, after = loop.before, loop.after
    assert before.ok and after.ok, (before.error, after.error)
    head_set = HeadSet.load(loop.settings.weights.directory / "heads_hu_histogram.json")
    assert after.volume is not None
    emb = HistogramModel().predict(after.volume).embedding
    assert emb is not None
    for head in head_set.heads:  # each finding: the head's probability now counts
        own = before.finding(head.finding)
        merged = after.finding(head.finding)
        assert own is not None and merged is not None
        head_p = float(head.predict(emb[None, :].astype(float))[0])
        expected = head_p if own.probability is None else (own.probability + head_p) / 2
        assert merged.probability == pytest.approx(expected), head.finding
        assert merged.probability != own.probability
    stacker = json.loads((loop.settings.weights.directory / "stacker.json").read_text())
    assert after.decision == int((after.probability or 0) >= stacker["threshold"])
    body = after.to_json()
    hist = body["model_versions"]["hu_histogram"]
    assert hist["run"]["heads"] == [head_set.version] and "emphysema" in hist["findings"]
    assert before.to_json()["model_versions"]["hu_histogram"]["run"]["heads"] == []


def test_evaluation_reports_intervals_and_calibration_plots(
        loop: Loop, capsys: pytest.CaptureFixture[str]) -> None:
    report = evaluate_features(loop.cache, loop.labels, loop.root / "eval", loop.settings,
                               n_boot=200)
    targets = {m.target: m for m in report.metrics}
    assert {"emphysema", "pleural_effusion", "pathology"} <= set(targets)
    assert report.heads == {"hu_histogram": report.heads["hu_histogram"]}
    assert report.stacker == "lightgbm"
    for key in ("emphysema", "pathology"):
        png = report.plots[key]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((loop.root / "eval" / "evaluation.json").read_text())
    assert saved["n_studies"] == N_STUDIES and saved["metrics"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CTNODE_WEIGHTS__DIRECTORY", str(loop.settings.weights.directory))
        get_settings.cache_clear()
        try:
            evaluate_features_cli(loop.cache, loop.labels, loop.root / "eval_cli")
        finally:
            get_settings.cache_clear()
    assert "AUC [95 % CI]" in capsys.readouterr().out


def test_train_and_features_commands(loop: Loop, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ensemble_mod.MODEL_REGISTRY, "hu_histogram",
                        "tests.models.fakes:HistogramModel")
    monkeypatch.setenv("CTNODE_WEIGHTS__DIRECTORY", str(tmp_path / "w"))
    monkeypatch.setenv("CTNODE_INFERENCE__ENABLED_MODELS", '["chest_quant", "hu_histogram"]')
    monkeypatch.setenv("COLUMNS", "250")  # Rich tables: no truncated names
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        res = runner.invoke(app, ["features", str(loop.studies), "--out", str(loop.cache)])
        assert res.exit_code == 0, res.output
        assert f"{N_STUDIES} already cached" in res.output
        res = runner.invoke(app, ["train", "--features", str(loop.cache), "--labels",
                                  str(loop.labels), "--out", str(tmp_path / "t"), "--install"])
        assert res.exit_code == 0, res.output
        assert "out-of-fold metrics" in res.output and "installed:" in res.output
        res = runner.invoke(app, ["weights", "list"])
        assert "heads_hu_histogram" in res.output and "stacker" in res.output
    finally:
        get_settings.cache_clear()


def test_a_tampered_installed_head_is_not_loaded(
        loop: Loop, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ensemble_mod.MODEL_REGISTRY, "hu_histogram",
                        "tests.models.fakes:HistogramModel")
    settings = loop.settings.model_copy(deep=True)
    settings.weights.directory = tmp_path / "w"
    install_listed(loop.trained.manifest or Path(), settings.weights.directory)
    head_file = settings.weights.directory / "heads_hu_histogram.json"
    data = json.loads(head_file.read_text())
    data["heads"]["emphysema"]["intercept"] += 5.0  # a silent edit
    head_file.write_text(json.dumps(data))
    ens = build_ensemble(settings)
    assert ens.heads == {} and ens.stacker.name == "lightgbm"
    assert any("refused" in r.getMessage() for r in caplog.records)
    assert np.isfinite(len(ens.statuses))

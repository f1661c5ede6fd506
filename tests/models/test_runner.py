"""Model isolation: a model that raises, hangs or runs out of memory does not take the study."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

import inference.ensemble as ensemble_mod
from ctnode.settings import Settings
from inference import run_pipeline
from inference.ensemble import Ensemble, build_ensemble
from inference.errors import InferenceError, NotChestError
from inference.models.runner import ProcessRunner, ThreadRunner, select_device
from inference.stacker import MaxFindingStacker
from inference.types import RunStatus
from series_selector.types import HUVolume
from tests.models.fakes import HistogramModel, RaisingModel, _Scoring

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
FAKES = "tests.models.fakes"


def _volume() -> HUVolume:
    return HUVolume(np.full((8, 8, 8), -800.0, np.float32), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0),
                    IDENTITY, series_uid="1.2.3")


class _Napping(_Scoring):
    name = "napping"

    def predict(self, volume: HUVolume) -> object:  # type: ignore[override]
        time.sleep(2.0)
        return self._ok()


def _process(name: str, settings: Settings, **kw: float) -> ProcessRunner:
    return ProcessRunner(f"{FAKES}:{name}", settings,
                         time_limit_s=kw.get("time_limit_s", 30.0),
                         memory_mb=kw.get("memory_mb", 4096.0), device="cpu")


def test_device_selection() -> None:
    assert select_device("cpu") == "cpu"
    assert select_device("cuda:1") == "cuda:1"
    assert select_device("auto") in ("cpu", "cuda")


def test_raising_model_is_reported_and_the_others_complete() -> None:
    ens = Ensemble([_Scoring(), RaisingModel()], MaxFindingStacker())
    out = ens.run(_volume())
    runs = {r.name: r for r in out.runs}
    assert runs["scoring"].status is RunStatus.OK
    assert runs["raising"].status is RunStatus.ERROR
    assert "weights exploded" in runs["raising"].detail
    assert out.stacked.probability == pytest.approx(0.5)
    assert [o.model.name for o in out.outputs] == ["scoring"]


def test_every_model_failing_is_a_failure_that_names_them() -> None:
    with pytest.raises(InferenceError, match="raising: error") as info:
        Ensemble([RaisingModel()], MaxFindingStacker()).run(_volume())
    assert info.value.code == "all_models_failed"


def test_thread_runner_reports_a_timeout() -> None:
    out, run = ThreadRunner(_Napping(), time_limit_s=0.2).run(_volume())
    assert out is None and run.status is RunStatus.TIMEOUT
    assert "time limit" in run.detail


def test_process_runner_round_trip_and_input_errors(settings: Settings) -> None:
    runner = _process("GoodProcessModel", settings)
    try:
        assert runner.status.name == "good_process" and runner.pid != os.getpid()
        out, run = runner.run(_volume())
        assert run.status is RunStatus.OK and out is not None
        assert out.features["mean_hu"] == pytest.approx(-800.0)
        assert out.embedding is not None and list(out.embedding) == [0, 1, 2, 3]
        bright = HUVolume(np.full((8, 8, 8), 40.0, np.float32), (1.0, 1.0, 1.0),
                          (0.0, 0.0, 0.0), IDENTITY)
        # a bad input is the study's failure, as in-process, not a model fault
        with pytest.raises(NotChestError, match="no lungs") as info:
            runner.run(bright)
        assert info.value.code == "not_chest_ct"
        assert runner.run(_volume())[1].status is RunStatus.OK  # the worker lives on
    finally:
        runner.close()
    assert runner.pid is None


def test_process_runner_kills_a_hung_model_and_restarts_it(settings: Settings) -> None:
    runner = _process("SlowModel", settings, time_limit_s=1.5)
    try:
        first_pid = runner.pid
        t0 = time.perf_counter()
        out, run = runner.run(_volume())
        assert time.perf_counter() - t0 < 10
        assert out is None and run.status is RunStatus.TIMEOUT
        assert runner.pid is None  # the worker was stopped
        with pytest.raises(ProcessLookupError):
            os.kill(first_pid or 0, 0)
        _, again = runner.run(_volume())  # a fresh worker, and the same verdict
        assert again.status is RunStatus.TIMEOUT
    finally:
        runner.close()


def test_process_runner_memory_cap_reports_out_of_memory(settings: Settings) -> None:
    runner = _process("HungryModel", settings, memory_mb=1536.0)
    try:
        out, run = runner.run(_volume())
        assert out is None and run.status is RunStatus.OUT_OF_MEMORY, run
        assert "MemoryError" in run.detail
    finally:
        runner.close()


def test_pipeline_result_reports_each_models_run(
        settings: Settings, small_nifti: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ensemble_mod.MODEL_REGISTRY, "raising", f"{FAKES}:RaisingModel")
    monkeypatch.setitem(ensemble_mod.MODEL_REGISTRY, "hu_histogram", f"{FAKES}:HistogramModel")
    settings.inference.enabled_models = ["chest_quant", "raising", "hu_histogram"]
    ens = build_ensemble(settings)
    result = run_pipeline(small_nifti, settings, ensemble=ens)
    assert result.ok, result.error
    body = result.to_json()
    versions = body["model_versions"]
    assert versions["chest_quant"]["run"]["status"] == "ok"
    assert versions["raising"]["run"]["status"] == "error"
    assert "weights exploded" in versions["raising"]["run"]["detail"]
    assert versions["hu_histogram"]["run"]["status"] == "ok"  # features only, no finding
    assert body["processing_status"] == "Success"
    assert isinstance(HistogramModel().status.name, str)

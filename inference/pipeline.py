"""The one function every door calls: input in, ``StudyResult`` out.

Stages (ARCHITECTURE.md): unpack → index → select → HU volume → ensemble →
stack → decide. Each stage's duration is recorded in ``stage_seconds``.

``run_pipeline`` never raises for bad input or a failing model: it returns a
Failure result whose ``error`` is a sentence a user can act on and whose
``error_code`` a program can branch on. Doors map that to their own failure
(HTTP status, DIMSE status, failed job).
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ctnode.settings import Settings
from inference.ensemble import Ensemble, build_ensemble
from inference.errors import InferenceError, NotChestError
from inference.findings import FINDINGS
from inference.stacker import StackedPrediction
from inference.types import ImageConditions, ModelStatus, ProcessingStatus, StudyResult
from series_selector import (
    check_chest_anatomy,
    index_path,
    load_nifti,
    load_volume,
    select_series,
)
from series_selector.archive import ArchiveLimits, extract_zip, remove_tree
from series_selector.budget import check_dicom_budget
from series_selector.errors import NoUsableSeriesError, SelectionError
from series_selector.types import HUVolume, SelectionReport, Verdict

logger = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii", ".nii.gz")

# Error codes that mean "the input is not usable" (a client error), as opposed
# to a fault of the node itself.
INPUT_ERROR_CODES = frozenset({
    "unsafe_archive", "no_dicom", "multiple_studies", "no_usable_series",
    "not_chest_ct", "volume_error", "not_found", "unsupported_input", "study_too_large",
})

_ensemble_cache: dict[str, Ensemble] = {}
_ensemble_lock = threading.Lock()  # doors call from worker threads: build each ensemble once


def _ensemble_key(settings: Settings) -> str:
    return settings.inference.model_dump_json() + settings.weights.model_dump_json()


def get_ensemble(settings: Settings) -> Ensemble:
    """The ensemble for these settings, built once per process (models load once)."""
    key = _ensemble_key(settings)
    with _ensemble_lock:
        if key not in _ensemble_cache:
            _ensemble_cache[key] = build_ensemble(settings)
        return _ensemble_cache[key]


class _Stages:
    """Times the pipeline's stages."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


def is_nifti(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(NIFTI_SUFFIXES)


def archive_limits(settings: Settings) -> ArchiveLimits:
    api = settings.api
    return ArchiveLimits(
        max_members=api.max_archive_members,
        max_uncompressed_bytes=int(api.max_uncompressed_mb * 1e6),
        max_compression_ratio=api.max_compression_ratio,
    )


def _budget_bytes(settings: Settings) -> int:
    return int(settings.limits.study_memory_mb * 1e6)


def run_pipeline(
    source: Path,
    settings: Settings,
    *,
    ensemble: Ensemble | None = None,
    work_dir: Path | None = None,
) -> StudyResult:
    """Analyse one study: a folder of DICOM files, a ZIP of them, or a NIfTI file.

    ``work_dir``: where a ZIP is unpacked. When given, the files stay there
    after the call (so ``result.volume.source_paths`` can still be read, e.g. by
    the SR writer); when None, a temporary folder is used and removed.
    """
    t0 = time.perf_counter()
    stages = _Stages()
    own_temp: Path | None = None
    selection: SelectionReport | None = None
    study_uid = ""
    series_uid = ""
    try:
        source = Path(source)
        if not source.exists():
            # no path in the message: it is logged, and folders are often named after the patient
            raise SelectionError("the input does not exist", code="not_found")
        if is_nifti(source):
            with stages.stage("load_volume"):
                volume = load_nifti(source, _budget_bytes(settings))
            with stages.stage("select"):
                verdict = check_chest_anatomy(volume, settings.selection)
            if verdict.verdict is Verdict.FAIL:
                raise NotChestError(f"the volume is not a chest CT: {verdict.reason}")
        else:
            folder = source
            if source.is_file():
                if not zipfile.is_zipfile(source):
                    raise SelectionError(
                        "the input file is neither a ZIP archive, a NIfTI file nor a folder "
                        "of DICOM files",
                        code="unsupported_input",
                    )
                if work_dir is None:
                    own_temp = Path(tempfile.mkdtemp(prefix="ctnode-", dir=settings.node.temp_dir))
                    work_dir = own_temp
                folder = work_dir / "input"
                with stages.stage("unpack"):
                    extract_zip(source, folder, archive_limits(settings))
            with stages.stage("index"):
                index = index_path(folder, int(settings.limits.max_instance_mb * 1e6))
            with stages.stage("select"):
                selection = select_series(index, settings.selection)
            study_uid = selection.study_uid
            if selection.chosen_series_uid is None:
                raise NoUsableSeriesError(selection.explanation or "no usable series")
            series_uid = selection.chosen_series_uid
            check_dicom_budget(index, selection, _budget_bytes(settings))  # before decoding
            with stages.stage("load_volume"):
                volume = load_volume(index, selection)
        study_uid = volume.study_uid or study_uid
        series_uid = volume.series_uid or series_uid
        ens = ensemble if ensemble is not None else get_ensemble(settings)
        with stages.stage("inference"):
            out = ens.run(volume)
        stage_seconds = dict(stages.seconds)
        stage_seconds.update({f"model.{k}": v for k, v in out.model_seconds.items()})
        image = next((o.conditions for o in out.outputs if o.conditions is not None), None)
        result = _success(out.stacked, volume, selection, ens, settings, stage_seconds, t0,
                          image)
        result = dataclasses.replace(result, model_runs=out.runs)  # issue 16: per-model status
        logger.info(
            "study %s series %s: probability %.3f decision %s in %.1f s",
            result.study_uid, result.series_uid, result.probability or 0.0,
            result.decision, result.seconds,
        )
        return result
    except (SelectionError, InferenceError) as exc:
        # The sentence goes to the caller, not the log: it can quote file or folder
        # names, which sites often name after the patient.
        logger.info("study %s: Failure (%s)", study_uid or "?", exc.code)
        return _failure(str(exc), exc.code, study_uid, series_uid, selection, stages, t0,
                        ensemble, settings)
    except Exception as exc:  # the door must still answer; the log keeps the trace
        logger.exception("study %s: internal error", study_uid or "?")
        return _failure(
            f"internal error while processing the study ({type(exc).__name__}); "
            "the node's log has the details",
            "internal_error", study_uid, series_uid, selection, stages, t0, ensemble, settings,
        )
    finally:
        if own_temp is not None:
            remove_tree(own_temp)


def _success(
    stacked: StackedPrediction,
    volume: HUVolume,
    selection: SelectionReport | None,
    ensemble: Ensemble,
    settings: Settings,
    stage_seconds: dict[str, float],
    t0: float,
    image: ImageConditions | None = None,
) -> StudyResult:
    inf = settings.inference
    assessed = [f for f in stacked.findings if f.probability is not None]
    ranked = sorted(assessed, key=lambda f: (-(f.probability or 0.0), FINDINGS[f.key].danger_rank))
    top = tuple(f.display_name for f in ranked[: inf.top_k])
    present = [f for f in assessed if (f.probability or 0.0) >= inf.finding_threshold]
    most_dangerous = (
        min(present, key=lambda f: FINDINGS[f.key].danger_rank).key if present else None
    )
    return StudyResult(
        status=ProcessingStatus.SUCCESS,
        study_uid=volume.study_uid,
        series_uid=volume.series_uid,
        probability=stacked.probability,
        # issue 16: a trained stacker carries the threshold chosen on its validation folds
        decision=int(stacked.probability >= (
            inf.decision_threshold if stacked.threshold is None else stacked.threshold)),
        findings=stacked.findings,
        top_pathologies=top,
        most_dangerous_key=most_dangerous,
        selection=selection,
        models=ensemble.statuses,
        seconds=time.perf_counter() - t0,
        stage_seconds=stage_seconds,
        volume=volume,
        image=image,
    )


def _failure(
    message: str,
    code: str,
    study_uid: str,
    series_uid: str,
    selection: SelectionReport | None,
    stages: _Stages,
    t0: float,
    ensemble: Ensemble | None,
    settings: Settings,
) -> StudyResult:
    models = ensemble.statuses if ensemble is not None else _known_statuses(settings)
    return StudyResult(
        status=ProcessingStatus.FAILURE,
        study_uid=study_uid,
        series_uid=series_uid,
        selection=selection,
        models=models,
        error=message,
        error_code=code,
        seconds=time.perf_counter() - t0,
        stage_seconds=dict(stages.seconds),
    )


def _known_statuses(settings: Settings) -> tuple[ModelStatus, ...]:
    """Model statuses for a Failure, without building models just to report them."""
    key = _ensemble_key(settings)
    return _ensemble_cache[key].statuses if key in _ensemble_cache else ()

"""``ctnode features``: run every installed model on every study of a folder, into the cache.

Each input (a DICOM study folder, a ZIP or a NIfTI file directly under the
folder) goes through ``inference.run_pipeline`` exactly as in production (same
series selection, same checks), with an ensemble that first looks in the cache:
a model whose output for this study and feature version is cached is not run
again. A model that fails is not cached, so the next run retries it; an input
whose study is fully cached is skipped without being read. The cache holds raw
model outputs (before heads), so installing a head never invalidates it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ctnode.settings import Settings
from inference.ensemble import Ensemble, EnsembleOutput, build_ensemble
from inference.pipeline import NIFTI_SUFFIXES, run_pipeline
from inference.training.cache import FeatureCache, source_fingerprint
from inference.types import ModelOutput, ModelRun, RunStatus
from series_selector.types import HUVolume

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StudyExtraction:
    """What happened to one input."""

    study: str  # study key ("" when the input failed before its study was known)
    status: str  # cached | done | partial | failed
    runs: tuple[ModelRun, ...] = ()
    error: str = ""
    seconds: float = 0.0


@dataclass(slots=True)
class ExtractionSummary:
    """Every input's outcome, and the models (name -> feature version) of this run."""

    models: dict[str, str]
    studies: list[StudyExtraction] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(s.status == status for s in self.studies)


def list_inputs(folder: Path) -> list[Path]:
    """The studies under ``folder``: sub-folders, ZIPs and NIfTI files (sorted).

    A folder with none of those but files of its own is one study.
    """
    found = [p for p in sorted(folder.iterdir()) if not p.name.startswith(".") and (
        p.is_dir() or p.suffix.lower() == ".zip" or p.name.lower().endswith(NIFTI_SUFFIXES))]
    if not found and any(p.is_file() for p in folder.iterdir()):
        return [folder]
    return found


def _nifti_key(path: Path) -> str:
    name = path.name
    for suffix in NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


class CachingEnsemble(Ensemble):
    """The real ensemble's models, consulting and filling the feature cache."""

    def __init__(self, inner: Ensemble, cache: FeatureCache) -> None:
        super().__init__(inner.runners, inner.stacker, inner.heads)
        self.cache = cache
        self.fallback_key = ""
        self.last: tuple[str, list[ModelRun], bool] | None = None  # (study, runs, any new)

    def feature_versions(self) -> dict[str, str]:
        return {r.status.name: r.feature_version for r in self.runners
                if r.status.weights_installed}

    def run(self, volume: HUVolume) -> EnsembleOutput:
        study = volume.study_uid or self.fallback_key
        versions = self.feature_versions()
        outputs: dict[str, ModelOutput] = {}
        runs: list[ModelRun] = []
        for name, fv in versions.items():
            cached = self.cache.get(study, name, fv)
            if cached is not None:
                outputs[name] = cached.output
                runs.append(ModelRun(name, RunStatus.OK, 0.0, "cached"))
        missing = set(versions) - set(outputs)
        fresh, fresh_runs = self.run_models(volume, only=missing) if missing else ({}, [])
        for name, out in fresh.items():
            self.cache.save(study, out, versions[name], volume.series_uid)
        self.last = (study, runs + fresh_runs, bool(fresh))
        return self.finish({**outputs, **fresh}, runs + fresh_runs)


def extract_features(
    input_dir: Path,
    cache_dir: Path,
    settings: Settings,
    *,
    models: Sequence[str] | None = None,
    on_study: Callable[[int, int, StudyExtraction], None] | None = None,
    ensemble: Ensemble | None = None,
) -> ExtractionSummary:
    """Fill ``cache_dir`` with every model's output for every study under ``input_dir``.

    ``models``: model names (default ``settings.inference.enabled_models``).
    ``on_study(i, n, outcome)`` is called after each input (the progress bar).
    """
    if models is not None:
        settings = settings.model_copy(deep=True)
        settings.inference.enabled_models = list(models)
    t0 = time.perf_counter()
    cache = FeatureCache(cache_dir)
    inner = ensemble if ensemble is not None else build_ensemble(settings)
    caching = CachingEnsemble(inner, cache)
    versions = caching.feature_versions()
    summary = ExtractionSummary(versions)
    inputs = list_inputs(input_dir)
    known = cache.sources()
    try:
        for i, source in enumerate(inputs, start=1):
            outcome = _one(source, caching, cache, known, versions, settings)
            summary.studies.append(outcome)
            if on_study is not None:
                on_study(i, len(inputs), outcome)
    finally:
        if ensemble is None:
            inner.close()
    summary.seconds = time.perf_counter() - t0
    return summary


def _one(source: Path, caching: CachingEnsemble, cache: FeatureCache, known: Mapping[str, str],
         versions: Mapping[str, str], settings: Settings) -> StudyExtraction:
    t0 = time.perf_counter()
    fingerprint = source_fingerprint(source)
    study = known.get(fingerprint)
    if study is not None and all(cache.has(study, m, v) for m, v in versions.items()):
        return StudyExtraction(study, "cached")
    caching.fallback_key = _nifti_key(source) if source.is_file() and not \
        source.suffix.lower() == ".zip" else ""
    caching.last = None
    result = run_pipeline(source, settings, ensemble=caching)
    seconds = time.perf_counter() - t0
    if caching.last is None:  # failed before the models (not a chest CT, no usable series…)
        return StudyExtraction(result.study_uid, "failed", (), result.error or "", seconds)
    study, runs, _ = caching.last
    cache.remember_source(fingerprint, study)
    failed = [r for r in runs if r.status not in (RunStatus.OK, RunStatus.NOT_RUN)]
    if len(failed) == len(runs):
        return StudyExtraction(study, "failed", tuple(runs), "; ".join(
            f"{r.name}: {r.status.value} {r.detail}" for r in failed), seconds)
    if all(r.detail == "cached" for r in runs):
        return StudyExtraction(study, "cached", tuple(runs), "", seconds)
    return StudyExtraction(study, "partial" if failed else "done", tuple(runs), "; ".join(
        f"{r.name}: {r.status.value} {r.detail}" for r in failed), seconds)

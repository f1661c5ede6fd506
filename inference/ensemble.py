"""The ensemble: the installed models plus the stacker, built once per process.

Models load their weights when the ensemble is built (start-up), never per
request. A model whose weights are missing is kept in the list so that
``/health`` and ``model_versions`` say so, but it is not run.

Each model runs behind a fault boundary (``inference.models.runner``, issue 16):
a model that raises, runs out of memory or exceeds its time limit is reported
in ``EnsembleOutput.runs`` (and the result's ``model_versions``), and the study
completes with the others. Heads trained on a model's features
(``inference.models.heads``) and a trained LightGBM stacker are loaded from the
site manifest of the weights directory, each checked against its SHA-256.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ctnode.settings import Settings
from inference.errors import InferenceError
from inference.models.base import Model
from inference.models.heads import HeadSet, apply_heads, heads_entry_name
from inference.models.runner import ModelRunner, ThreadRunner, load_model_class, make_runner
from inference.stacker import LightGBMStacker, MaxFindingStacker, StackedPrediction, Stacker
from inference.types import ModelOutput, ModelRun, ModelStatus, RunStatus
from series_selector.types import HUVolume
from weights import WeightsError, checked_file, load_site_manifest

logger = logging.getLogger(__name__)

# name -> "module:Class"; a model is added here and enabled in settings. Each
# module named here imports no torch: a model whose weights are not installed
# only reports its status, so the node starts without loading torch or MONAI.
MODEL_REGISTRY: dict[str, str] = {
    "chest_quant": "inference.models.chest_quant:ChestQuantModel",
    "astra_features": "inference.models.astra:AstraFeaturesModel",  # issue 16
    # issue 17: the seed's five learned families (inference.models.learned); their
    # networks load with their weights (``Family.builder``)
    "ctclip": "inference.models.ctclip.model:CTClipModel",
    "ctclip_classfine": "inference.models.ctclip.model:CTClipClassFineModel",
    "diffusion_anomaly": "inference.models.diffusion_anomaly_model:DiffusionAnomalyModel",
    "fvlm": "inference.models.fvlm_model:FVLMModel",
    "mednext": "inference.models.mednext_model:MedNeXtModel",
}

STACKER_ENTRY = "stacker"  # site-manifest name of the trained stacker (file stacker.json)
STACKER_FILE = "stacker.json"


@dataclass(frozen=True, slots=True)
class EnsembleOutput:
    """Every model's output (heads applied), the stacked prediction, and each model's run."""

    outputs: tuple[ModelOutput, ...]
    stacked: StackedPrediction
    model_seconds: dict[str, float]
    runs: tuple[ModelRun, ...] = ()


class Ensemble:
    """Runs every installed model on a volume, applies trained heads, stacks the outputs."""

    def __init__(self, models: Sequence[Model | ModelRunner], stacker: Stacker,
                 heads: Mapping[str, HeadSet] | None = None, *,
                 time_limit_s: float = 600.0) -> None:
        if not models:
            raise ValueError("an ensemble needs at least one model")
        self.runners: tuple[ModelRunner, ...] = tuple(
            m if isinstance(m, ModelRunner) else ThreadRunner(m, time_limit_s) for m in models)
        self.stacker = stacker
        self.heads: dict[str, HeadSet] = dict(heads or {})

    @property
    def statuses(self) -> tuple[ModelStatus, ...]:
        """Each model's status; a model with heads lists the heads' findings too."""
        out = []
        for runner in self.runners:
            status = runner.status
            head_set = self.heads.get(status.name)
            if head_set is not None:
                findings = tuple(dict.fromkeys(status.findings + head_set.findings))
                status = dataclasses.replace(
                    status, findings=findings,
                    description=f"{status.description} Heads {head_set.version}: "
                    f"{', '.join(head_set.findings)}.".strip())
            out.append(status)
        return tuple(out)

    def run_models(self, volume: HUVolume, only: set[str] | None = None
                   ) -> tuple[dict[str, ModelOutput], list[ModelRun]]:
        """Each installed model's raw output (no heads) and how its run ended.

        ``only``: run just these models (``ctnode features`` skips cached ones).
        Raises ``InferenceError`` for a bad input (e.g. not a chest CT).
        """
        outputs: dict[str, ModelOutput] = {}
        runs: list[ModelRun] = []
        for runner in self.runners:
            status = runner.status
            if only is not None and status.name not in only:
                continue
            if not status.weights_installed:
                runs.append(ModelRun(status.name, RunStatus.NOT_RUN, 0.0,
                                     "weights not installed"))
                continue
            output, run = runner.run(volume)
            runs.append(run)
            if output is not None:
                outputs[status.name] = output
            logger.info("model %s: %s in %.2f s", status.name, run.status.value, run.seconds)
        return outputs, runs

    def finish(self, outputs: Mapping[str, ModelOutput], runs: Sequence[ModelRun]
               ) -> EnsembleOutput:
        """Apply the heads, stack, and say which models ran (see ``run``)."""
        if not outputs:
            detail = "; ".join(f"{r.name}: {r.status.value}"
                               + (f" ({r.detail})" if r.detail else "") for r in runs)
            code = "no_model_installed" if all(r.status is RunStatus.NOT_RUN for r in runs) \
                else "all_models_failed"
            raise InferenceError(
                "no model with installed weights is enabled" if code == "no_model_installed"
                else f"every model failed on this study: {detail}", code=code)
        final: list[ModelOutput] = []
        with_heads: list[ModelRun] = []
        for run in runs:
            if run.name in outputs and run.name in self.heads:
                final.append(apply_heads(outputs[run.name], self.heads[run.name]))
                run = dataclasses.replace(run, heads=(self.heads[run.name].version,))
            elif run.name in outputs:
                final.append(outputs[run.name])
            with_heads.append(run)
        if not any(f.probability is not None for o in final for f in o.findings):
            raise InferenceError(
                "no model that ran scores any finding (a feature encoder needs a head trained "
                "with `ctnode train`)", code="no_findings_scored")
        seconds = {r.name: r.seconds for r in with_heads if r.status is not RunStatus.NOT_RUN}
        return EnsembleOutput(tuple(final), self.stacker.combine(final), seconds,
                              tuple(with_heads))

    def run(self, volume: HUVolume) -> EnsembleOutput:
        outputs, runs = self.run_models(volume)
        return self.finish(outputs, runs)

    def close(self) -> None:
        """Stop the models' worker processes (the node's shutdown; tests)."""
        for runner in self.runners:
            runner.close()


def load_heads(settings: Settings, feature_versions: Mapping[str, str]) -> dict[str, HeadSet]:
    """Installed head sets (checked) whose features match the model that would feed them.

    ``feature_versions``: model name -> the feature version that model gives.
    """
    directory = settings.weights.directory
    site = load_site_manifest(directory)
    heads: dict[str, HeadSet] = {}
    for name, feature_version in feature_versions.items():
        entry = heads_entry_name(name)
        if entry not in site:
            continue
        try:
            head_set = HeadSet.load(checked_file(entry, directory))
        except (WeightsError, ValueError, KeyError) as exc:
            logger.error("heads for %s not loaded: %s", name, exc)
            continue
        if head_set.feature_version != feature_version:
            logger.error("heads %s were trained on %s features %s, the model gives %s: "
                         "not loaded (retrain them)", head_set.version, name,
                         head_set.feature_version, feature_version)
            continue
        heads[name] = head_set
        logger.info("heads %s for %s: %s", head_set.version, name, ", ".join(head_set.findings))
    return heads


def load_stacker(settings: Settings) -> Stacker:
    """The trained stacker of the site manifest, checked; else the max rule."""
    directory = settings.weights.directory
    if STACKER_ENTRY in load_site_manifest(directory):
        try:
            return LightGBMStacker(checked_file(STACKER_ENTRY, directory))
        except (WeightsError, ValueError) as exc:
            logger.error("trained stacker not loaded, using the max rule: %s", exc)
    return MaxFindingStacker()


def build_ensemble(settings: Settings) -> Ensemble:
    """The models enabled in settings, their heads, and the stacker if one is installed."""
    runners: list[ModelRunner] = []
    for name in settings.inference.enabled_models:
        if name not in MODEL_REGISTRY:
            raise ValueError(
                f"unknown model {name!r} in settings.inference.enabled_models; "
                f"known: {', '.join(MODEL_REGISTRY)}"
            )
        spec = MODEL_REGISTRY[name]
        runners.append(make_runner(spec, load_model_class(spec), settings))
    stacker = load_stacker(settings)
    heads = load_heads(settings, {r.status.name: r.feature_version for r in runners})
    ensemble = Ensemble(runners, stacker, heads,
                        time_limit_s=settings.inference.model_time_limit_s)
    logger.info(
        "ensemble: models %s, heads %s, stacker %s", [r.status.name for r in runners],
        sorted(ensemble.heads), stacker.name
    )
    return ensemble

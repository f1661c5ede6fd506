"""The SCP door's job handler: spool folder → pipeline → SR + SC → destinations.

A job runs in two steps that survive a crash between them:

1. analysis: ``run_pipeline`` on the spool folder, then ``write_result_objects``
   into ``<results_dir>/job-<id>/``; ``outputs.json`` (written last, by rename)
   marks the step done, so a retried job does not analyse again;
2. delivery: every target (C-STORE destinations, optional STOW-RS) gets the
   objects; ``delivered.json`` records each target reached, so a retry sends
   only to those still missing.

A first attempt (including one after ``ctnode jobs retry``) starts afresh.

A pipeline Failure caused by the input (not a chest CT, no usable series) is
a result, not a job failure: the failure SR (if the output settings write
one) is delivered and the job's reason says why the analysis failed. A
Failure caused by the node itself (an internal or model error) is retried
like a delivery problem and, after the last attempt, leaves the job failed:
the PACS is not told "no result" because of our own fault. A destination
that cannot be reached raises RetryableJobError; the worker retries with
backoff up to the attempt limit.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydicom import dcmread

from ctnode.logging_setup import log_context
from jobs import Job, JobContext, JobOutcome, JobState, PermanentJobError, RetryableJobError
from scp_node.delivery import deliver, targets_from_settings
from scp_node.errors import DeliveryError

if TYPE_CHECKING:
    from ctnode.settings import Settings
    from inference.types import StudyResult

logger = logging.getLogger(__name__)

OUTPUTS = "outputs.json"
DELIVERED = "delivered.json"

Pipeline = Callable[[Path, "Settings"], "StudyResult"]


def _default_pipeline(source: Path, settings: Settings) -> StudyResult:
    from inference.pipeline import run_pipeline

    return run_pipeline(source, settings)


def results_root(settings: Settings) -> Path:
    """Where job outputs go: ``scp.results_dir`` or ``<node.work_dir>/scp_results``."""
    return settings.scp.results_dir or settings.node.work_dir / "scp_results"


class ScpJobHandler:
    """``handler(job, context) -> JobOutcome`` for jobs queued by the SCP (source "scp")."""

    def __init__(self, settings: Settings, pipeline: Pipeline = _default_pipeline) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.targets = targets_from_settings(settings.scp)
        self.root = results_root(settings)

    def __call__(self, job: Job, ctx: JobContext) -> JobOutcome:
        with log_context(job_id=job.id):
            return self._run(job, ctx)

    def _run(self, job: Job, ctx: JobContext) -> JobOutcome:
        study_dir = Path(job.locator)
        if not study_dir.is_dir():
            raise PermanentJobError(f"spool folder of study {job.study_uid} is gone")
        out_dir = self.root / f"job-{job.id}"
        if job.attempts <= 1:  # a first try (or an operator's retry) starts afresh
            for name in (OUTPUTS, DELIVERED):
                (out_dir / name).unlink(missing_ok=True)
        outputs = self._analysed(job, out_dir)
        if outputs is None:
            outputs = self._analyse(job, study_dir, out_dir)
        _check_lease(ctx, "analysis")
        files = [out_dir / name for name in outputs["objects"]]
        delivered = self._deliver(job, ctx, out_dir, files)
        summary = outputs["summary"]
        state = JobState.DELIVERED if self.targets else JobState.DONE
        reason = summary
        if self.targets:
            reason += f"; {len(files)} object(s) delivered to " + ", ".join(sorted(delivered))
        result = dict(outputs, delivered=delivered)
        return JobOutcome(state, reason, json.dumps(result, sort_keys=True))

    # -- step 1: analysis ------------------------------------------------------------------

    def _analysed(self, job: Job, out_dir: Path) -> dict[str, Any] | None:
        """The outputs of an earlier attempt at this very content, if complete."""
        try:
            outputs: dict[str, Any] = json.loads((out_dir / OUTPUTS).read_text("utf-8"))
        except (OSError, ValueError):
            return None
        if outputs.get("content_hash") != job.content_hash:
            return None
        if not all((out_dir / name).is_file() for name in outputs.get("objects", [])):
            return None
        logger.info("job %d: reusing the analysis of an earlier attempt", job.id)
        return outputs

    def _analyse(self, job: Job, study_dir: Path, out_dir: Path) -> dict[str, Any]:
        from inference.pipeline import INPUT_ERROR_CODES
        from sr_writer import MissingSourceError, OutputError, write_result_objects

        t0 = time.perf_counter()
        result = self.pipeline(study_dir, self.settings)
        analysis_s = time.perf_counter() - t0
        if not result.ok and result.error_code not in INPUT_ERROR_CODES:
            # The node failed, not the study: retry rather than tell the PACS "no result".
            raise RetryableJobError(f"analysis failed in the node ({result.error_code}): "
                                    f"{result.error}")
        source_paths = None if result.volume is not None else _some_source(study_dir)
        try:
            written = write_result_objects(
                result, out_dir, self.settings.output,
                source_paths=source_paths,
                finding_threshold=self.settings.inference.finding_threshold,
            )
        except MissingSourceError as exc:
            raise PermanentJobError(f"no readable instance to build results on: {exc}") from exc
        except OutputError as exc:
            raise PermanentJobError(f"results could not be written: {exc}") from exc
        if result.ok:
            summary = (f"Success: pathology {result.decision}, "
                       f"probability {result.probability:.3f}, series {result.series_uid}")
        else:
            summary = f"Failure ({result.error_code}): {result.error}"
        n_unreadable = result.selection.n_unreadable if result.selection else 0
        unreadable = list(result.selection.unreadable_reasons) if result.selection else []
        if n_unreadable:
            summary += f"; {n_unreadable} unreadable instance(s) ignored"
            # The reasons quote pydicom's exception text, which may quote element values:
            # they go to the job's result, not to the log (STYLE 26).
            logger.warning("job %d: %d unreadable instance(s) in study %s (reasons in the "
                           "job's result)", job.id, n_unreadable, job.study_uid)
        outputs: dict[str, Any] = {
            "content_hash": job.content_hash,
            "processing_status": result.status.value,
            "error_code": result.error_code,
            "summary": summary,
            "objects": [p.name for p in written.dicom_paths],
            "result_json": written.json_path.name,
            "analysis_seconds": round(analysis_s, 3),
            "n_unreadable": n_unreadable,
            "unreadable_reasons": unreadable,
        }
        _write_json_atomic(out_dir / OUTPUTS, outputs)
        logger.info("job %d: study %s analysed in %.1f s: %s", job.id, job.study_uid,
                    analysis_s, "Success" if result.ok else f"Failure ({result.error_code})")
        return outputs

    # -- step 2: delivery ------------------------------------------------------------------

    def _deliver(
        self, job: Job, ctx: JobContext, out_dir: Path, files: list[Path]
    ) -> dict[str, float]:
        record = out_dir / DELIVERED
        try:
            delivered: dict[str, float] = json.loads(record.read_text("utf-8"))
        except (OSError, ValueError):
            delivered = {}
        errors = []
        for target in self.targets:
            if target.key in delivered:
                continue
            _check_lease(ctx, "delivery")  # the worker that took the job over sends it
            try:
                deliver(files, target, self.settings.scp.ae_title,
                        self.settings.scp.delivery_timeout_s)
            except DeliveryError as exc:
                logger.warning("job %d: delivery failed: %s", job.id, exc)
                errors.append(str(exc))
                continue
            delivered[target.key] = time.time()
            _write_json_atomic(record, delivered)
        if errors:
            done = ", ".join(sorted(delivered)) or "none"
            raise RetryableJobError("; ".join(errors) + f" (delivered: {done})")
        return delivered


def _check_lease(ctx: JobContext, step: str) -> None:
    if ctx.lease_lost.is_set():
        raise RetryableJobError(f"lease lost during {step}")


def _some_source(study_dir: Path) -> list[Path]:
    """One readable instance of the study, for the failure SR's patient/study module."""
    for path in sorted(study_dir.glob("*/*.dcm")):
        try:
            ds = dcmread(path, stop_before_pixels=True)
        except Exception:  # corrupt instance: try the next one
            continue
        if "StudyInstanceUID" in ds and "SOPClassUID" in ds:
            return [path]
    return []


def _write_json_atomic(path: Path, data: object) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)

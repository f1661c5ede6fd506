"""The Orthanc worker: a ``jobs`` handler that reads a study from Orthanc and sends results on.

For each job the plugin queued (``source="orthanc"``, ``locator`` = Orthanc
study ID), the handler:

1. re-scans the study (same rules as the plugin) and stops if it changed since
   it was queued (the newer job analyses it);
2. downloads the analysed instances, runs ``inference.pipeline.run_pipeline``
   and writes SR + SC with ``sr_writer.write_result_objects``;
3. records a checkpoint (``written.json``) so a retry or a restarted worker
   skips straight to step 4 instead of analysing again;
4. uploads the objects to Orthanc (``POST /instances``: idempotent, the UIDs are
   deterministic) and forwards them to each destination modality
   (``/modalities/{id}/store``), leaving a marker per destination so a
   retried job never sends to a destination twice.

Transient failures (Orthanc or the PACS down) raise ``RetryableJobError``: the
shared worker loop puts the job back with exponential backoff and the reason
shows in ``/ai/jobs``. A study gone from Orthanc raises ``PermanentJobError``.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ctnode.settings import Settings
from inference.types import StudyResult
from jobs import (
    ForwardHandler,
    Handler,
    Job,
    JobContext,
    JobOutcome,
    JobQueue,
    JobState,
    LeaseLostError,
    PermanentJobError,
    RetryableJobError,
    SqliteJobQueue,
    WorkerPool,
    WorkerSettings,
    default_queue_path,
    make_queue,
)
from orthanc_plugin.client import OrthancClient
from orthanc_plugin.errors import OrthancRestError
from orthanc_plugin.host import JOB_SOURCE
from orthanc_plugin.study_scan import scan_study
from orthanc_plugin.types import PluginConfig
from sr_writer.errors import OutputError
from sr_writer.types import WrittenObjects

logger = logging.getLogger(__name__)

Pipeline = Callable[[Path, Settings], StudyResult]
ResultWriter = Callable[[StudyResult, Path, Settings, list[Path]], WrittenObjects]

CHECKPOINT_FILE = "written.json"
DOWNLOAD_THREADS = 4


def _default_pipeline(source: Path, settings: Settings) -> StudyResult:
    from inference.pipeline import run_pipeline

    return run_pipeline(source, settings)


def _default_writer(
    result: StudyResult, out_dir: Path, settings: Settings, input_files: list[Path]
) -> WrittenObjects:
    """SR + SC; a Failure without a volume takes patient/study from the received files."""
    from sr_writer import write_result_objects

    return write_result_objects(
        result, out_dir, settings.output,
        source_paths=None if result.volume is not None else input_files,
        finding_threshold=settings.inference.finding_threshold,
    )


def queue_path(settings: Settings) -> Path:
    """The queue file shared with the plugin (``CtNode.QueuePath`` in orthanc.json)."""
    return settings.orthanc.queue_path or default_queue_path(settings.node.work_dir)


def results_dir(settings: Settings) -> Path:
    return settings.orthanc.results_dir or settings.node.work_dir / "orthanc_results"


def worker_settings(settings: Settings) -> WorkerSettings:
    o = settings.orthanc
    return WorkerSettings(
        lease_seconds=o.job_lease_s,
        poll_seconds=o.job_poll_s,
        max_attempts=o.max_attempts,
        backoff_seconds=o.backoff_s,
        backoff_max_seconds=o.backoff_max_s,
        sources=(JOB_SOURCE,),
    )


def make_client(settings: Settings, url: str | None = None) -> OrthancClient:
    o = settings.orthanc
    return OrthancClient(
        url or o.url,
        username=o.username,
        password=o.password.get_secret_value() if o.password else None,
        timeout_seconds=o.http_timeout_s,
    )


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    tmp.replace(path)


class OrthancJobHandler:
    """``handler(job, ctx) -> JobOutcome`` for the shared ``jobs`` worker loop."""

    def __init__(
        self,
        client: OrthancClient,
        settings: Settings,
        *,
        pipeline: Pipeline = _default_pipeline,
        writer: ResultWriter = _default_writer,
        job_queue: JobQueue | None = None,
    ) -> None:
        """``job_queue``: lets pruning spare the folders of jobs not finished yet."""
        self._client = client
        self._settings = settings
        self._pipeline = pipeline
        self._writer = writer
        self._queue = job_queue
        self._results_dir = results_dir(settings)
        self._scan_config = PluginConfig(
            queue_path=queue_path(settings),
            own_manufacturer=settings.output.manufacturer,
            trigger_modalities=tuple(m.upper() for m in settings.orthanc.trigger_modalities),
        )

    def __call__(self, job: Job, ctx: JobContext) -> JobOutcome:
        job_dir = self._results_dir / f"job-{job.id}-{job.content_hash[:16]}"
        job_dir.mkdir(parents=True, exist_ok=True)
        checkpoint = self._load_checkpoint(job_dir, job)
        if checkpoint is None:
            checkpoint = self._analyse(job, ctx, job_dir)
            if checkpoint.get("superseded"):
                self._cleanup(job_dir)
                return JobOutcome(JobState.DONE, checkpoint["superseded"], json.dumps(checkpoint))
        else:
            logger.info("job %d: results already written, resuming at upload", job.id)
        self._check_lease(job, ctx)
        outcome = self._deliver(job, ctx, job_dir, checkpoint)
        if self._settings.orthanc.results_retention_h == 0:
            self._cleanup(job_dir)
        self._prune(keep=job_dir)
        return outcome

    # -- steps ---------------------------------------------------------------------------

    def _load_checkpoint(self, job_dir: Path, job: Job) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(
                (job_dir / CHECKPOINT_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):  # none yet, or cut short (power loss): analyse again
            return None
        if data.get("content_hash") != job.content_hash:
            return None
        if not all((job_dir / f).exists() for f in data.get("files", [])):
            return None
        return data

    def _check_lease(self, job: Job, ctx: JobContext) -> None:
        if ctx.lease_lost.is_set():
            raise LeaseLostError(f"job {job.id}: lease lost; another worker has it")

    def _orthanc_call(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except OrthancRestError as exc:
            if exc.status == 404:
                raise PermanentJobError(f"{what}: not found in Orthanc ({exc})") from exc
            raise RetryableJobError(f"{what}: Orthanc did not answer: {exc}") from exc

    def _analyse(self, job: Job, ctx: JobContext, job_dir: Path) -> dict[str, Any]:
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        scan = self._orthanc_call(
            f"study {job.locator}",
            lambda: scan_study(job.locator, self._client.get_json, self._scan_config),
        )
        if scan.content_hash != job.content_hash or scan.skip_reason:
            reason = (
                f"superseded: the study changed since it was queued ({scan.n_instances} "
                "instances now); the newer job analyses it"
                if not scan.skip_reason else f"nothing to analyse any more: {scan.skip_reason}"
            )
            logger.info("job %d (study %s): %s", job.id, job.study_uid, reason)
            return {"superseded": reason, "content_hash": job.content_hash}
        input_dir = job_dir / "input"
        if input_dir.exists():
            shutil.rmtree(input_dir)
        input_dir.mkdir(parents=True)
        self._download(job, scan.instance_ids, input_dir)
        timings["transfer_s"] = time.perf_counter() - t0
        self._check_lease(job, ctx)

        t1 = time.perf_counter()
        result = self._pipeline(input_dir, self._settings)
        timings["inference_s"] = time.perf_counter() - t1
        self._check_lease(job, ctx)

        t2 = time.perf_counter()
        objects_dir = job_dir / "objects"
        if objects_dir.exists():
            shutil.rmtree(objects_dir)
        objects_dir.mkdir()
        try:
            written = self._writer(
                result, objects_dir, self._settings, sorted(input_dir.glob("*.dcm"))
            )
        except OutputError as exc:
            raise PermanentJobError(f"results could not be written as DICOM: {exc}") from exc
        timings["write_s"] = time.perf_counter() - t2
        shutil.rmtree(input_dir, ignore_errors=True)

        summary = {
            "processing_status": result.status.value,
            "error_code": result.error_code,
            "error": result.error,
            "probability_of_pathology": result.probability,
            "pathology": result.decision,
            "top_pathologies": list(result.top_pathologies),
            "series_uid": result.series_uid,
        }
        checkpoint: dict[str, Any] = {
            "content_hash": job.content_hash,
            "study_uid": job.study_uid,
            "result": summary,
            "files": [str(p.relative_to(job_dir)) for p in written.dicom_paths],
            "sr_written": written.sr_path is not None,
            "n_sc": len(written.sc_paths),
            "timings": timings,
            "stage_seconds": dict(result.stage_seconds),
        }
        _write_json_atomic(job_dir / CHECKPOINT_FILE, checkpoint)
        logger.info(
            "job %d (study %s): %s, %d objects written (transfer %.1f s, inference %.1f s)",
            job.id, job.study_uid, result.status.value, len(checkpoint["files"]),
            timings["transfer_s"], timings["inference_s"],
        )
        return checkpoint

    def _download(self, job: Job, instance_ids: tuple[str, ...], input_dir: Path) -> None:
        def fetch(instance_id: str) -> None:
            self._orthanc_call(
                f"instance {instance_id}",
                lambda: self._client.download_instance(
                    instance_id, input_dir / f"{instance_id}.dcm"
                ),
            )

        with ThreadPoolExecutor(DOWNLOAD_THREADS, thread_name_prefix=f"dl-{job.id}") as pool:
            list(pool.map(fetch, instance_ids))

    def _deliver(
        self, job: Job, ctx: JobContext, job_dir: Path, checkpoint: dict[str, Any]
    ) -> JobOutcome:
        timings = checkpoint.setdefault("timings", {})
        t0 = time.perf_counter()
        ids = [self._upload(job_dir / name) for name in checkpoint["files"]]
        checkpoint["orthanc_instances"] = ids
        timings["upload_s"] = time.perf_counter() - t0
        result = checkpoint["result"]
        what = f"{'SR + ' if checkpoint['sr_written'] else ''}{checkpoint['n_sc']} SC"
        status = (
            "Success" if result["processing_status"] == "Success"
            else f"Failure ({result['error_code']}: {result['error']})"
        )
        destinations = list(self._settings.orthanc.destinations)
        delivered: list[str] = []
        t1 = time.perf_counter()
        for dest in destinations if ids else []:
            marker = job_dir / f"delivered-{dest}.json"
            if not marker.exists():
                self._check_lease(job, ctx)
                try:
                    self._client.store_to_modality(
                        dest, ids, timeout=self._settings.orthanc.delivery_timeout_s
                    )
                except OrthancRestError as exc:
                    raise RetryableJobError(f"delivery to {dest} failed: {exc}") from exc
                _write_json_atomic(marker, {"instances": ids, "at": time.time()})
                logger.info("job %d: %s delivered to %s", job.id, what, dest)
            delivered.append(dest)
        timings["delivery_s"] = time.perf_counter() - t1
        checkpoint["delivered_to"] = delivered
        body = json.dumps(checkpoint, sort_keys=True)
        if not ids:
            return JobOutcome(JobState.DONE, f"{status}; no DICOM result written", body)
        if delivered:
            return JobOutcome(
                JobState.DELIVERED, f"{status}; {what} sent to {', '.join(delivered)}", body
            )
        return JobOutcome(JobState.DONE, f"{status}; {what} stored in Orthanc", body)

    def _upload(self, path: Path) -> str:
        data = path.read_bytes()
        return str(self._orthanc_call(
            "upload to Orthanc", lambda: self._client.upload_instance(data)))

    def _cleanup(self, job_dir: Path) -> None:
        shutil.rmtree(job_dir, ignore_errors=True)

    def _prune(self, keep: Path) -> None:
        """Remove job folders untouched for longer than the retention time.

        Housekeeping: a failure is logged, never fails the job just delivered.
        """
        horizon = time.time() - self._settings.orthanc.results_retention_h * 3600.0
        try:
            for job_dir in self._results_dir.glob("job-*"):
                try:
                    if (job_dir == keep or job_dir.stat().st_mtime >= horizon
                            or self._unfinished(job_dir)):
                        continue
                except FileNotFoundError:  # another worker pruned it
                    continue
                self._cleanup(job_dir)
        except Exception:
            logger.exception("pruning %s failed; will try after the next job", self._results_dir)

    def _unfinished(self, job_dir: Path) -> bool:
        """The folder's job is queued (awaiting a retry) or running in another worker.

        Its delivery markers are what keeps a retry from sending twice, and its
        input is in use: with a short retention, pruning by age alone would take them.
        """
        if self._queue is None:
            return False
        try:
            job_id = int(job_dir.name.split("-")[1])
        except (IndexError, ValueError):
            return False
        job = self._queue.get(job_id)
        return job is not None and not job.state.is_final


def run_orthanc_worker(
    settings: Settings, stop_event: threading.Event, url: str | None = None
) -> None:
    """Run ``settings.orthanc.workers`` workers until ``stop_event`` is set."""
    client = make_client(settings, url)
    try:
        try:
            client.system()
        except OrthancRestError as exc:
            logger.warning("Orthanc at %s not answering yet (%s); jobs will wait",
                           client.base_url, exc)
        job_queue = SqliteJobQueue(queue_path(settings))  # filled by the plugin
        handler: Handler = OrthancJobHandler(client, settings, job_queue=job_queue)
        if settings.jobs.backend == "celery":  # scaled out: forward, Celery workers analyse
            handler = ForwardHandler(make_queue(settings))
        pool = WorkerPool(job_queue, handler, worker_settings(settings),
                          size=settings.orthanc.workers)
        logger.info("Orthanc worker: %d worker(s), queue %s, Orthanc %s, destinations %s",
                    settings.orthanc.workers, job_queue.path, client.base_url,
                    settings.orthanc.destinations or "none")
        pool.start()
        stop_event.wait()
        pool.stop()
    finally:
        client.close()

"""Prometheus metrics of the node: HTTP requests, pipeline results and stages, jobs, models.

Each app owns a ``Metrics`` with its own registry (no process-global state,
so two apps in one test process do not share counters). The app wires three
things (see ``api.app.create_app``):

* ``MetricsMiddleware`` (pure ASGI): counts requests by route template,
  method and status, times them, and tags the request's log lines with a
  request ID (the client's ``X-Request-ID`` when sane, else a new one),
  echoed in the response's ``X-Request-ID`` header;
* ``metrics_router(metrics)``: ``GET /metrics`` in the Prometheus text format;
* ``metrics.observe_result(result)`` after every pipeline run.

Jobs by state and model load status are read at scrape time from callables,
so they are never stale. Labels are bounded sets (route templates, states,
error codes, model names): no UIDs, no file names, no patient data.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ctnode.logging_setup import log_context, new_request_id
from ctnode.settings import Settings
from inference.types import ModelStatus, StudyResult

logger = logging.getLogger(__name__)

NAMESPACE = "ctnode"
REQUEST_ID_HEADER = "x-request-id"
UNMATCHED_ROUTE = "<unmatched>"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

# Seconds: HTTP requests span a 1 ms /health to a many-minute upload + analysis.
REQUEST_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
# Seconds: a pipeline stage spans milliseconds (decide) to minutes (a model on CPU).
STAGE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

JobCounts = Callable[[], Mapping[str, int]]
QueueLengths = Callable[[], Mapping[str, int]]
ModelStatuses = Callable[[], Iterable[ModelStatus]]


class Metrics:
    """The node's metrics on one registry."""

    def __init__(
        self,
        *,
        jobs_counts: JobCounts | None = None,
        model_statuses: ModelStatuses | None = None,
        registry: CollectorRegistry | None = None,
        queue_lengths: QueueLengths | None = None,
    ) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "http_requests", "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"], namespace=NAMESPACE, registry=self.registry)
        self.request_seconds = Histogram(
            "http_request_duration_seconds", "Time from request to the end of the answer.",
            ["route", "method"], namespace=NAMESPACE, buckets=REQUEST_BUCKETS,
            registry=self.registry)
        self.in_progress = Gauge(
            "http_requests_in_progress", "HTTP requests being handled now.",
            namespace=NAMESPACE, registry=self.registry)
        self.results = Counter(
            "pipeline_results", "Pipeline runs by processing_status and error_code "
            "('' on Success).", ["status", "error_code"], namespace=NAMESPACE,
            registry=self.registry)
        self.study_seconds = Histogram(
            "pipeline_duration_seconds", "time_of_processing of each pipeline run.",
            namespace=NAMESPACE, buckets=STAGE_BUCKETS, registry=self.registry)
        self.stage_seconds = Histogram(
            "pipeline_stage_duration_seconds", "Duration of each pipeline stage "
            "(StudyResult.stage_seconds).", ["stage"], namespace=NAMESPACE,
            buckets=STAGE_BUCKETS, registry=self.registry)
        self.last_failure = Gauge(
            "pipeline_last_failure_timestamp_seconds", "Unix time of the last Failure, by "
            "error_code.", ["error_code"], namespace=NAMESPACE, registry=self.registry)
        self._sources = _SourcesCollector(jobs_counts, model_statuses, queue_lengths)
        self.registry.register(self._sources)

    def observe_result(self, result: StudyResult) -> None:
        """Count one pipeline run and record its stage durations."""
        code = "" if result.ok else (result.error_code or "unknown")
        self.results.labels(status=result.status.value, error_code=code).inc()
        self.study_seconds.observe(max(0.0, result.seconds))
        for stage, seconds in result.stage_seconds.items():
            self.stage_seconds.labels(stage=stage).observe(max(0.0, seconds))
        if not result.ok:
            self.last_failure.labels(error_code=code).set(time.time())

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route=route, method=method, status=str(status)).inc()
        self.request_seconds.labels(route=route, method=method).observe(seconds)

    def render(self) -> bytes:
        """The registry in the Prometheus text exposition format."""
        return generate_latest(self.registry)


class _SourcesCollector(Collector):
    """Jobs by state and model load status, read from callables at scrape time.

    A failing source is logged and skipped: a broken queue must not also break
    the metrics that would show it.
    """

    def __init__(self, jobs_counts: JobCounts | None, model_statuses: ModelStatuses | None,
                 queue_lengths: QueueLengths | None = None) -> None:
        self.jobs_counts = jobs_counts
        self.model_statuses = model_statuses
        self.queue_lengths = queue_lengths

    def describe(self) -> list[Metric]:
        return []  # families vary with the sources; describe nothing (registry accepts it)

    def collect(self) -> Iterator[Metric]:
        if self.jobs_counts is not None:
            try:
                counts = dict(self.jobs_counts())
            except Exception:  # noqa: BLE001
                logger.exception("metrics: the jobs source failed")
            else:
                family = GaugeMetricFamily(f"{NAMESPACE}_jobs", "Jobs in the queue by state.",
                                           labels=["state"])
                for state, count in sorted(counts.items()):
                    family.add_metric([str(state)], float(count))
                yield family
        if self.queue_lengths is not None:
            try:
                lengths = dict(self.queue_lengths())
            except Exception:  # noqa: BLE001
                logger.exception("metrics: the queue-length source failed")
            else:
                family = GaugeMetricFamily(
                    f"{NAMESPACE}_queue_length", "Jobs waiting, per Celery queue (messages "
                    "not yet taken by a worker) or, on SQLite, per door.", labels=["queue"])
                for name, count in sorted(lengths.items()):
                    family.add_metric([str(name)], float(count))
                yield family
        if self.model_statuses is not None:
            try:
                statuses = list(self.model_statuses())
            except Exception:  # noqa: BLE001
                logger.exception("metrics: the models source failed")
            else:
                family = GaugeMetricFamily(
                    f"{NAMESPACE}_model_weights_installed",
                    "1 when the model's weights are installed and it runs, 0 when it is "
                    "reported as not installed.", labels=["model", "version"])
                for status in statuses:
                    family.add_metric([status.name, status.version],
                                      1.0 if status.weights_installed else 0.0)
                yield family


def metrics_router(metrics: Metrics) -> APIRouter:
    """``GET /metrics`` for Prometheus scrapers; with ``api.api_key`` set it needs the key
    (``X-API-Key`` or ``Authorization: Bearer``, checked by ``api.guard``), as every route
    but /health and the docs does."""
    router = APIRouter(tags=["operations"])

    @router.get(
        "/metrics",
        response_class=Response,
        summary="Prometheus metrics",
        description="Requests, pipeline results and stage durations, jobs by state and "
        "model load status, in the Prometheus text exposition format (version 0.0.4).",
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
    )
    def get_metrics() -> Response:
        return Response(content=metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return router


class MetricsMiddleware:
    """Pure ASGI middleware: request ID in the log context and the response, and metrics.

    Pure ASGI (not BaseHTTPMiddleware) so that the contextvar set here is seen
    by the endpoint and streaming answers are not buffered.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id, given = _request_id_from(scope)
        if not given:  # inner layers (and the app's own request-ID code) see the same ID
            scope["headers"] = [*[(k, v) for k, v in scope.get("headers", [])
                                  if k != REQUEST_ID_HEADER.encode()],
                                (REQUEST_ID_HEADER.encode(), request_id.encode())]
        status = 500
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
                if not any(k.lower() == REQUEST_ID_HEADER.encode() for k, _ in headers):
                    headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                    message = {**message, "headers": headers}
            await send(message)

        self.metrics.in_progress.inc()
        try:
            with log_context(request_id=request_id):
                scope.setdefault("state", {})["request_id"] = request_id
                await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.in_progress.dec()
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED_ROUTE
            self.metrics.observe_request(template, scope.get("method", "?"), status,
                                         time.perf_counter() - start)


def _request_id_from(scope: Scope) -> tuple[str, bool]:
    """(ID, whether the client sent it): the client's when sane, else a new one."""
    for name, value in scope.get("headers", []):
        if name == REQUEST_ID_HEADER.encode():
            text = value.decode("latin-1")
            if _SANE_REQUEST_ID.match(text):
                return text, True
    return new_request_id(), False


def queue_counts(path: Path) -> JobCounts:
    """Jobs by state from the node's shared SQLite queue at ``path``, once it exists.

    The API never creates the queue file just to report on it: before any door
    has made one, the source reports no jobs.
    """
    opened: list[Any] = []

    def counts() -> Mapping[str, int]:
        if not path.exists():
            return {}
        if not opened:
            from jobs import SqliteJobQueue

            opened.append(SqliteJobQueue(path))
        return dict(opened[0].counts())

    return counts


def job_sources(settings: Settings) -> tuple[JobCounts, QueueLengths]:
    """Jobs by state and waiting per queue, from the job back end the settings choose.

    SQLite: the node's queue file, never created just to report on it.
    Celery: the job records and queues in Redis, connected on the first scrape
    (a Redis that is down fails that scrape's job families only).
    """
    from jobs import default_queue_path, make_queue

    path = default_queue_path(settings.node.work_dir)
    opened: list[Any] = []

    def queue() -> Any:
        if not opened:
            opened.append(make_queue(settings))
        return opened[0]

    def counts() -> Mapping[str, int]:
        if settings.jobs.backend != "celery" and not path.exists():
            return {}
        return dict(queue().counts())

    def lengths() -> Mapping[str, int]:
        if settings.jobs.backend != "celery" and not path.exists():
            return {}
        return dict(queue().queue_lengths())

    return counts, lengths


def parse_metrics_text(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples by name from a /metrics text (for ``ctnode status`` and tests)."""
    from prometheus_client.parser import text_string_to_metric_families

    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


__all__ = ["Metrics", "MetricsMiddleware", "job_sources", "metrics_router",
           "parse_metrics_text", "queue_counts"]

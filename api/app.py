"""The REST API: a thin door, compatible with the seed "CT-CLIP Inference API".

Routes: ``GET /health``, ``POST /predict`` (ZIP of DICOM), ``POST /predict_nifti``
(.nii / .nii.gz). Every answer to a predict call, success or not, has the seed's
keys (see ``api/schemas.py``); bad input is 4xx, a fault of the node 5xx.

The door only receives the upload, hands it to ``inference.run_pipeline`` and
translates the result; it holds no inference logic. Limits that must act
before a body is read (key, size, admission with 503 + Retry-After, read
timeout) live in ``api.guard``; docs/security.md lists them.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from api.guard import Admission, RequestGuard
from api.metrics import Metrics, MetricsMiddleware, job_sources, metrics_router
from api.schemas import FailureResponse, HealthResponse, PredictionResponse
from api.uploads import UploadRejected, save_upload
from ctnode import __version__
from ctnode.settings import Settings, get_settings
from inference.findings import FINDING_KEYS, FINDINGS
from inference.pipeline import INPUT_ERROR_CODES, get_ensemble, run_pipeline
from inference.types import ProcessingStatus, StudyResult

logger = logging.getLogger(__name__)

DISCLAIMER = "Decision support only, not a diagnosis: a radiologist must read the study."

_FAILURE_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": FailureResponse, "description": text}
    for code, text in {
        400: "The upload is malformed or unsafe (not a ZIP, ZIP bomb, path traversal).",
        401: "Missing or wrong X-API-Key.",
        408: "The request body stalled longer than api.body_read_timeout_s.",
        413: "The upload exceeds the size limit, or the study the memory budget.",
        415: "The upload is not of the expected type.",
        422: "The input was read but holds no analysable chest CT (the error says why).",
        500: "The node failed; the log has the details.",
        503: "The node is busy (every analysis slot and waiting place taken): retry after "
             "the Retry-After header's seconds.",
    }.items()
}
TEMP_PREFIX = "ctnode-api-"


def _upload_body(description: str) -> dict[str, Any]:
    """The OpenAPI request body of a predict route: multipart/form-data with ``file``."""
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary",
                                "description": description}}}}}}}


def prepare_temp_dir(folder: Path) -> None:
    """Create the API's temp folder and remove request folders a killed run left there."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:  # the requests will answer 500 and say so; /health still answers
        logger.exception("the API's temporary folder cannot be created")
        return
    stale = [p for p in folder.glob(f"{TEMP_PREFIX}*") if p.is_dir()]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    if stale:
        logger.info("removed %d request folder(s) left by a previous run", len(stale))


def failure_body(message: str, code: str, seconds: float, request_id: str) -> dict[str, Any]:
    """A seed-shaped Failure body for errors raised before the pipeline ran."""
    result = StudyResult(
        status=ProcessingStatus.FAILURE, error=message, error_code=code, seconds=seconds
    )
    return result.to_json(request_id=request_id)


def http_status(result: StudyResult) -> int:
    if result.ok:
        return 200
    if result.error_code == "unsafe_archive":
        return 400
    if result.error_code == "study_too_large":
        return 413
    if result.error_code in INPUT_ERROR_CODES:
        return 422
    return 500


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API for ``settings`` (default: the process settings)."""
    settings = settings or get_settings()
    limiter = asyncio.Semaphore(settings.api.max_concurrent_jobs)
    admission = Admission(settings.api.max_concurrent_jobs, settings.api.max_waiting_requests)
    temp_dir = settings.node.server_temp_dir()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(prepare_temp_dir, temp_dir)
        # Load the models once, at start-up, not on the first request.
        await run_in_threadpool(get_ensemble, settings)
        yield

    app = FastAPI(
        title="ctnode chest CT AI node",
        version=__version__,
        description=(
            "Chest CT analysis, compatible with the CT-CLIP Inference API. "
            + DISCLAIMER
            + " Send a ZIP of one CT study's DICOM files to /predict, or one NIfTI "
            "volume to /predict_nifti."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.admission = admission
    # Observability (issue 9): /metrics, request metrics + request-ID log context.
    jobs_counts, queue_lengths = job_sources(settings)  # SQLite or Celery
    metrics = Metrics(model_statuses=lambda: get_ensemble(settings).statuses,
                      jobs_counts=jobs_counts, queue_lengths=queue_lengths)
    app.state.metrics = metrics
    app.include_router(metrics_router(metrics))

    @app.middleware("http")
    async def start_clock(request: Request, call_next: Any) -> Any:
        # The request ID (sanitised, echoed in the answer) is MetricsMiddleware's job.
        request.state.t0 = time.perf_counter()
        return await call_next(request)

    def _elapsed(request: Request) -> float:
        return time.perf_counter() - getattr(request.state, "t0", time.perf_counter())

    def _rid(request: Request) -> str:
        return getattr(request.state, "request_id", uuid.uuid4().hex[:16])

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if not request.url.path.startswith("/predict"):
            # headers kept: a 405 must say which methods are allowed (found by fuzzing)
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code,
                                headers=exc.headers)
        body = failure_body(str(exc.detail), f"http_{exc.status_code}", _elapsed(request),
                            _rid(request))
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = ", ".join(".".join(str(p) for p in e.get("loc", ())) for e in exc.errors())
        message = (
            "the request must be multipart/form-data with the study in a field named 'file'"
            f" (problem with: {fields or 'body'})"
        )
        return JSONResponse(
            failure_body(message, "bad_request", _elapsed(request), _rid(request)),
            status_code=422,
        )

    @app.get("/health", response_model=HealthResponse, summary="Is the node up, what can it do")
    async def health() -> dict[str, Any]:
        ensemble = await run_in_threadpool(get_ensemble, settings)
        statuses = ensemble.statuses
        assessed = {k for s in statuses if s.weights_installed for k in s.findings}
        return {
            "status": "healthy",
            "version": __version__,
            "models": [s.to_json() for s in statuses],
            "stacker": ensemble.stacker.name,
            "detects": [FINDINGS[k].display_name for k in FINDING_KEYS if k in assessed],
            "does_not_assess": [
                FINDINGS[k].display_name for k in FINDING_KEYS if k not in assessed
            ],
            "disclaimer": DISCLAIMER,
        }

    async def _predict(request: Request, kind: str) -> JSONResponse:
        rid = _rid(request)
        try:
            temp_dir.mkdir(parents=True, exist_ok=True)
            workdir = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=temp_dir))
        except OSError:  # temp folder missing or full: still a seed-shaped answer
            logger.exception("request %s: cannot create a temporary folder", rid)
            return JSONResponse(failure_body(
                "the node cannot store the upload (temporary folder unavailable); the node's "
                "log has the details", "internal_error", _elapsed(request), rid), status_code=500)
        try:
            try:
                path = await save_upload(request, workdir, kind, settings.api)
            except OSError:  # disk full while receiving: the node's fault, not the client's
                logger.exception("request %s: cannot store the upload", rid)
                return JSONResponse(failure_body(
                    "the node cannot store the upload; the node's log has the details",
                    "internal_error", _elapsed(request), rid), status_code=500)
            except UploadRejected as exc:
                logger.info("request %s: upload rejected (%s)", rid, exc.code)
                return JSONResponse(
                    failure_body(str(exc), exc.code, _elapsed(request), rid),
                    status_code=exc.http_status,
                )
            async with limiter:
                result = await run_in_threadpool(
                    run_pipeline, path, settings, work_dir=workdir / "work"
                )
            metrics.observe_result(result)
            admission.observe(result.seconds)
            body = result.to_json(request_id=rid)
            # time_of_processing is the study's own processing time; the request's
            # wall time (upload, waiting behind other studies) is reported beside it.
            body["request_seconds"] = round(_elapsed(request), 3)
            logger.info("request %s: %s, processing %.2f s, request %.2f s", rid,
                        result.status.value, body["time_of_processing"], body["request_seconds"])
            return JSONResponse(body, status_code=http_status(result))
        finally:
            await run_in_threadpool(shutil.rmtree, workdir, True)

    @app.post(
        "/predict",
        summary="Analyse one CT study sent as a ZIP of DICOM files",
        response_model=PredictionResponse,
        responses=_FAILURE_RESPONSES,
        openapi_extra=_upload_body("ZIP of one study's DICOM files (nested folders, DICOMDIR, "
                                   "no extensions: all fine)"),
    )
    async def predict(request: Request) -> JSONResponse:
        return await _predict(request, "zip")

    @app.post(
        "/predict_nifti",
        summary="Analyse one CT volume sent as NIfTI (.nii or .nii.gz), in HU",
        response_model=PredictionResponse,
        responses=_FAILURE_RESPONSES,
        openapi_extra=_upload_body("One CT volume in HU, .nii or .nii.gz"),
    )
    async def predict_nifti(request: Request) -> JSONResponse:
        return await _predict(request, "nifti")

    def guard_failure(message: str, code: str, scope: Scope) -> dict[str, Any]:
        rid = scope.get("state", {}).get("request_id") or uuid.uuid4().hex[:16]
        return failure_body(message, code, 0.0, rid)

    # Inner to outer: the guard answers before any body is read; metrics see every answer.
    app.add_middleware(RequestGuard, limits=settings.api, admission=admission,
                       failure_body=guard_failure)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: sees every answer
    return app

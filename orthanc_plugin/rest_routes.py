"""The node's REST routes inside Orthanc: ``/ai/jobs`` (list, status, retry) and ``/ai/health``.

Standard library only. Each handler takes the queue and the parsed request and
returns a :class:`RestAnswer`; ``plugin.py`` only translates Orthanc's
``(output, uri, **request)`` to these calls. Orthanc's own authentication
(``AuthenticationEnabled`` + ``RegisteredUsers``) guards them like every route.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jobs.queue import JobQueue
from jobs.types import Job, JobState

logger = logging.getLogger(__name__)

MAX_LIST_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class RestAnswer:
    """HTTP status and JSON body of one answer."""

    status: int
    body: Any

    def encoded(self) -> bytes:
        return json.dumps(self.body, indent=1, sort_keys=True).encode("utf-8")


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def job_to_json(job: Job) -> dict[str, Any]:
    """A job as the operator sees it (UIDs and reasons only, no patient data)."""
    try:
        result = json.loads(job.result_json) if job.result_json else None
    except ValueError:
        result = {"unparsed": job.result_json[:200]}
    return {
        "id": job.id,
        "study_uid": job.study_uid,
        "orthanc_study": job.locator,
        "source": job.source,
        "state": job.state.value,
        "attempts": job.attempts,
        "n_instances": job.n_instances,
        "content_hash": job.content_hash,
        "reason": job.reason,
        "worker": job.worker,
        "created_at": _iso(job.created_at),
        "updated_at": _iso(job.updated_at),
        "created_ts": round(job.created_at, 3),
        "updated_ts": round(job.updated_at, 3),
        "result": result,
    }


def list_jobs(queue: JobQueue, query: Mapping[str, str]) -> RestAnswer:
    """``GET /ai/jobs?state=failed&limit=50``: newest first."""
    state: JobState | None = None
    if query.get("state"):
        try:
            state = JobState(query["state"])
        except ValueError:
            allowed = ", ".join(s.value for s in JobState)
            return RestAnswer(400, {"error": f"unknown state {query['state']!r}; use {allowed}"})
    try:
        limit = int(query.get("limit", "100"))
    except ValueError:
        return RestAnswer(400, {"error": "limit must be an integer"})
    if not 1 <= limit <= MAX_LIST_LIMIT:
        return RestAnswer(400, {"error": f"limit must be in 1..{MAX_LIST_LIMIT}"})
    return RestAnswer(200, [job_to_json(j) for j in queue.list(state=state, limit=limit)])


def get_job(queue: JobQueue, job_id: int) -> RestAnswer:
    """``GET /ai/jobs/{id}``."""
    job = queue.get(job_id)
    if job is None:
        return RestAnswer(404, {"error": f"no job {job_id}"})
    return RestAnswer(200, job_to_json(job))


def retry_job(queue: JobQueue, job_id: int) -> RestAnswer:
    """``POST /ai/jobs/{id}/retry``: a finished job goes back to the queue.

    A queued or running job is refused with 409: it is already on its way.
    """
    job = queue.get(job_id)
    if job is None:
        return RestAnswer(404, {"error": f"no job {job_id}"})
    if job.state in (JobState.QUEUED, JobState.RUNNING):
        return RestAnswer(409, {"error": f"job {job_id} is {job.state.value}, not finished"})
    job = queue.retry(job_id)
    logger.info("job %s (study %s) put back in the queue by REST", job_id, job.study_uid)
    return RestAnswer(200, job_to_json(job))


def health(queue: JobQueue, plugin_state: Callable[[], dict[str, Any]]) -> RestAnswer:
    """``GET /ai/health``: queue counts and the plugin's own state."""
    try:
        counts = queue.counts()
    except Exception as exc:  # a broken queue is exactly what health must report
        logger.exception("job queue unreadable")
        return RestAnswer(503, {"status": "error", "error": f"job queue unreadable: {exc}"})
    body: dict[str, Any] = {"status": "ok", "jobs": counts}
    body.update(plugin_state())
    return RestAnswer(200, body)

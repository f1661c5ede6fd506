"""The job-queue interface: one contract, two back ends (SQLite embedded, Celery + Redis)."""

from __future__ import annotations

import abc
import builtins
from collections.abc import Collection

from jobs.types import Job, JobState


def check_identity(study_uid: str, source: str, content_hash: str) -> None:
    """Refuse a job without the (study_uid, content_hash) key or a door: ValueError."""
    if not study_uid:
        raise ValueError("study_uid must not be empty")
    if not content_hash:
        raise ValueError("content_hash must not be empty")
    if not source:
        raise ValueError("source must not be empty")


class JobQueue(abc.ABC):
    """A persistent queue of studies to analyse, safe for several workers at once.

    Implementations guarantee: a job is claimed by one worker at a time; a job
    whose worker died (lease expired) becomes claimable again; enqueueing the
    same (study_uid, content_hash) twice is a no-op returning the existing job.

    Errors (``jobs.errors``): JobNotFoundError for an unknown id, JobStateError
    for an operation the job's state forbids, LeaseLostError when a worker acts
    on a job it no longer owns.
    """

    #: True when a broker pushes jobs to its own workers (Celery): nothing is claimed
    #: by polling, so ``WorkerPool`` starts no threads on such a queue.
    push_based: bool = False

    def queue_lengths(self) -> dict[str, int]:
        """Jobs waiting per queue, for the operator's views (none by default)."""
        return {}

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release connections held by the queue (none by default)."""

    @abc.abstractmethod
    def enqueue(
        self, study_uid: str, source: str, locator: str, content_hash: str, n_instances: int = 0
    ) -> tuple[Job, bool]:
        """Add a job; returns (job, created). ``created`` is False for a duplicate."""

    @abc.abstractmethod
    def claim(
        self,
        worker: str,
        lease_seconds: float,
        sources: Collection[str] | None = None,
        max_attempts: int | None = None,
    ) -> Job | None:
        """Take the oldest claimable job (queued and due, or running with an expired lease).

        ``sources`` restricts the claim to jobs of these doors (a SCP worker must
        not take Orthanc jobs). With ``max_attempts``, a job whose lease expired
        after that many tries (its worker keeps dying on it) is failed, not retaken.
        The claim counts as an attempt.
        """

    @abc.abstractmethod
    def renew(self, job_id: int, worker: str, lease_seconds: float) -> bool:
        """Extend the lease of a running job; False if the worker no longer owns it."""

    @abc.abstractmethod
    def mark(
        self,
        job_id: int,
        state: JobState,
        reason: str = "",
        result_json: str = "",
        worker: str | None = None,
    ) -> Job:
        """Move a job to ``state`` with a reason (failure cause, delivery outcome).

        With ``worker``, only if that worker still holds the job (else LeaseLostError).
        """

    @abc.abstractmethod
    def defer(
        self, job_id: int, reason: str, delay_seconds: float, worker: str | None = None
    ) -> Job:
        """Put a running job back in the queue, claimable after ``delay_seconds`` (backoff)."""

    @abc.abstractmethod
    def retry(self, job_id: int) -> Job:
        """Put a finished job back in the queue with a fresh attempt count (operator action)."""

    @abc.abstractmethod
    def get(self, job_id: int) -> Job | None:
        """One job by id."""

    @abc.abstractmethod
    def list(self, state: JobState | None = None, limit: int = 100) -> list[Job]:
        """Newest jobs first, optionally of one state."""

    @abc.abstractmethod
    def counts(self) -> dict[str, int]:
        """Number of jobs per state, every state present."""

    @abc.abstractmethod
    def find(self, study_uid: str) -> builtins.list[Job]:
        """Every job of one study, newest first (spool clean-up, re-enqueue checks)."""

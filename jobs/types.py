"""The job record every queue implementation stores and every worker reads."""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass


class JobState(enum.Enum):
    """Life of a job. ``done`` = results written; ``delivered`` = results sent on."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    DELIVERED = "delivered"

    @property
    def is_final(self) -> bool:
        """True for the states a worker leaves a job in (done, failed, delivered)."""
        return self in (JobState.DONE, JobState.FAILED, JobState.DELIVERED)


@dataclass(frozen=True, slots=True)
class Job:
    """One study to analyse.

    ``source`` says which door made it ("scp", "orthanc") and ``locator`` where
    the worker finds the instances (a spool folder, an Orthanc study ID).
    ``content_hash`` identifies the exact set of instances: the same study
    with the same instances is never queued twice; one that gained instances is.
    ``attempts`` counts claims (a crashed run counts). ``not_before`` is the
    earliest time (epoch seconds) a queued job may be claimed (retry backoff);
    ``lease_until`` the time a running job's worker must renew by.
    """

    id: int
    study_uid: str
    source: str
    locator: str
    content_hash: str
    state: JobState
    attempts: int
    created_at: float
    updated_at: float
    n_instances: int = 0
    reason: str = ""
    worker: str = ""
    result_json: str = ""
    not_before: float = 0.0
    lease_until: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.state, JobState):
            raise TypeError("Job.state must be a JobState")
        if not self.study_uid:
            raise ValueError("Job.study_uid must not be empty")


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """What a handler reports when it finishes a job: a final state and why.

    ``result_json`` is a JSON document the handler chooses (result summary,
    output files, delivery per destination); the queue stores it as given.
    """

    state: JobState
    reason: str = ""
    result_json: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.state, JobState):
            raise TypeError("JobOutcome.state must be a JobState")
        if not self.state.is_final:
            raise ValueError("JobOutcome.state must be done, failed or delivered")


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """How a worker claims, holds and retries jobs (plain values: no pydantic here).

    A job is tried at most ``max_attempts`` times (crashed runs included); after
    a transient failure it waits ``backoff_seconds * 2**(attempts-1)``, capped
    at ``backoff_max_seconds``. The lease is renewed every third of
    ``lease_seconds`` while the handler runs, so a dead worker's job becomes
    claimable again at most ``lease_seconds`` after the crash.
    """

    lease_seconds: float = 60.0
    poll_seconds: float = 1.0
    max_attempts: int = 5
    backoff_seconds: float = 10.0
    backoff_max_seconds: float = 600.0
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("lease_seconds", "poll_seconds", "backoff_seconds", "backoff_max_seconds"):
            value = getattr(self, name)
            if not isinstance(value, int | float):
                raise TypeError(f"WorkerSettings.{name} must be a number")
            if value < 0 or (name in ("lease_seconds", "poll_seconds") and value <= 0):
                raise ValueError(f"WorkerSettings.{name} must be positive, got {value}")
        if not isinstance(self.max_attempts, int):
            raise TypeError("WorkerSettings.max_attempts must be an int")
        if self.max_attempts < 1:
            raise ValueError("WorkerSettings.max_attempts must be at least 1")
        if not isinstance(self.sources, tuple):
            raise TypeError("WorkerSettings.sources must be a tuple of door names")

    def backoff(self, attempts: int) -> float:
        """Delay before the next try after ``attempts`` tries (exponential, capped)."""
        if attempts < 1:
            return 0.0
        return float(min(self.backoff_max_seconds, self.backoff_seconds * 2 ** (attempts - 1)))


@dataclass(frozen=True, slots=True)
class JobContext:
    """What a handler may consult while it runs.

    ``lease_lost`` is set when the worker could not renew the lease (another
    worker may now run the job): a long handler should stop at its next step.
    ``stop`` is set when the process is shutting down.
    """

    worker: str
    lease_lost: threading.Event
    stop: threading.Event

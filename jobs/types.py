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
    ``lease_until`` the time a running job's worker must renew by. ``queue``
    names the Celery queue that carries the job ("" in the SQLite backend).
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
    queue: str = ""

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


class TakeKind(enum.Enum):
    """What a Celery worker found when it went to take the job a message named."""

    CLAIMED = "claimed"  # queued and due: now running on this worker
    TAKEN_OVER = "taken_over"  # its worker vanished (lease expired or process dead)
    BUSY = "busy"  # running on a live worker: look again when its lease ends
    NOT_DUE = "not_due"  # waiting for its retry time: look again then
    FINAL = "final"  # already done, delivered or failed: a duplicate message
    GAVE_UP = "gave_up"  # its worker vanished on each of max_attempts tries: now failed
    MISSING = "missing"  # no such job record


@dataclass(frozen=True, slots=True)
class TakeVerdict:
    """The outcome of one take: the job when this worker now holds it, else when to look again."""

    kind: TakeKind
    job: Job | None = None
    wait_seconds: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.kind, TakeKind):
            raise TypeError("TakeVerdict.kind must be a TakeKind")
        if self.wait_seconds < 0:
            raise ValueError("TakeVerdict.wait_seconds must not be negative")

    @property
    def holds(self) -> bool:
        """True when the calling worker now runs the job."""
        return self.kind in (TakeKind.CLAIMED, TakeKind.TAKEN_OVER)


@dataclass(frozen=True, slots=True)
class CeleryConfig:
    """How to reach the Celery backend (plain values, built from ``settings.jobs``).

    ``default_queue`` is the queue new jobs go to (the CPU or the GPU queue,
    chosen from the enabled models); ``queues`` every queue this node knows, for
    the operator's views. Times are seconds.
    """

    broker_url: str
    key_prefix: str = "ctnode"
    default_queue: str = "ctnode.cpu"
    queues: tuple[str, ...] = ("ctnode.cpu", "ctnode.gpu")
    prefetch_multiplier: int = 1
    visibility_timeout: float = 3600.0
    restore_interval: float = 10.0
    redis_timeout: float = 10.0
    result_expires: float = 86400.0

    def __post_init__(self) -> None:
        if not isinstance(self.broker_url, str) or not self.broker_url.startswith(
                ("redis://", "rediss://", "unix://")):
            raise ValueError("CeleryConfig.broker_url must be a redis://, rediss:// or "
                             "unix:// URL")
        if not self.key_prefix:
            raise ValueError("CeleryConfig.key_prefix must not be empty")
        if not isinstance(self.queues, tuple) or self.default_queue not in self.queues:
            raise ValueError("CeleryConfig.queues must be a tuple holding default_queue")
        if self.prefetch_multiplier < 1:
            raise ValueError("CeleryConfig.prefetch_multiplier must be at least 1")
        for name in ("visibility_timeout", "restore_interval", "redis_timeout",
                     "result_expires"):
            if getattr(self, name) <= 0:
                raise ValueError(f"CeleryConfig.{name} must be positive")

    def __repr__(self) -> str:  # the URL may hold the Redis password
        return (f"CeleryConfig(broker_url='***', key_prefix={self.key_prefix!r}, "
                f"default_queue={self.default_queue!r}, queues={self.queues!r})")

"""Errors raised across the border of the job queue and worker."""

from __future__ import annotations


class JobError(Exception):
    """Base of every job-queue error."""


class JobNotFoundError(JobError):
    """No job with this id."""


class JobStateError(JobError):
    """The job is in a state that does not allow the operation (e.g. retry while running)."""


class LeaseLostError(JobError):
    """The worker no longer owns the job: its lease expired and another worker took it."""


class RetryableJobError(JobError):
    """Raised by a handler for a transient failure (destination down, disk busy).

    The worker puts the job back with a backoff delay until the attempt limit.
    """


class PermanentJobError(JobError):
    """Raised by a handler for a failure that retrying cannot fix: the job fails at once."""

"""The job being handled in this thread, for log lines (standard library only).

The worker sets it around each handler call; ``ctnode.logging_setup`` reads
it, so every line logged while a job runs carries the job's ID.
"""

from __future__ import annotations

import contextvars

current_job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "ctnode_job_id", default=None)

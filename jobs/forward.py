"""Forward jobs from the embedded SQLite queue into another back end (an outbox relay).

The Orthanc plugin runs in Orthanc's embedded Python, standard library only,
so it always queues into SQLite on the Orthanc host. When the node is scaled
out on Celery, one ``ctnode worker --forward`` next to Orthanc runs the
ordinary ``jobs.Worker`` on that SQLite queue with this handler: each job is
enqueued in the Celery back end and then marked done locally. A relay that
dies in between re-forwards the job when its lease expires; the target's
(study UID, content hash) key makes that second enqueue a no-op. Standard
library only.
"""

from __future__ import annotations

import json
import logging

from jobs.queue import JobQueue
from jobs.types import Job, JobContext, JobOutcome, JobState

logger = logging.getLogger(__name__)


class ForwardHandler:
    """``handler(job, ctx) -> JobOutcome``: enqueue the job in ``target``, done here.

    A target that cannot be reached raises, so the worker retries with backoff.
    """

    def __init__(self, target: JobQueue, target_name: str = "celery") -> None:
        self.target = target
        self.target_name = target_name

    def __call__(self, job: Job, ctx: JobContext) -> JobOutcome:
        forwarded, created = self.target.enqueue(
            job.study_uid, job.source, job.locator, job.content_hash, job.n_instances)
        logger.info("job %d forwarded to the %s queue as job %d%s", job.id, self.target_name,
                    forwarded.id, "" if created else " (it was there already)")
        return JobOutcome(
            JobState.DONE,
            f"forwarded to the {self.target_name} queue as job {forwarded.id}",
            json.dumps({"forwarded_to": self.target_name, "job": forwarded.id}),
        )

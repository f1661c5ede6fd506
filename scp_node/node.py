"""The embedded node: SCP + study-stable timer + job workers + spool clean-up, in one process.

Start-up recovers what a previous run left: every study in the spool is
timed again (a study whose job was already queued with the same content is a
no-op in the queue) and the workers take over jobs whose lease expired.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from jobs import (
    Handler,
    JobQueue,
    JobState,
    WorkerPool,
    WorkerSettings,
    make_queue,
)
from scp_node.access import build_policy
from scp_node.handler import ScpJobHandler, results_root
from scp_node.receive import ReceiveBuffers, remove_leftovers
from scp_node.server import StoreScp, start_scp
from scp_node.spool import Spool
from scp_node.stability import StabilityMonitor

if TYPE_CHECKING:
    from pynetdicom.transport import ThreadedAssociationServer

    from ctnode.settings import ScpSettings, Settings

logger = logging.getLogger(__name__)

SOURCE = "scp"


def spool_root(settings: Settings) -> Path:
    """``scp.spool_dir`` or ``<node.work_dir>/spool``."""
    return settings.scp.spool_dir or settings.node.work_dir / "spool"


def worker_settings(scp: ScpSettings) -> WorkerSettings:
    """The generic worker's settings from the SCP section (this door's jobs only)."""
    return WorkerSettings(
        lease_seconds=scp.job_lease_s,
        poll_seconds=scp.job_poll_s,
        max_attempts=scp.delivery_max_attempts,
        backoff_seconds=scp.delivery_backoff_s,
        backoff_max_seconds=scp.delivery_backoff_max_s,
        sources=(SOURCE,),
    )


class ScpNode:
    """Everything ``ctnode scp`` runs; ``start()`` returns, ``stop()`` shuts down."""

    def __init__(
        self,
        settings: Settings,
        handler: Handler | None = None,
        queue: JobQueue | None = None,
    ) -> None:
        scp = settings.scp
        self.settings = settings
        max_instance = int(settings.limits.max_instance_mb * 1e6)
        self.spool = Spool(spool_root(settings), scp.min_free_mb, max_instance)
        self.buffers = ReceiveBuffers(settings.node.server_temp_dir(), max_instance)
        self.queue = queue or make_queue(settings)  # SQLite, or Celery (jobs.backend)
        self.policy = build_policy(
            scp.allowed_calling_ae_titles,
            scp.allowed_source_addresses,
            scp.ae_title if scp.require_called_ae_title else None,
        )
        self.monitor = StabilityMonitor(scp.stable_seconds, self.enqueue_study)
        self.pool = WorkerPool(
            self.queue, handler or ScpJobHandler(settings), worker_settings(scp), size=scp.workers
        )
        self._server: ThreadedAssociationServer | None = None
        self._stop = threading.Event()
        self._janitor: threading.Thread | None = None

    def enqueue_study(self, study_uid: str) -> None:
        """The study went quiet: queue a job for exactly what the spool now holds."""
        study = self.spool.study(study_uid)
        if study.n_instances == 0:
            return
        self.queue.enqueue(
            study_uid, SOURCE, str(study.directory), study.content_hash, study.n_instances
        )

    def start(self) -> None:
        """Recover the spool, then start workers, timer, clean-up and the SCP."""
        if not self.policy.calling_ae_titles and not self.policy.networks:
            logger.warning("no allowed calling AE titles or addresses set: any SCU may store")
        remove_leftovers(self.buffers.folder)  # a killed run's half-received instances
        self.buffers.install()
        recovered = self.spool.studies()
        for uid in recovered:
            self.monitor.touch(uid)
        if recovered:
            logger.info("%d study(ies) found in the spool; timing them again", len(recovered))
        self._stop.clear()
        self.monitor.start()
        self.pool.start()
        self._janitor = threading.Thread(target=self._clean_loop, name="spool-janitor",
                                         daemon=True)
        self._janitor.start()
        self._server = start_scp(self.settings.scp, StoreScp(self.spool, self.monitor,
                                                              self.policy, self.buffers))

    def stop(self) -> None:
        """Stop accepting, then stop the timer and workers (a running job keeps its lease)."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        self.buffers.uninstall()
        self._stop.set()
        self.monitor.stop()
        self.pool.stop()
        if self._janitor is not None:
            self._janitor.join(5)
            self._janitor = None
        logger.info("SCP node stopped")

    @property
    def port(self) -> int:
        """The port the SCP listens on (useful when settings said 0)."""
        if self._server is None:
            raise RuntimeError("SCP not started")
        return int(self._server.server_address[1])

    # -- spool retention ----------------------------------------------------------------

    def clean_spool(self, now: float | None = None) -> list[str]:
        """Remove studies whose current content was analysed and delivered, after retention.

        A study still receiving, with a job queued or running, whose job failed
        (kept for ``ctnode jobs retry``) or whose content changed since, stays;
        so does one that received an instance (even a resent one) within the
        retention time or the stable time.
        """
        now = time.time() if now is None else now
        retention_s = self.settings.scp.spool_retention_hours * 3600
        quiet_s = max(retention_s, self.settings.scp.stable_seconds)
        pending = self.monitor.pending()
        removed = []
        for uid in self.spool.studies():
            if uid in pending:
                continue
            jobs = self.queue.find(uid)
            if not jobs or any(not j.state.is_final for j in jobs):
                continue
            content = self.spool.study(uid).content_hash
            finished = [j for j in jobs if j.content_hash == content
                        and j.state in (JobState.DONE, JobState.DELIVERED)]
            if not finished or now - max(j.updated_at for j in finished) < retention_s:
                continue
            # Checked again under the spool's lock: a C-STORE of this study may be under way.
            if self.spool.remove_study(uid, quiet_seconds=quiet_s, now=now):
                removed.append(uid)
        self._clean_results(now, retention_s)
        return removed

    def _clean_results(self, now: float, retention_s: float) -> list[int]:
        """Remove the SR/SC folders of jobs done or delivered longer than the retention ago.

        A failed job keeps its folder (``ctnode jobs retry`` reuses a complete
        analysis); so does one queued or running again.
        """
        root = results_root(self.settings)
        removed: list[int] = []
        for folder in sorted(root.glob("job-*")) if root.is_dir() else []:
            try:
                job_id = int(folder.name.removeprefix("job-"))
            except ValueError:
                continue
            job = self.queue.get(job_id)
            if job is not None and (
                job.state not in (JobState.DONE, JobState.DELIVERED)
                or now - job.updated_at < retention_s
            ):
                continue
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(job_id)
        if removed:
            logger.info("removed the result folders of %d finished job(s)", len(removed))
        return removed

    def _clean_loop(self) -> None:
        interval = min(60.0, max(0.5, self.settings.scp.stable_seconds))
        while not self._stop.wait(interval):
            try:
                self.clean_spool()
            except Exception:
                logger.exception("spool clean-up failed; will try again")


def run_scp(settings: Settings, stop_event: threading.Event) -> None:
    """Run the node until ``stop_event`` is set (``ctnode scp``)."""
    node = ScpNode(settings)
    try:
        node.start()  # inside: a failed start (port taken) stops the workers already started
        stop_event.wait()
    finally:
        node.stop()

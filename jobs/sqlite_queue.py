"""The embedded job queue: one SQLite file in WAL mode, safe across threads and processes.

Standard library only (the Orthanc plugin imports it from Orthanc's embedded
Python). Every write runs in ``BEGIN IMMEDIATE``, which takes SQLite's write
lock up front, so two workers can never claim the same job: the second one
waits for the lock and then no longer sees the job as claimable. Each call
opens its own connection, so one queue object may be shared by threads.
"""

from __future__ import annotations

import builtins
import logging
import sqlite3
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

from jobs.errors import JobNotFoundError, JobStateError, LeaseLostError
from jobs.queue import JobQueue, check_identity
from jobs.types import Job, JobState

logger = logging.getLogger(__name__)

_SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    study_uid TEXT NOT NULL,
    source TEXT NOT NULL,
    locator TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    n_instances INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '',
    worker TEXT NOT NULL DEFAULT '',
    result_json TEXT NOT NULL DEFAULT '',
    not_before REAL NOT NULL DEFAULT 0,
    lease_until REAL NOT NULL DEFAULT 0,
    UNIQUE (study_uid, content_hash)
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, not_before, id);
"""

_COLUMNS = (
    "id, study_uid, source, locator, content_hash, state, attempts, created_at, updated_at, "
    "n_instances, reason, worker, result_json, not_before, lease_until"
)


def _row_to_job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        study_uid=row["study_uid"],
        source=row["source"],
        locator=row["locator"],
        content_hash=row["content_hash"],
        state=JobState(row["state"]),
        attempts=row["attempts"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        n_instances=row["n_instances"],
        reason=row["reason"],
        worker=row["worker"],
        result_json=row["result_json"],
        not_before=row["not_before"],
        lease_until=row["lease_until"],
    )


class SqliteJobQueue(JobQueue):
    """``JobQueue`` on one SQLite database file (created on first use).

    Keep the file on a local disk: WAL mode needs shared memory between the
    processes using it, which network file systems do not provide.
    """

    def __init__(self, path: Path, busy_timeout_seconds: float = 30.0) -> None:
        if not isinstance(path, Path):
            raise TypeError("SqliteJobQueue.path must be a pathlib.Path")
        if busy_timeout_seconds <= 0:
            raise ValueError("SqliteJobQueue.busy_timeout_seconds must be positive")
        self.path = path
        self._timeout = float(busy_timeout_seconds)
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise OSError(f"SQLite refused WAL mode for {path} (got {mode})")
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
            conn.execute("COMMIT")
        finally:
            conn.close()

    # -- plumbing -----------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), timeout=self._timeout, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA busy_timeout={int(self._timeout * 1000)}")
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding SQLite's write lock from the start."""
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            yield conn
        finally:
            conn.close()

    @staticmethod
    def _fetch(conn: sqlite3.Connection, job_id: int) -> Job:
        row = conn.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFoundError(f"no job with id {job_id}")
        return _row_to_job(row)

    # -- JobQueue -----------------------------------------------------------------------

    def enqueue(
        self, study_uid: str, source: str, locator: str, content_hash: str, n_instances: int = 0
    ) -> tuple[Job, bool]:
        check_identity(study_uid, source, content_hash)
        now = time.time()
        with self._write() as conn:
            # Only the duplicate is ignored (OR IGNORE would also hide a NOT NULL violation).
            cur = conn.execute(
                "INSERT INTO jobs (study_uid, source, locator, content_hash, state, "
                "attempts, created_at, updated_at, n_instances) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?) "
                "ON CONFLICT (study_uid, content_hash) DO NOTHING",
                (study_uid, source, locator, content_hash, JobState.QUEUED.value, now, now,
                 int(n_instances)),
            )
            created = cur.rowcount == 1
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE study_uid = ? AND content_hash = ?",
                (study_uid, content_hash),
            ).fetchone()
        job = _row_to_job(row)
        if created:
            logger.info("job %d queued: study %s from %s (%d instances)",
                        job.id, study_uid, source, n_instances)
        else:
            logger.info("job %d already exists for study %s with this content (%s)",
                        job.id, study_uid, job.state.value)
        return job, created

    def claim(
        self,
        worker: str,
        lease_seconds: float,
        sources: Collection[str] | None = None,
        max_attempts: int | None = None,
    ) -> Job | None:
        if not worker:
            raise ValueError("worker must not be empty")
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        source_list = sorted(set(sources)) if sources else []
        source_sql = (
            f" AND source IN ({', '.join('?' for _ in source_list)})" if source_list else ""
        )
        now = time.time()
        with self._write() as conn:
            if max_attempts is not None:
                # A job whose worker died max_attempts times is poison: fail it, say why.
                conn.execute(
                    "UPDATE jobs SET state = ?, updated_at = ?, lease_until = 0, "
                    "reason = 'gave up: its worker stopped during each of ' || attempts || "
                    "' attempts (last: ' || worker || ')' "
                    f"WHERE state = ? AND lease_until < ? AND attempts >= ?{source_sql}",
                    (JobState.FAILED.value, now, JobState.RUNNING.value, now, max_attempts,
                     *source_list),
                )
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE "
                "((state = ? AND not_before <= ?) OR (state = ? AND lease_until < ?))"
                f"{source_sql} ORDER BY id LIMIT 1",
                (JobState.QUEUED.value, now, JobState.RUNNING.value, now, *source_list),
            ).fetchone()
            if row is None:
                return None
            previous = _row_to_job(row)
            conn.execute(
                "UPDATE jobs SET state = ?, worker = ?, lease_until = ?, attempts = attempts + 1, "
                "updated_at = ? WHERE id = ?",
                (JobState.RUNNING.value, worker, now + lease_seconds, now, previous.id),
            )
            job = self._fetch(conn, previous.id)
        if previous.state is JobState.RUNNING:
            logger.warning("job %d taken over by %s: lease of %s expired (attempt %d)",
                           job.id, worker, previous.worker, job.attempts)
        else:
            logger.info("job %d claimed by %s (attempt %d)", job.id, worker, job.attempts)
        return job

    def renew(self, job_id: int, worker: str, lease_seconds: float) -> bool:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        now = time.time()
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE jobs SET lease_until = ? WHERE id = ? AND state = ? AND worker = ?",
                (now + lease_seconds, job_id, JobState.RUNNING.value, worker),
            )
            return cur.rowcount == 1

    def _owned(self, conn: sqlite3.Connection, job_id: int, worker: str | None) -> Job:
        job = self._fetch(conn, job_id)
        if worker is not None and (job.state is not JobState.RUNNING or job.worker != worker):
            raise LeaseLostError(
                f"job {job_id} is no longer held by {worker} "
                f"(state {job.state.value}, worker {job.worker or '-'})"
            )
        return job

    def mark(
        self,
        job_id: int,
        state: JobState,
        reason: str = "",
        result_json: str = "",
        worker: str | None = None,
    ) -> Job:
        state = JobState(state)
        now = time.time()
        with self._write() as conn:
            self._owned(conn, job_id, worker)
            conn.execute(
                "UPDATE jobs SET state = ?, reason = ?, result_json = ?, updated_at = ?, "
                "lease_until = 0 WHERE id = ?",
                (state.value, reason, result_json, now, job_id),
            )
            job = self._fetch(conn, job_id)
        logger.info("job %d %s: %s", job_id, state.value, reason or "-")
        return job

    def defer(
        self, job_id: int, reason: str, delay_seconds: float, worker: str | None = None
    ) -> Job:
        if delay_seconds < 0:
            raise ValueError("delay_seconds must not be negative")
        now = time.time()
        with self._write() as conn:
            self._owned(conn, job_id, worker)
            conn.execute(
                "UPDATE jobs SET state = ?, reason = ?, not_before = ?, updated_at = ?, "
                "lease_until = 0 WHERE id = ?",
                (JobState.QUEUED.value, reason, now + delay_seconds, now, job_id),
            )
            job = self._fetch(conn, job_id)
        logger.info("job %d back in queue for %.1f s: %s", job_id, delay_seconds, reason)
        return job

    def retry(self, job_id: int) -> Job:
        now = time.time()
        with self._write() as conn:
            job = self._fetch(conn, job_id)
            if job.state is JobState.RUNNING and job.lease_until >= now:
                raise JobStateError(f"job {job_id} is running on {job.worker}; not retried")
            if job.state is JobState.QUEUED:
                raise JobStateError(f"job {job_id} is already queued")
            conn.execute(
                "UPDATE jobs SET state = ?, attempts = 0, not_before = 0, lease_until = 0, "
                "reason = ?, updated_at = ? WHERE id = ?",
                (JobState.QUEUED.value, f"retry requested (was {job.state.value}: {job.reason})",
                 now, job_id),
            )
            job = self._fetch(conn, job_id)
        logger.info("job %d queued again by request", job_id)
        return job

    def get(self, job_id: int) -> Job | None:
        with self._read() as conn:
            try:
                return self._fetch(conn, job_id)
            except JobNotFoundError:
                return None

    def list(self, state: JobState | None = None, limit: int = 100) -> list[Job]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        with self._read() as conn:
            if state is None:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM jobs ORDER BY id DESC LIMIT ?", (limit,)
                ).fetchall()
            else:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM jobs WHERE state = ? ORDER BY id DESC LIMIT ?",
                    (JobState(state).value, limit),
                ).fetchall()
        return [_row_to_job(row) for row in rows]

    def counts(self) -> dict[str, int]:
        result = {state.value: 0 for state in JobState}
        with self._read() as conn:
            for row in conn.execute("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state"):
                result[row["state"]] = row["n"]
        return result

    def queue_lengths(self) -> dict[str, int]:
        """Queued jobs per door (``source``): the SQLite queue is one table for all doors."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT source, COUNT(*) AS n FROM jobs WHERE state = ? GROUP BY source",
                (JobState.QUEUED.value,),
            ).fetchall()
        return {row["source"]: row["n"] for row in rows}

    def find(self, study_uid: str) -> builtins.list[Job]:
        """Every job of one study, newest first (for doors that check before enqueueing)."""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE study_uid = ? ORDER BY id DESC", (study_uid,)
            ).fetchall()
        return [_row_to_job(row) for row in rows]

"""The real ``ctnode worker`` on the Celery back end: a study killed mid-delivery is stored once.

Two ``ctnode worker`` processes (Celery, ``jobs.backend = celery``) serve one
Redis; a phantom study queued from the SCP door runs the real pipeline and
``ScpJobHandler``. The PACS stores the first object it receives and then
holds the association; the first worker is SIGKILLed right then. The second
takes the job over, reuses the analysis the first one wrote (keyed on the job,
i.e. on study UID + content hash) and delivers again: the PACS ends up with
exactly the objects of one run (the resent one carries the same SOP Instance
UID, so a PACS keeps one copy), and the job is delivered after two attempts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pynetdicom import ALL_TRANSFER_SYNTAXES

from jobs import CeleryConfig, JobState
from jobs.celery_queue import CeleryJobQueue
from phantom.quick import write_small_study
from tests.helpers import free_port, wait_for
from tests.jobs.redis_server import RedisServer

REPO = Path(__file__).resolve().parents[2]


class Pacs:
    """A pynetdicom storage SCP (every transfer syntax) keeping objects by SOP Instance UID.

    The first C-STORE is stored, then answered only after ``release`` is set:
    the sender can be killed while it waits, after the PACS has the object.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.received: Counter[str] = Counter()
        self.holding = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._server: Any = None

    def start(self) -> None:
        from pynetdicom import AE, StoragePresentationContexts, evt
        from pynetdicom.presentation import build_context

        def on_store(event: Any) -> int:
            uid = str(event.request.AffectedSOPInstanceUID)
            with self._lock:
                self.received[uid] += 1
            if not self.holding.is_set():
                self.holding.set()
                self.release.wait(60)
            return 0x0000

        ae = AE(ae_title="PACS")
        ae.supported_contexts = [build_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
                                 for cx in StoragePresentationContexts]
        self._server = ae.start_server(("127.0.0.1", self.port), block=False,
                                       evt_handlers=[(evt.EVT_C_STORE, on_store)])

    def stop(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.shutdown()


class CtnodeWorkers:
    """``ctnode worker`` processes (own process groups), ended by PID at teardown."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp = tmp
        self.env = env
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.tmp / f"{name}.log"
        proc = subprocess.Popen(
            [sys.executable, "-c", "from ctnode.cli import main; main()", "worker",
             "--hostname", f"{name}@%h"],
            cwd=self.tmp, env=self.env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
            start_new_session=True)
        self.procs.append(proc)

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited: {log.read_text()[-3000:]}")
            return "ready" in log.read_text(errors="replace")

        wait_for(ready, 90, f"{name} to be ready", every=0.2)
        return proc, log

    def end_all(self) -> None:
        for proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(10)


@pytest.fixture()
def ctnode_workers(redis_server: RedisServer, tmp_path: Path,
                   ) -> Iterator[tuple[CtnodeWorkers, Pacs]]:
    pacs = Pacs()
    pacs.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTNODE_")}
    env.update({
        "PYTHONPATH": str(REPO),
        "CTNODE_NODE__WORK_DIR": str(tmp_path / "var"),  # results: shared by both workers
        "CTNODE_LOG_LEVEL": "INFO",
        "CTNODE_JOBS__BACKEND": "celery",
        "CTNODE_JOBS__BROKER_URL": redis_server.url,
        "CTNODE_JOBS__VISIBILITY_TIMEOUT_S": "4",
        "CTNODE_JOBS__RESTORE_INTERVAL_S": "1",
        "CTNODE_SCP__JOB_LEASE_S": "3",
        "CTNODE_SCP__DELIVERY_BACKOFF_S": "0.5",
        "CTNODE_SCP__DESTINATIONS": json.dumps(
            [{"ae_title": "PACS", "host": "127.0.0.1", "port": pacs.port}]),
    })
    workers = CtnodeWorkers(tmp_path, env)
    try:
        yield workers, pacs
    finally:
        pacs.stop()
        workers.end_all()


def test_study_killed_mid_delivery_is_stored_once_by_the_next_worker(
        redis_server: RedisServer, tmp_path: Path,
        ctnode_workers: tuple[CtnodeWorkers, Pacs]) -> None:
    workers, pacs = ctnode_workers
    study = write_small_study(tmp_path / "spool" / "study", seed=3, matrix=96, n_slices=60)
    queue = CeleryJobQueue(CeleryConfig(broker_url=redis_server.url))
    first, _ = workers.start("w1")
    job, _ = queue.enqueue(study.study_uid, "scp", str(study.root), "content-1", 177)
    assert job.queue == "ctnode.cpu"
    assert pacs.holding.wait(120), "the first worker never started delivering"
    os.killpg(first.pid, signal.SIGKILL)  # mid-delivery: nothing acknowledged or recorded
    first.wait(10)
    pacs.release.set()
    held = set(pacs.received)
    _, log2 = workers.start("w2")
    wait_for(lambda: (j := queue.get(job.id)) is not None and j.state.is_final, 120,
             "the second worker to finish the job", every=0.3)

    done = queue.get(job.id)
    assert done is not None and done.state is JobState.DELIVERED, done
    assert done.attempts == 2 and done.worker.split(":")[1] != str(first.pid)
    assert "reusing the analysis of an earlier attempt" in log2.read_text()
    outputs = json.loads((tmp_path / "var" / "scp_results" / f"job-{job.id}" /
                          "outputs.json").read_text())
    written = {str(pydicom.dcmread(tmp_path / "var" / "scp_results" / f"job-{job.id}" / name,
                                   stop_before_pixels=True).SOPInstanceUID)
               for name in outputs["objects"]}
    assert len(written) >= 2  # the SR and at least one SC
    assert set(pacs.received) == written  # one SR/SC set: same UIDs, one copy each
    assert len(held) == 1
    assert all(pacs.received[uid] == (2 if uid in held else 1) for uid in written)
    # A duplicate enqueue of the same content is the same, finished job.
    again, created = queue.enqueue(study.study_uid, "scp", str(study.root), "content-1", 177)
    assert not created and again.id == job.id and again.state is JobState.DELIVERED
    queue.close()

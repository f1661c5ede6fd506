"""From C-STORE to delivered SR + SC, with real dcmtk clients and destinations.

Covers the issue's scenarios: a study the pipeline refuses still gets its
failure SR; two studies at once; a study sent twice (one job); the node
killed mid-job and restarted (the job completes once); the destination down
at first. The phantom study's full path is in test_node_e2e.py.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from pydicom.uid import generate_uid

from tests.helpers import wait_for
from tests.scp_node.conftest import (
    PATIENT_ID,
    PATIENT_NAME,
    Destination,
    NodeProcess,
    storescu,
    write_ct_series,
)

FINAL = ("done", "failed", "delivered")


def _study(out_dir: Path) -> str:
    """A two-series CT study (4 + 3 slices); returns its Study Instance UID."""
    study = generate_uid()
    write_ct_series(out_dir, study, n=4, series_number=1)
    write_ct_series(out_dir, study, n=3, series_number=2)
    return study


def _finished(node: NodeProcess, n: int = 1, timeout: float = 90) -> list[dict[str, object]]:
    jobs = wait_for(lambda: (j := node.jobs()) and sum(x["state"] in FINAL for x in j) >= n
                    and j, timeout, f"{n} finished job(s)")
    return jobs  # type: ignore[return-value]


def _objects(job: dict[str, object]) -> list[str]:
    return list(json.loads(str(job["result_json"]))["objects"])


def test_tiny_study_failure_sr_is_delivered(
    make_node, destination: Destination, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    """A study the pipeline cannot analyse still gets its (failure) SR delivered, with why."""
    destination.start()
    node = make_node(destinations=[("PACS", destination.port)])
    node.start()
    study = _study(tmp_path / "study")
    storescu(node.port, tmp_path / "study")
    (job,) = _finished(node)
    assert job["state"] == "delivered" and job["n_instances"] == 7
    assert str(job["reason"]).startswith("Failure (")
    assert destination.studies() == {study: len(_objects(job))}
    log = node.log()
    assert PATIENT_NAME not in log and PATIENT_ID not in log


def test_two_studies_at_once(
    make_node, destination: Destination, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    destination.start()
    node = make_node(destinations=[("PACS", destination.port)], workers=2)
    node.start()
    studies = [_study(tmp_path / f"study{i}") for i in range(2)]
    senders = [
        subprocess.Popen(["storescu", "-aet", "MODALITY", "-aec", "CTNODE", "+sd", "+r", "-nh",
                          "127.0.0.1", str(node.port), str(tmp_path / f"study{i}")])
        for i in range(2)
    ]
    assert [p.wait(60) for p in senders] == [0, 0]
    jobs = _finished(node, 2)
    assert sorted(j["study_uid"] for j in jobs) == sorted(studies)
    assert [j["state"] for j in jobs] == ["delivered", "delivered"]
    per_study = destination.studies()
    assert set(per_study) == set(studies)
    assert set(destination.received.values()) == {1}


def test_study_sent_twice_makes_one_job(
    make_node, destination: Destination, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    destination.start()
    node = make_node(destinations=[("PACS", destination.port)])
    node.start()
    _study(tmp_path / "study")
    storescu(node.port, tmp_path / "study")
    (job,) = _finished(node)
    assert job["state"] == "delivered"
    delivered = dict(destination.received)
    storescu(node.port, tmp_path / "study")
    wait_for(lambda: "already exists for study" in node.log(), 15, "the duplicate to be seen")
    time.sleep(1.0)
    assert len(node.jobs()) == 1 and node.jobs()[0]["state"] == "delivered"
    assert dict(destination.received) == delivered  # nothing sent again


def test_node_killed_mid_job_completes_once_after_restart(
    make_node, destination: Destination, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    destination.hold_first = True  # the first C-STORE hangs: the job is mid-delivery
    destination.start()
    node = make_node(destinations=[("PACS", destination.port)], job_lease_s=2.0)
    node.start()
    study = _study(tmp_path / "study")
    storescu(node.port, tmp_path / "study")
    assert destination.holding.wait(90), "delivery never started"
    (running,) = node.jobs()
    assert running["state"] == "running" and running["attempts"] == 1
    node.kill()  # SIGKILL: no clean-up, the lease stays
    destination.release.set()  # the half-sent object is refused, not stored
    assert destination.received == {}
    node.start()  # same work dir, same queue, same spool
    (job,) = _finished(node)
    assert job["state"] == "delivered", job["reason"]
    assert job["attempts"] == 2 and job["study_uid"] == study
    assert len(node.jobs()) == 1
    assert len(destination.received) == len(_objects(job))
    assert set(destination.received.values()) == {1}  # each object stored exactly once
    assert "taken over" in node.log() and "reusing the analysis" in node.log()


def test_destination_down_at_first_is_retried_until_up(
    make_node, destination: Destination, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    node = make_node(destinations=[("PACS", destination.port)])
    node.start()
    _study(tmp_path / "study")
    storescu(node.port, tmp_path / "study")
    waiting = wait_for(lambda: [j for j in node.jobs() if "attempt 1 failed" in j["reason"]],
                       90, "a failed delivery attempt")
    assert "association unreachable" in waiting[0]["reason"]  # type: ignore[index]
    destination.start()
    (job,) = _finished(node)
    assert job["state"] == "delivered" and job["attempts"] >= 2
    assert set(destination.received.values()) == {1}
    assert len(destination.received) == len(_objects(job))

"""The Orthanc door end to end with real servers: an AI-node Orthanc (our plugin,
DICOMweb), a "hospital PACS" Orthanc, ``ctnode worker`` processes, dcmtk clients.

Runs in definition order and shares the two Orthancs; each test sends its own
study. The latency split of the end-to-end test is written to
``latency.json`` under the test's temporary folder and printed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest

from phantom import Nodule, write_small_study
from sr_writer import read_back
from tests.helpers import free_port, wait_for
from tests.orthanc_plugin.ct_series import write_ct_series
from tests.orthanc_plugin.servers import (
    DICOMWEB_PLUGIN,
    ORTHANC,
    PYTHON_PLUGIN,
    REPO,
    OrthancProcess,
    WorkerProcess,
    node_config,
    pacs_config,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        not (Path(ORTHANC).exists() and PYTHON_PLUGIN.exists() and DICOMWEB_PLUGIN.exists()
             and shutil.which("storescu") and shutil.which("findscu")),
        reason="needs Debian orthanc, orthanc-python, orthanc-dicomweb and dcmtk",
    ),
]

NODE_USER, NODE_PASSWORD = "ctnode", "node-test-secret"
SR_CLASS_PREFIX = "1.2.840.10008.5.1.4.1.1.88."
SC_CLASS_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
STABLE_AGE = 1
SHARED: dict[str, Any] = {}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("orthanc_door")


@pytest.fixture(scope="module")
def pacs(root: Path) -> Iterator[OrthancProcess]:
    server = OrthancProcess("pacs", root, pacs_config(root, free_port(), free_port()),
                            auth=("pacs", "pacs-secret"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def node(root: Path, pacs: OrthancProcess) -> Iterator[OrthancProcess]:
    env = {
        "CTNODE_ORTHANC__PASSWORD": NODE_PASSWORD,
        "CTNODE_REPO_ROOT": str(REPO),
        "CTNODE_ORTHANC__QUEUE_PATH": str(root / "var" / "jobs.sqlite3"),
        "CTNODE_PACS_AET": pacs.aet,
        "CTNODE_PACS_PORT": str(pacs.dicom_port),
    }
    server = OrthancProcess("node", root, node_config(root, free_port(), free_port(), STABLE_AGE),
                            env=env, auth=(NODE_USER, NODE_PASSWORD), args=("--verbose",))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def worker(root: Path, node: OrthancProcess) -> Iterator[WorkerProcess]:
    env = {
        "CTNODE_ORTHANC__PASSWORD": NODE_PASSWORD,
        "CTNODE_ORTHANC__QUEUE_PATH": str(root / "var" / "jobs.sqlite3"),
        "CTNODE_ORTHANC__DESTINATIONS": '["pacs"]',
        "CTNODE_ORTHANC__JOB_LEASE_S": "3",
        "CTNODE_ORTHANC__JOB_POLL_S": "0.2",
        "CTNODE_ORTHANC__BACKOFF_S": "1",
        "CTNODE_ORTHANC__BACKOFF_MAX_S": "2",
        "CTNODE_ORTHANC__DELIVERY_TIMEOUT_S": "20",
        "CTNODE_NODE__WORK_DIR": str(root / "var"),
        "CTNODE_CONFIG_FILE": "",
    }
    process = WorkerProcess(node.url, env, root / "worker.log")
    process.start()
    yield process
    process.stop()


# -- helpers ------------------------------------------------------------------------------


def _storescu(node: OrthancProcess, folder: Path) -> float:
    """Send a folder by C-STORE; returns the time the last instance was acknowledged."""
    subprocess.run(
        ["storescu", "+sd", "+r", "+sp", "*.dcm", "-aet", "MODALITY", "-aec", node.aet,
         "127.0.0.1", str(node.dicom_port), str(folder)],
        check=True, capture_output=True, timeout=120,
    )
    return time.time()


def _health(node: OrthancProcess) -> dict[str, Any]:
    with node.client() as c:
        response = c.get("/ai/health")
    response.raise_for_status()
    return dict(response.json())


def _jobs(node: OrthancProcess, study_uid: str) -> list[dict[str, Any]]:
    with node.client() as c:
        response = c.get("/ai/jobs", params={"limit": "1000"})
    response.raise_for_status()
    return [j for j in response.json() if j["study_uid"] == study_uid]


def _wait_job(node: OrthancProcess, study_uid: str, states: tuple[str, ...],
              timeout: float = 120.0) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        jobs = _jobs(node, study_uid)
        return jobs[0] if jobs and jobs[0]["state"] in states else None

    try:
        return wait_for(done, timeout, f"job of {study_uid} to be {'/'.join(states)}")
    except AssertionError:
        print(node.log_tail())
        raise


def _qido_instances(server: OrthancProcess, study_uid: str) -> list[dict[str, Any]]:
    with server.client() as c:
        response = c.get(f"/dicom-web/studies/{study_uid}/instances",
                         params={"includefield": "00080016"})
    if response.status_code == 204:
        return []
    response.raise_for_status()
    return response.json() if response.content else []


def _sop_classes(instances: list[dict[str, Any]]) -> list[str]:
    return [i["00080016"]["Value"][0] for i in instances]


def _count(instances: list[dict[str, Any]], prefix: str) -> int:
    return sum(c.startswith(prefix) for c in _sop_classes(instances))


def _findscu_series(pacs: OrthancProcess, study_uid: str, out: Path) -> list[pydicom.Dataset]:
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["findscu", "-S", "-aet", "CHECKER", "-aec", pacs.aet,
         "-k", "QueryRetrieveLevel=SERIES", "-k", f"StudyInstanceUID={study_uid}",
         "-k", "SeriesInstanceUID", "-k", "Modality", "-k", "Manufacturer",
         "-X", "-od", str(out), "127.0.0.1", str(pacs.dicom_port)],
        check=True, capture_output=True, timeout=60,
    )
    return [pydicom.dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


def _pacs_sr_file(pacs: OrthancProcess, study_uid: str, dest: Path) -> Path:
    with pacs.client() as c:
        found = c.post("/tools/find", json={
            "Level": "Instance", "Query": {"StudyInstanceUID": study_uid, "Modality": "SR"}})
        found.raise_for_status()
        [instance_id] = found.json()
        dest.write_bytes(c.get(f"/instances/{instance_id}/file").content)
    return dest


def _study(root: Path, name: str, **kwargs: Any) -> tuple[str, Path]:
    folder = root / "studies" / name
    study_uid, _ = write_ct_series(folder, **kwargs)
    return study_uid, folder


def _phantom_study(root: Path, name: str, seed: int) -> tuple[str, Path]:
    """The multi-series phantom (localizer, 2.5 mm and 5 mm series) with a 12 mm nodule."""
    folder = root / "studies" / name
    written = write_small_study(folder, [Nodule(12)], seed=seed)
    return written.study_uid, folder


def _last_change(server: OrthancProcess) -> int:
    with server.client() as c:
        return int(c.get("/changes", params={"last": ""}).json()["Last"])


# -- tests ------------------------------------------------------------------------------


def test_wrong_credentials_are_rejected(node: OrthancProcess) -> None:
    for auth in [(NODE_USER, "wrong"), ("nobody", NODE_PASSWORD), None]:
        response = httpx.get(node.url + "/ai/jobs", auth=auth, timeout=10)
        assert response.status_code == 401, auth
    assert httpx.get(node.url + "/instances", timeout=10).status_code == 401
    health = httpx.get(node.url + "/ai/health", auth=(NODE_USER, NODE_PASSWORD), timeout=10)
    assert health.status_code == 200
    assert health.json()["status"] == "ok" and health.json()["event_thread_alive"] is True


def test_node_refuses_to_start_with_an_empty_password(root: Path) -> None:
    """orthanc.json without CTNODE_ORTHANC__PASSWORD: Orthanc must not run open."""
    folder = root / "nopw"
    config = node_config(folder, free_port(), free_port(), STABLE_AGE)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cfg.json").write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if k != "CTNODE_ORTHANC__PASSWORD"}
    env.update({"CTNODE_REPO_ROOT": str(REPO),
                "CTNODE_ORTHANC__QUEUE_PATH": str(folder / "jobs.sqlite3")})
    proc = subprocess.run([ORTHANC, str(folder / "cfg.json")], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode != 0
    assert "empty password (is CTNODE_ORTHANC__PASSWORD set?)" in proc.stdout + proc.stderr


def test_study_sent_by_cstore_comes_back_to_the_pacs_as_sr_and_sc(
    root: Path, node: OrthancProcess, pacs: OrthancProcess, worker: WorkerProcess
) -> None:
    study_uid, folder = _phantom_study(root, "a", seed=1)
    last_store = _storescu(node, folder)
    job = _wait_job(node, study_uid, ("delivered", "failed"))
    arrived = time.time()
    assert job["state"] == "delivered", job["reason"]
    result = job["result"]
    assert result["result"]["processing_status"] == "Success"

    # QIDO-RS on the PACS: one SR and the SC images, in the right study
    instances = _qido_instances(pacs, study_uid)
    assert _count(instances, SR_CLASS_PREFIX) == 1
    assert _count(instances, SC_CLASS_PREFIX) == result["n_sc"] >= 1
    # C-FIND on the PACS sees our series next to nothing else of ours
    series = _findscu_series(pacs, study_uid, root / "findscu-a")
    modalities = sorted(str(ds.Modality) for ds in series)
    assert "SR" in modalities and len(series) >= 2
    assert all(ds.StudyInstanceUID == study_uid for ds in series)
    # the SR says what the job says
    report = read_back(_pacs_sr_file(pacs, study_uid, root / "a-sr.dcm"))
    assert report.study_instance_uid == study_uid
    assert report.processing_succeeded
    assert report.overall_probability == pytest.approx(
        result["result"]["probability_of_pathology"], abs=1e-3)

    timings = result["timings"]
    latency = {
        "instances": job["n_instances"],
        "stable_age_setting_s": STABLE_AGE,
        "stable_wait_s": round(job["created_ts"] - last_store, 2),
        "transfer_s": round(timings["transfer_s"], 2),
        "inference_s": round(timings["inference_s"], 2),
        "write_s": round(timings["write_s"], 2),
        "upload_s": round(timings["upload_s"], 2),
        "delivery_s": round(timings["delivery_s"], 2),
        "total_last_store_to_pacs_s": round(arrived - last_store, 2),
    }
    latency["queue_and_polling_s"] = round(latency["total_last_store_to_pacs_s"] - sum(
        latency[k] for k in ("stable_wait_s", "transfer_s", "inference_s", "write_s",
                             "upload_s", "delivery_s")), 2)
    (root / "latency.json").write_text(json.dumps(latency, indent=1))
    print("latency", json.dumps(latency))
    SHARED["a"] = (study_uid, folder)


def test_same_study_sent_again_gives_no_duplicate(
    node: OrthancProcess, pacs: OrthancProcess, worker: WorkerProcess
) -> None:
    if "a" not in SHARED:
        pytest.skip("needs the end-to-end study")
    study_uid, folder = SHARED["a"]
    before = _last_change(pacs)
    events_before = _health(node)["events"]
    _storescu(node, folder)
    time.sleep(STABLE_AGE + 3)  # long enough for a STABLE_STUDY and a job to start
    events_after = _health(node)["events"]
    print("duplicate", json.dumps({"before": events_before, "after": events_after}))
    assert events_after["enqueued"] == events_before["enqueued"]
    jobs = _jobs(node, study_uid)
    assert len(jobs) == 1 and jobs[0]["state"] == "delivered" and jobs[0]["attempts"] == 1
    assert _last_change(pacs) == before  # nothing re-sent (the PACS overwrites on re-send)
    assert _count(_qido_instances(pacs, study_uid), SR_CLASS_PREFIX) == 1


def test_two_studies_sent_at_once_are_each_answered_once(
    root: Path, node: OrthancProcess, pacs: OrthancProcess, worker: WorkerProcess
) -> None:
    studies = [_study(root, name) for name in ("e1", "e2")]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda s: _storescu(node, s[1]), studies))
    for study_uid, _ in studies:
        job = _wait_job(node, study_uid, ("delivered", "failed"))
        assert job["state"] == "delivered", job["reason"]
        assert len(_jobs(node, study_uid)) == 1
        assert _count(_qido_instances(pacs, study_uid), SR_CLASS_PREFIX) == 1


def test_non_chest_study_gets_a_failure_sr(
    root: Path, node: OrthancProcess, pacs: OrthancProcess, worker: WorkerProcess
) -> None:
    study_uid, folder = _study(root, "f", lungs=False, body_part="ABDOMEN")
    _storescu(node, folder)
    job = _wait_job(node, study_uid, ("delivered", "failed"))
    assert job["state"] == "delivered", job["reason"]
    assert job["result"]["result"]["processing_status"] == "Failure"
    assert job["reason"].startswith("Failure (")
    report = read_back(_pacs_sr_file(pacs, study_uid, root / "f-sr.dcm"))
    assert report.study_instance_uid == study_uid and not report.processing_succeeded


def test_worker_killed_mid_job_completes_once_after_restart(
    root: Path, node: OrthancProcess, pacs: OrthancProcess, worker: WorkerProcess
) -> None:
    worker.stop()
    worker.start()  # a fresh process: its first job also loads the pipeline
    study_uid, folder = _study(root, "b", n_slices=40)
    _storescu(node, folder)
    tag = f":{worker.pid}:"
    running = wait_for(
        lambda: next((j for j in _jobs(node, study_uid)
                      if j["state"] == "running" and tag in j["worker"]), None),
        60, "the worker to take the job", every=0.02)
    worker.kill()
    after_kill = _jobs(node, study_uid)[0]
    assert after_kill["state"] == "running", "the job finished before the kill; not a crash test"
    assert _count(_qido_instances(pacs, study_uid), SR_CLASS_PREFIX) == 0
    worker.start()
    job = _wait_job(node, study_uid, ("delivered", "failed"))
    assert job["state"] == "delivered", job["reason"]
    assert job["attempts"] == 2 and job["worker"] != running["worker"]
    assert len(_jobs(node, study_uid)) == 1
    assert _count(_qido_instances(pacs, study_uid), SR_CLASS_PREFIX) == 1
    SHARED["restart"] = {"first_worker": running["worker"], "second_worker": job["worker"],
                         "attempts": job["attempts"], "reason": job["reason"]}
    print("restart", json.dumps(SHARED["restart"]))


def test_pacs_down_at_first_is_retried_until_delivered(
    root: Path, node: OrthancProcess, pacs: OrthancProcess, worker: WorkerProcess
) -> None:
    pacs.stop()
    try:
        study_uid, folder = _study(root, "c")
        _storescu(node, folder)
        waiting = wait_for(
            lambda: next((j for j in _jobs(node, study_uid)
                          if "delivery to pacs failed" in j["reason"]), None),
            90, "a failed delivery attempt to be recorded")
        assert waiting["state"] in ("queued", "running")
    finally:
        pacs.start()
    job = _wait_job(node, study_uid, ("delivered", "failed"), timeout=90)
    assert job["state"] == "delivered", job["reason"]
    assert job["attempts"] >= 2
    assert _count(_qido_instances(pacs, study_uid), SR_CLASS_PREFIX) == 1


def test_orthanc_killed_before_the_study_was_stable_queues_it_after_restart(
    root: Path, node: OrthancProcess, pacs: OrthancProcess, worker: WorkerProcess
) -> None:
    study_uid, folder = _study(root, "g", n_slices=24)
    _storescu(node, folder)
    node.kill()  # well within StableAge: no STABLE_STUDY was raised
    assert _count_jobs_on_disk(root, study_uid) == 0
    node.start()  # the start-up sweep finds the stable study in Orthanc's change log
    job = _wait_job(node, study_uid, ("delivered", "failed"))
    assert job["state"] == "delivered", job["reason"]
    assert _health(node)["events"]["swept"] >= 1
    assert _count(_qido_instances(pacs, study_uid), SR_CLASS_PREFIX) == 1


def _count_jobs_on_disk(root: Path, study_uid: str) -> int:
    from jobs import SqliteJobQueue

    return len(SqliteJobQueue(root / "var" / "jobs.sqlite3").find(study_uid))


def test_stow_rs_study_is_processed_and_results_served_by_dicomweb(
    root: Path, node: OrthancProcess, worker: WorkerProcess
) -> None:
    study_uid, folder = _study(root, "d")
    boundary = "ctnode-test-boundary"
    parts = b"".join(
        b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n"
        + p.read_bytes() + b"\r\n" for p in sorted(folder.glob("*.dcm"))
    ) + b"--" + boundary.encode() + b"--\r\n"
    with node.client() as c:
        stow = c.post("/dicom-web/studies", content=parts, headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": "application/dicom+json"})
    assert stow.status_code == 200, stow.text
    job = _wait_job(node, study_uid, ("delivered", "failed"))
    assert job["state"] == "delivered", job["reason"]
    with node.client() as c:
        series = c.get(f"/dicom-web/studies/{study_uid}/series", params={"Modality": "SR"})
        assert series.status_code == 200
        [sr_series] = series.json()
        series_uid = sr_series["0020000E"]["Value"][0]
        instances = c.get(f"/dicom-web/studies/{study_uid}/series/{series_uid}/instances")
        [sr] = instances.json()
        sop_uid = sr["00080018"]["Value"][0]
        wado = c.get(f"/dicom-web/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}",
                     headers={"Accept": 'multipart/related; type="application/dicom"'})
    assert wado.status_code == 200
    assert b"DICM" in wado.content and sop_uid.encode() in wado.content


def test_logs_carry_no_patient_data(root: Path, node: OrthancProcess,
                                    worker: WorkerProcess) -> None:
    """Our log lines (worker, and the plugin's inside Orthanc's log) name UIDs, not people."""
    worker_log = (root / "worker.log").read_text(errors="replace")
    plugin_lines = [line for line in node.log_path.read_text(errors="replace").splitlines()
                    if "ctnode " in line]
    assert "job 1 claimed" in worker_log and plugin_lines
    for text in (worker_log, "\n".join(plugin_lines)):
        for phi in ("Test^Orthanc", "ORTH-TEST-1", "19700101", "PHANTOM^CHEST", "19600101"):
            assert phi not in text

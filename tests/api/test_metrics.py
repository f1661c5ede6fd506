"""Metrics, request IDs, JSON logs and ``ctnode status``: checked through what an operator sees.

``/metrics`` is always read back with the Prometheus client's own parser.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from api.metrics import Metrics, MetricsMiddleware, metrics_router, queue_counts
from ctnode.logging_setup import (
    configure_logging,
    current_request_id,
    log_context,
    redact_phi,
)
from ctnode.settings import Settings
from inference.types import ModelStatus, ProcessingStatus, StudyResult
from tests.helpers import free_port

Samples = dict[str, list[tuple[dict[str, str], float]]]


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples.setdefault(s.name, []).append((dict(s.labels), s.value))
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    for got, v in samples.get(name, []):
        if all(got.get(k) == want for k, want in labels.items()):
            return v
    return None


def make_app(metrics: Metrics) -> FastAPI:
    app = FastAPI()
    app.include_router(metrics_router(metrics))
    log = logging.getLogger("api.test_endpoint")

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, Any]:
        log.info("item %s asked", item_id)
        return {"item": item_id, "request_id": current_request_id()}

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("fault")

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "healthy", "version": "9.9",
                "models": [{"name": "chest_quant", "version": "0.1", "weights_installed": True}]}

    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def success(stages: dict[str, float]) -> StudyResult:
    return StudyResult(ProcessingStatus.SUCCESS, study_uid="1.2.3", series_uid="1.2.3.4",
                       probability=0.7, decision=1, seconds=sum(stages.values()),
                       stage_seconds=stages)


def failure(code: str) -> StudyResult:
    return StudyResult(ProcessingStatus.FAILURE, error="not a chest CT", error_code=code,
                       seconds=0.4, stage_seconds={"unpack": 0.1, "select": 0.3})


def test_requests_are_counted_by_route_template_and_status() -> None:
    metrics = Metrics()
    client = TestClient(make_app(metrics), raise_server_exceptions=False)
    for i in (1, 2, 3):
        assert client.get(f"/items/{i}").status_code == 200
    assert client.get("/items/x").status_code == 422
    assert client.get("/nowhere").status_code == 404
    assert client.get("/boom").status_code == 500
    s = scrape(client)
    total = "ctnode_http_requests_total"
    assert value(s, total, route="/items/{item_id}", method="GET", status="200") == 3
    assert value(s, total, route="/items/{item_id}", method="GET", status="422") == 1
    assert value(s, total, route="<unmatched>", status="404") == 1
    assert value(s, total, route="/boom", status="500") == 1
    assert not any("/items/1" in lb.get("route", "") for lb, _ in s[total])
    assert value(s, "ctnode_http_request_duration_seconds_count",
                 route="/items/{item_id}") == 4
    assert value(s, "ctnode_http_request_duration_seconds_bucket", route="/items/{item_id}",
                 le="+Inf") == 4
    assert value(s, "ctnode_http_requests_in_progress") == 1  # the scrape itself


def test_pipeline_results_and_stage_histogram() -> None:
    metrics = Metrics()
    metrics.observe_result(success({"unpack": 0.02, "select": 0.3, "models": 4.0}))
    metrics.observe_result(success({"unpack": 0.03, "select": 0.2, "models": 40.0}))
    before = time.time()
    metrics.observe_result(failure("not_chest_ct"))
    s = scrape(TestClient(make_app(metrics)))
    assert value(s, "ctnode_pipeline_results_total", status="Success", error_code="") == 2
    assert value(s, "ctnode_pipeline_results_total", status="Failure",
                 error_code="not_chest_ct") == 1
    assert value(s, "ctnode_pipeline_stage_duration_seconds_count", stage="models") == 2
    assert value(s, "ctnode_pipeline_stage_duration_seconds_sum", stage="models") == \
        pytest.approx(44.0)
    assert value(s, "ctnode_pipeline_stage_duration_seconds_bucket", stage="models",
                 le="5.0") == 1
    assert value(s, "ctnode_pipeline_stage_duration_seconds_count", stage="unpack") == 3
    assert value(s, "ctnode_pipeline_duration_seconds_count") == 3
    ts = value(s, "ctnode_pipeline_last_failure_timestamp_seconds", error_code="not_chest_ct")
    assert ts is not None and before <= ts <= time.time()


def test_jobs_and_models_are_read_at_scrape_time(tmp_path: Path) -> None:
    from jobs import JobState, SqliteJobQueue

    queue_file = tmp_path / "jobs.sqlite3"
    models = [ModelStatus("chest_quant", "0.2", True, ("emphysema",)),
              ModelStatus("nodule_net", "1.0", False, ("lung_nodule",))]
    metrics = Metrics(jobs_counts=queue_counts(queue_file), model_statuses=lambda: models)
    client = TestClient(make_app(metrics))
    s = scrape(client)
    assert "ctnode_jobs" not in s  # no queue file yet, and the scrape did not create one
    assert not queue_file.exists()
    assert value(s, "ctnode_model_weights_installed", model="chest_quant", version="0.2") == 1
    assert value(s, "ctnode_model_weights_installed", model="nodule_net") == 0

    q = SqliteJobQueue(queue_file)
    for i in range(3):
        q.enqueue(f"1.2.{i}", "scp", f"/spool/{i}", f"h{i}")
    claimed = q.claim("w1", 60)
    assert claimed is not None
    q.mark(claimed.id, JobState.FAILED, reason="no usable series")
    q.claim("w1", 60)
    s = scrape(client)
    assert value(s, "ctnode_jobs", state="queued") == 1
    assert value(s, "ctnode_jobs", state="running") == 1
    assert value(s, "ctnode_jobs", state="failed") == 1


def test_a_failing_source_does_not_break_the_scrape(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> dict[str, int]:
        raise OSError("disk gone")

    metrics = Metrics(jobs_counts=broken, model_statuses=lambda: [])
    metrics.observe_result(failure("no_dicom"))
    with caplog.at_level(logging.ERROR, logger="api.metrics"):
        s = scrape(TestClient(make_app(metrics)))
    assert "ctnode_jobs" not in s
    assert value(s, "ctnode_pipeline_results_total", error_code="no_dicom") == 1
    assert any("jobs source failed" in m for m in caplog.messages)


def test_request_id_is_echoed_and_tags_json_log_lines() -> None:
    stream = io.StringIO()
    handler = configure_logging(Settings(log_json=True, log_level="INFO"), stream=stream)
    try:
        client = TestClient(make_app(Metrics()))
        r = client.get("/items/7", headers={"X-Request-ID": "abc-123"})
        assert r.headers["x-request-id"] == "abc-123" and r.json()["request_id"] == "abc-123"
        r2 = client.get("/items/8", headers={"X-Request-ID": "bad id\twith spaces"})
        rid = r2.headers["x-request-id"]
        assert rid != "bad id\twith spaces" and len(rid) == 16 and r2.json()["request_id"] == rid
        assert len(r2.headers.get_list("x-request-id")) == 1
    finally:
        logging.getLogger().removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    mine = [e for e in lines if e["logger"] == "api.test_endpoint"]
    assert [(e["msg"], e["request_id"]) for e in mine] == [("item 7 asked", "abc-123"),
                                                           ("item 8 asked", rid)]
    assert set(mine[0]) >= {"ts", "level", "logger", "msg", "request_id", "job_id"}


def test_logs_carry_job_ids_and_never_patient_identifiers() -> None:
    stream = io.StringIO()
    handler = configure_logging(Settings(log_json=False, log_level="DEBUG"), stream=stream)
    log = logging.getLogger("scp_node.test")
    try:
        with log_context(job_id=42):
            log.info("study 1.2.840.1 from PatientName=DOE^JANE PatientID: 'MRN-991'")
            try:
                raise ValueError("(0010,0030) Patient's Birth Date  DA: '19500101'")
            except ValueError:
                log.exception("failed")
        log.info("outside")
    finally:
        logging.getLogger().removeHandler(handler)
    text = stream.getvalue()
    for secret in ("DOE^JANE", "MRN-991", "19500101"):
        assert secret not in text
    assert "study 1.2.840.1 from PatientName=*** PatientID: ***" in text
    first, *_, last = text.strip().splitlines()
    assert "[job=42]" in first and "[job=" not in last
    assert redact_phi("SeriesInstanceUID=1.2.3") == "SeriesInstanceUID=1.2.3"


def test_configure_logging_replaces_its_handler_and_refuses_bad_level() -> None:
    root = logging.getLogger()
    h1 = configure_logging(Settings(), stream=io.StringIO())
    h2 = configure_logging(Settings(), stream=io.StringIO())
    try:
        assert h1 not in root.handlers and h2 in root.handlers
        with pytest.raises(ValueError, match="log_level"):
            configure_logging(Settings(log_level="LOUD"))
    finally:
        root.removeHandler(h2)


@pytest.fixture
def live_metrics_app() -> Iterator[tuple[str, Metrics]]:
    metrics = Metrics(jobs_counts=lambda: {"queued": 2, "running": 1, "failed": 4},
                      model_statuses=lambda: [])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(make_app(metrics), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", metrics
    server.should_exit = True
    thread.join(timeout=10)


def test_ctnode_status_against_a_running_api(live_metrics_app: tuple[str, Metrics]) -> None:
    from ctnode.cli import app

    url, metrics = live_metrics_app
    metrics.observe_result(success({"select": 0.5, "models": 3.0}))
    metrics.observe_result(failure("not_chest_ct"))
    metrics.observe_result(failure("no_dicom"))
    import httpx

    assert httpx.get(f"{url}/items/1").status_code == 200
    assert httpx.get(f"{url}/boom").status_code == 500
    runner = CliRunner()
    result = runner.invoke(app, ["status", "--api-url", url, "--json"])
    assert result.exit_code == 0, result.output
    st = json.loads(result.output)
    assert st["health"] == "healthy" and st["version"] == "9.9"
    assert st["models"] == [["chest_quant", "0.1", True]]
    assert dict(map(tuple, st["jobs"])) == {"failed": 4, "queued": 2, "running": 1}
    assert dict(map(tuple, st["requests_by_status"])) == {"2xx": 2, "5xx": 1}  # /health + item
    assert dict(map(tuple, st["results"])) == {"Success": 1, "Failure: not_chest_ct": 1,
                                               "Failure: no_dicom": 1}
    assert {code for code, _ in st["last_errors"]} == {"not_chest_ct", "no_dicom"}
    assert st["requests_in_progress"] == 0
    stages = {s: (m, n) for s, m, n in st["stage_mean_seconds"]}
    assert stages["models"][0] == pytest.approx(3.0) and stages["select"][1] == 3
    table = runner.invoke(app, ["status", "--api-url", url])
    assert table.exit_code == 0
    for text in ("healthy", "queued: 2", "not_chest_ct", "5xx: 1", "chest_quant"):
        assert text in table.output


def test_ctnode_status_when_nothing_listens() -> None:
    from ctnode.cli import app

    result = CliRunner().invoke(app, ["status", "--api-url", f"http://127.0.0.1:{free_port()}"])
    assert result.exit_code == 1 and "not reachable" in result.output

"""The batch client against the REAL node: ``api.app:create_app`` served by uvicorn.

A folder of phantom chest CT ZIPs, a broken ZIP and (when ../shared/data is
present) the real non-chest cases go through ``python -m api.batch_inference_client``;
the spreadsheet is checked against the server's own /metrics, then resumed.
``--local`` runs the same files through the in-process pipeline.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest
from typer.testing import CliRunner

from api.batch import RESULTS_SHEET, LocalProcessor, discover_inputs, load_rows, run_batch
from api.batch.runner import OutputFormat
from api.metrics import parse_metrics_text
from ctnode.settings import Settings
from tests.conftest import SHARED_DATA
from tests.helpers import free_port, zip_folder

REPO_ROOT = Path(__file__).resolve().parents[2]
N_PHANTOMS = 2


@dataclass
class Batch:
    folder: Path
    study_uids: dict[str, str]  # file name -> StudyInstanceUID of the phantom
    non_chest: list[str]  # file names of the real non-chest cases (empty without shared data)


@pytest.fixture(scope="module")
def batch_folder(tmp_path_factory: pytest.TempPathFactory) -> Batch:
    from phantom import write_small_study

    folder = tmp_path_factory.mktemp("batch_in")
    uids: dict[str, str] = {}
    for seed in range(N_PHANTOMS):
        study = write_small_study(tmp_path_factory.mktemp(f"phantom{seed}"), seed=seed)
        name = f"phantom_{seed}.zip"
        zip_folder(study.root, folder / name)
        uids[name] = study.study_uid
    (folder / "broken.zip").write_bytes(b"PK\x03\x04 truncated, not really a zip")
    non_chest: list[str] = []
    if (SHARED_DATA / "ts_upper_abdomen_dicom").is_dir():
        zip_folder(SHARED_DATA / "ts_upper_abdomen_dicom", folder / "upper_abdomen.zip")
        non_chest.append("upper_abdomen.zip")
    if (SHARED_DATA / "ts_abdomen_pelvis.nii.gz").is_file():
        shutil.copy(SHARED_DATA / "ts_abdomen_pelvis.nii.gz", folder / "abdomen_pelvis.nii.gz")
        non_chest.append("abdomen_pelvis.nii.gz")
    return Batch(folder, uids, non_chest)


def _env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "COLUMNS": "120",
            "CTNODE_NODE__WORK_DIR": str(tmp / "var"),
            "CTNODE_WEIGHTS__DIRECTORY": str(tmp / "weights")}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real app in a uvicorn subprocess on a free port; stopped by its handle."""
    tmp = tmp_path_factory.mktemp("node")
    port = free_port()
    code = ("import uvicorn; from api.app import create_app; from ctnode.settings import "
            f"Settings; uvicorn.run(create_app(Settings()), host='127.0.0.1', port={port}, "
            "log_level='warning')")
    log = (tmp / "server.log").open("w")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT, env=_env(tmp),
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp / "server.log").read_text()
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the API did not start in 60 s"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _batch_cli(args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "api.batch_inference_client", *args],
                          cwd=REPO_ROOT, env=_env(tmp), capture_output=True, text=True,
                          timeout=300)


def _check_rows(rows: list[dict[str, Any]], batch: Batch) -> None:
    by_name = {r["file"]: r for r in rows}
    assert set(by_name) == {*batch.study_uids, "broken.zip", *batch.non_chest}
    for name, uid in batch.study_uids.items():
        row = by_name[name]
        assert row["processing_status"] == "Success", row["error"]
        assert row["study_uid"] == uid and row["series_uid"]
        assert isinstance(row["probability_of_pathology"], float)
        assert row["pathology"] in (0, 1) and row["top_pathologies"]
        assert row["time_of_processing"] > 0
        # the default model scores pleural effusion on any slice thickness (emphysema needs
        # <= 3 mm sections since issue 13, and these studies are thicker)
        assert row["pleural_effusion"] is not None
    broken = by_name["broken.zip"]
    assert broken["processing_status"] == "Failure" and broken["error"]
    assert broken["probability_of_pathology"] is None
    for name in batch.non_chest:
        row = by_name[name]
        assert row["processing_status"] == "Failure", name
        assert row["error_code"] in {"not_chest_ct", "no_usable_series"}, row["error"]


def test_folder_against_the_real_api_then_metrics_status_and_resume(
        node: str, batch_folder: Batch, tmp_path: Path) -> None:
    out = tmp_path / "results.xlsx"
    args = ["--input-dir", str(batch_folder.folder), "--output", str(out), "--api-url", node]
    done = _batch_cli(args, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "batch summary" in done.stderr
    rows = load_rows(out, OutputFormat.XLSX)
    _check_rows(rows, batch_folder)
    by_name = {r["file"]: r for r in rows}
    assert 400 <= by_name["broken.zip"]["http_status"] < 500  # the input's fault: 4xx
    assert all(r["request_id"] for r in rows)
    ws = openpyxl.load_workbook(out)[RESULTS_SHEET]
    assert ws.max_row == 1 + len(rows) and ws.freeze_panes == "B2"

    samples = parse_metrics_text(httpx.get(f"{node}/metrics").text)

    def total(name: str, **labels: str) -> float:
        return sum(v for lb, v in samples.get(name, [])
                   if all(lb.get(k) == w for k, w in labels.items()))

    n_ok = len(batch_folder.study_uids)
    statuses = {(lb["route"], lb["status"]): v for lb, v in
                samples["ctnode_http_requests_total"] if lb["route"].startswith("/predict")}
    expected: dict[tuple[str, str], int] = {}
    for row in rows:
        route = "/predict_nifti" if str(row["file"]).endswith(".nii.gz") else "/predict"
        key = (route, str(row["http_status"]))
        expected[key] = expected.get(key, 0) + 1
    assert statuses == expected
    assert expected[("/predict", "200")] == n_ok
    assert total("ctnode_pipeline_results_total", status="Success") == n_ok
    # The broken ZIP may be refused before the pipeline runs; the non-chest cases are not.
    assert total("ctnode_pipeline_results_total", status="Failure") >= len(
        batch_folder.non_chest)
    stages = {lb["stage"] for lb, _ in samples["ctnode_pipeline_stage_duration_seconds_count"]}
    assert len(stages) >= 3
    assert total("ctnode_model_weights_installed", model="chest_quant") == 1

    from ctnode.cli import app

    status = CliRunner().invoke(app, ["status", "--api-url", node])
    assert status.exit_code == 0, status.output
    assert "healthy" in status.output and "chest_quant" in status.output

    again = _batch_cli(args, tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"{len(rows)} of {len(rows)} files already in the output" in again.stderr
    after = parse_metrics_text(httpx.get(f"{node}/metrics").text)
    predicts = sum(v for lb, v in after["ctnode_http_requests_total"]
                   if lb["route"].startswith("/predict"))
    assert predicts == n_ok + 1 + len(batch_folder.non_chest)  # nothing sent again


def test_local_mode_runs_the_pipeline_in_process(batch_folder: Batch, tmp_path: Path,
                                                 settings: Settings) -> None:
    out = tmp_path / "local.csv"
    outcome = run_batch(discover_inputs(batch_folder.folder), out, LocalProcessor(settings),
                        fmt=OutputFormat.CSV, concurrency=1, input_label="x", target="local")
    rows = load_rows(out, OutputFormat.CSV)
    _check_rows(rows, batch_folder)
    assert all(r["http_status"] is None and r["attempts"] == 1 for r in rows)
    assert rows == list(outcome.rows)
    assert outcome.summary.success == len(batch_folder.study_uids)

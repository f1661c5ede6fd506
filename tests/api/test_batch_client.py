"""The batch client against a live local API that mimics the REST contract.

The contract app here answers like the node (bodies from ``StudyResult.to_json``)
but decides by the upload's content, so that every path of the client (Success,
4xx Failure, 5xx then retry, slow answer, unreachable) is exercised quickly.
``test_batch_live.py`` runs the same client against the real app.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import uvicorn
from fastapi import FastAPI, File, UploadFile
from fastapi.responses import JSONResponse

from api.batch import (
    COLUMNS,
    HEADERS,
    RESULTS_SHEET,
    SUMMARY_SHEET,
    ApiClient,
    InputDirError,
    InputKind,
    OutputFileError,
    discover_inputs,
    load_rows,
    output_format,
    run_batch,
    summarise,
)
from api.batch.http_client import backoff_delay
from api.batch.runner import OutputFormat
from inference.findings import FINDING_KEYS, FINDINGS
from inference.types import FindingResult, ProcessingStatus, StudyResult
from tests.helpers import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]

# --------------------------------------------------------------------------- contract app


def _fake_result(name: str, data: bytes) -> tuple[StudyResult, int]:
    """Success with probabilities derived from the content; Failures for marked ZIPs."""
    if not data.startswith(b"PK"):
        return StudyResult(ProcessingStatus.FAILURE, error="the upload is not a ZIP archive",
                           error_code="unsafe_archive", seconds=0.01), 400
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = zf.namelist()
    if "abdomen.dcm" in members:
        return StudyResult(ProcessingStatus.FAILURE, study_uid="1.2.3.9", series_uid="1.2.3.9.1",
                           error="the volume is not a chest CT: no lung fields",
                           error_code="not_chest_ct", seconds=0.02), 422
    digest = hashlib.sha256(data).digest()
    probs = {key: round(digest[i] / 255, 4) for i, key in enumerate(FINDING_KEYS)}
    probs["low_vertebral_bone_density"] = None  # one finding not assessed: must stay empty
    findings = tuple(FindingResult(k, p) for k, p in probs.items())
    assessed = sorted((p, k) for k, p in probs.items() if p is not None)
    top = tuple(FINDINGS[k].display_name for _, k in reversed(assessed[-3:]))
    probability = max(p for p, _ in assessed)
    return StudyResult(
        ProcessingStatus.SUCCESS, study_uid=f"1.2.826.0.1.{digest[0]}",
        series_uid=f"1.2.826.0.1.{digest[0]}.{digest[1]}", probability=probability,
        decision=int(probability >= 0.5), findings=findings, top_pathologies=top,
        most_dangerous_key=assessed[-1][1], seconds=0.05 + digest[2] / 1000,
        stage_seconds={"select": 0.01, "models": 0.03}), 200


class ContractServer:
    """The contract app on a free 127.0.0.1 port, served by uvicorn in a thread."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.fail_first: dict[str, int] = {}  # file name -> 503 answers still to give
        self.delay_s = 0.0
        app = FastAPI()

        @app.get("/health")
        def health() -> dict[str, Any]:
            return {"status": "healthy", "version": "contract"}

        async def predict(file: UploadFile) -> JSONResponse:
            data = await file.read()
            name = file.filename or ""
            self.calls[name] += 1
            if self.delay_s:
                await _sleep(self.delay_s)
            if self.fail_first.get(name, 0) > 0:
                self.fail_first[name] -= 1
                body = StudyResult(ProcessingStatus.FAILURE, error="the node ran out of memory",
                                   error_code="internal_error").to_json()
                return JSONResponse(body, status_code=503)
            result, status = _fake_result(name, data)
            return JSONResponse(result.to_json(request_id=f"req-{self.calls.total()}"),
                                status_code=status)

        @app.post("/predict")
        async def predict_zip(file: UploadFile = File(...)) -> JSONResponse:  # noqa: B008
            return await predict(file)

        @app.post("/predict_nifti")
        async def predict_nifti(file: UploadFile = File(...)) -> JSONResponse:  # noqa: B008
            result = StudyResult(ProcessingStatus.FAILURE, error="the volume is not a chest CT",
                                 error_code="not_chest_ct", seconds=0.01)
            self.calls[file.filename or ""] += 1
            return JSONResponse(result.to_json(), status_code=422)

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ContractServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("contract server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


@pytest.fixture
def server() -> Iterator[ContractServer]:
    with ContractServer() as srv:
        yield srv


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """5 'studies': 3 good ZIPs, a broken ZIP, a non-chest ZIP; plus files to ignore."""
    d = tmp_path / "in"
    d.mkdir()
    for i in range(3):
        make_zip(d / f"study_{i:02d}.zip", {f"s{i}/IM{j}": os.urandom(64) for j in range(3)})
    (d / "broken.zip").write_bytes(b"this is not a zip at all")
    make_zip(d / "abdomen.zip", {"abdomen.dcm": b"x" * 100})
    (d / "notes.txt").write_text("ignored")
    (d / ".hidden.zip").write_bytes(b"PK")
    return d


def client_for(srv: ContractServer, **kw: Any) -> ApiClient:
    args: dict[str, Any] = {"timeout_s": 10.0, "retries": 2, "backoff_s": 0.05}
    args.update(kw)
    return ApiClient(srv.url, **args)


def run(folder: Path, output: Path, client: ApiClient, **kw: Any) -> Any:
    args: dict[str, Any] = {"fmt": output_format(output), "concurrency": 2,
                            "input_label": str(folder), "target": client.api_url}
    args.update(kw)
    try:
        return run_batch(discover_inputs(folder), output, client, **args)
    finally:
        client.close()


# --------------------------------------------------------------------------- discovery


def test_discover_finds_zip_and_nifti_sorted_and_skips_the_rest(tmp_path: Path) -> None:
    (tmp_path / "b.zip").write_bytes(b"PK")
    (tmp_path / "a.nii.gz").write_bytes(b"x")
    (tmp_path / "c.NII").write_bytes(b"x")
    (tmp_path / "~$lock.zip").write_bytes(b"x")
    (tmp_path / "readme.md").write_text("x")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "d.zip").write_bytes(b"PK")
    found = discover_inputs(tmp_path)
    assert [(f.name, f.kind) for f in found] == [
        ("a.nii.gz", InputKind.NIFTI), ("b.zip", InputKind.ZIP), ("c.NII", InputKind.NIFTI)]
    assert [f.name for f in discover_inputs(tmp_path, recursive=True)][-1] == "sub/d.zip"


def test_discover_says_why_when_nothing_to_send(tmp_path: Path) -> None:
    with pytest.raises(InputDirError, match="does not exist"):
        discover_inputs(tmp_path / "nope")
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(InputDirError, match="no .zip"):
        discover_inputs(tmp_path)


def test_backoff_doubles_with_bounded_jitter() -> None:
    import random

    rng = random.Random(0)
    delays = [backoff_delay(n, 1.0, rng) for n in (1, 2, 3, 4)]
    for n, d in enumerate(delays, start=1):
        assert 0.75 * 2 ** (n - 1) <= d <= 1.25 * 2 ** (n - 1)
    assert backoff_delay(20, 1.0, rng) <= 60 * 1.25


# --------------------------------------------------------------------------- folder run


def test_folder_to_xlsx_read_back_cell_by_cell(server: ContractServer, folder: Path,
                                               tmp_path: Path) -> None:
    out = tmp_path / "results.xlsx"
    outcome = run(folder, out, client_for(server))
    assert outcome.info.processed == 5 and outcome.info.skipped == 0
    assert not outcome.info.interrupted

    wb = openpyxl.load_workbook(out)
    assert wb.sheetnames == [RESULTS_SHEET, SUMMARY_SHEET]
    ws = wb[RESULTS_SHEET]
    header = [c.value for c in ws[1]]
    assert header == list(HEADERS)
    assert header[:9] == ["file", "study_uid", "series_uid", "probability_of_pathology",
                          "pathology", "top_pathologies", "processing_status",
                          "time_of_processing", "error"]
    assert header[-22:] == [FINDINGS[k].display_name for k in FINDING_KEYS]
    assert ws.freeze_panes == "B2"
    assert ws.auto_filter.ref == f"A1:{ws.cell(1, len(HEADERS)).column_letter}6"
    assert all(c.font.bold for c in ws[1])
    col = {h: i + 1 for i, h in enumerate(header)}
    assert ws.column_dimensions["A"].width == 32

    files = [ws.cell(r, 1).value for r in range(2, ws.max_row + 1)]
    assert files == ["abdomen.zip", "broken.zip", "study_00.zip", "study_01.zip",
                     "study_02.zip"]
    for r, name in enumerate(files, start=2):
        data = (folder / name).read_bytes()
        expected, status = _fake_result(name, data)
        body = expected.to_json()

        def cell(h: str, r: int = r) -> Any:
            return ws.cell(r, col[h]).value

        assert cell("processing_status") == body["processing_status"]
        assert cell("study_uid") == (body["study_uid"] or None)
        assert cell("series_uid") == (body["series_uid"] or None)
        assert cell("http_status") == status
        assert cell("attempts") == 1
        assert isinstance(cell("client_seconds"), float) and cell("client_seconds") > 0
        assert cell("request_id").startswith("req-")
        assert cell("time_of_processing") == pytest.approx(body["time_of_processing"])
        if expected.ok:
            assert cell("probability_of_pathology") == pytest.approx(
                body["probability_of_pathology"])
            assert ws.cell(r, col["probability_of_pathology"]).number_format == "0.000"
            assert cell("pathology") == body["pathology"]
            assert cell("top_pathologies") == "; ".join(body["top_pathologies"])
            assert cell("most_dangerous_pathology_type") == body["most_dangerous_pathology_type"]
            assert cell("error") is None and cell("error_code") is None
            for key in FINDING_KEYS:
                p = body["findings"][key]["probability"]
                got = ws.cell(r, col[FINDINGS[key].display_name])
                assert got.value == (None if p is None else pytest.approx(p)), key
                assert got.number_format == "0.000"
        else:
            assert cell("probability_of_pathology") is None and cell("pathology") is None
            assert cell("error") == body["error"]
            assert cell("error_code") == body["error_code"]
            assert all(ws.cell(r, col[FINDINGS[k].display_name]).value is None
                       for k in FINDING_KEYS)
    assert ws.cell(files.index("broken.zip") + 2, col["error_code"]).value == "unsafe_archive"
    assert ws.cell(files.index("abdomen.zip") + 2, col["error_code"]).value == "not_chest_ct"

    summary = {ws2[0].value: ws2[1].value for ws2 in wb[SUMMARY_SHEET].iter_rows(max_col=2)
               if ws2[0].value is not None}
    assert summary["files found"] == 5 and summary["processed in this run"] == 5
    assert summary["Success"] == 3 and summary["Failure (answered)"] == 2
    assert summary["Failure (no answer; retried on resume)"] == 0
    positives = sum(1 for n in files if n.startswith("study")
                    and _fake_result(n, (folder / n).read_bytes())[0].decision == 1)
    assert summary["pathology = 1"] == positives
    assert summary["pathology rate (of Success)"] == pytest.approx(positives / 3)
    assert summary["unsafe_archive"] == 1 and summary["not_chest_ct"] == 1
    assert summary["interrupted"] == "no"
    assert {"p50", "p90", "p95", "max", "mean"} <= set(summary)
    hist_rows = [(k, v) for k, v in summary.items() if isinstance(k, str) and k[:1].isdigit()
                 and "-" in k]
    assert len(hist_rows) == 10 and sum(v for _, v in hist_rows) == 3
    with zipfile.ZipFile(out) as zf:  # openpyxl does not load charts: look in the package
        assert any(n.startswith("xl/charts/chart") for n in zf.namelist())


def test_resume_skips_answered_files(server: ContractServer, folder: Path,
                                     tmp_path: Path) -> None:
    out = tmp_path / "results.xlsx"
    run(folder, out, client_for(server))
    calls = server.calls.total()
    make_zip(folder / "study_99.zip", {"new/IM0": b"new"})
    outcome = run(folder, out, client_for(server))
    assert outcome.info.skipped == 5 and outcome.info.processed == 1
    assert server.calls.total() == calls + 1 and server.calls["study_99.zip"] == 1
    rows = load_rows(out, OutputFormat.XLSX)
    assert [r["file"] for r in rows][-1] == "study_99.zip" and len(rows) == 6


def test_5xx_is_retried_with_backoff(server: ContractServer, folder: Path,
                                     tmp_path: Path) -> None:
    server.fail_first["study_01.zip"] = 2
    out = tmp_path / "results.xlsx"
    run(folder, out, client_for(server, retries=2))
    row = next(r for r in load_rows(out, OutputFormat.XLSX) if r["file"] == "study_01.zip")
    assert row["processing_status"] == "Success" and row["attempts"] == 3
    assert server.calls["study_01.zip"] == 3


def test_5xx_after_retries_is_not_final_and_resume_sends_it_again(
        server: ContractServer, folder: Path, tmp_path: Path) -> None:
    server.fail_first["study_02.zip"] = 2
    out = tmp_path / "results.csv"
    first = run(folder, out, client_for(server, retries=1))
    row = next(r for r in first.rows if r["file"] == "study_02.zip")
    assert row["error_code"] == "client_server_error" and row["http_status"] == 503
    assert "out of memory" in str(row["error"]) and row["attempts"] == 2
    assert first.summary.no_answer == 1
    second = run(folder, out, client_for(server, retries=1))
    assert second.info.skipped == 4 and second.info.processed == 1
    row = next(r for r in second.rows if r["file"] == "study_02.zip")
    assert row["processing_status"] == "Success" and second.summary.no_answer == 0
    assert server.calls["study_02.zip"] == 3


def test_unreachable_api_and_timeout_give_client_failures(server: ContractServer,
                                                          tmp_path: Path) -> None:
    one = tmp_path / "one"
    one.mkdir()
    make_zip(one / "a.zip", {"x": b"1"})
    [item] = discover_inputs(one)
    dead = ApiClient(f"http://127.0.0.1:{free_port()}", timeout_s=2, retries=1, backoff_s=0.01)
    result = dead(item)
    dead.close()
    assert result.body["error_code"] == "client_unreachable" and result.attempts == 2
    assert not result.final and result.http_status is None
    server.delay_s = 1.0
    slow = client_for(server, timeout_s=0.3, retries=0)
    result = slow(item)
    slow.close()
    assert result.body["error_code"] == "client_timeout" and result.attempts == 1


def test_nifti_goes_to_predict_nifti(server: ContractServer, tmp_path: Path) -> None:
    d = tmp_path / "n"
    d.mkdir()
    (d / "vol.nii.gz").write_bytes(b"\x1f\x8b fake")
    outcome = run(d, tmp_path / "r.xlsx", client_for(server))
    assert outcome.rows[0]["error_code"] == "not_chest_ct"
    assert outcome.rows[0]["http_status"] == 422


def test_output_that_is_not_ours_is_not_overwritten(server: ContractServer, folder: Path,
                                                    tmp_path: Path) -> None:
    out = tmp_path / "precious.xlsx"
    out.write_bytes(b"not a workbook")
    with pytest.raises(OutputFileError, match="not a readable"):
        run(folder, out, client_for(server))
    assert out.read_bytes() == b"not a workbook"


def test_summary_of_empty_table() -> None:
    s = summarise([])
    assert s.files == 0 and s.pathology_rate is None and s.processing_seconds == ()
    assert sum(n for _, n in s.probability_histogram) == 0
    assert len(COLUMNS) == len(HEADERS) == 15 + 22


# --------------------------------------------------------------------------- the commands


def _cli(args: list[str], **kw: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "CTNODE_BATCH__CHECKPOINT_S": "0",
           "COLUMNS": "120"}
    return subprocess.Popen([sys.executable, "-m", "api.batch_inference_client", *args],
                            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def test_old_script_command_with_csv(server: ContractServer, folder: Path,
                                     tmp_path: Path) -> None:
    out = tmp_path / "results.csv"
    proc = _cli(["--input-dir", str(folder), "--output", str(out), "--api-url", server.url,
                 "--csv"])
    text, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, text
    assert "batch summary" in text and "Success / Failure / no answer" in text
    assert "3 / 2 / 0" in text
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0].split(",")[:3] == ["file", "study_uid", "series_uid"]
    assert len(lines) == 6
    rows = load_rows(out, OutputFormat.CSV)
    assert [r["processing_status"] for r in rows].count("Success") == 3


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_leaves_a_valid_file_and_a_rerun_completes_it(server: ContractServer,
                                                               folder: Path, tmp_path: Path,
                                                               signum: int) -> None:
    for i in range(3, 8):
        make_zip(folder / f"study_{i:02d}.zip", {"x": str(i).encode()})
    server.delay_s = 0.4
    out = tmp_path / "results.xlsx"
    args = ["--input-dir", str(folder), "--output", str(out), "--api-url", server.url,
            "--concurrency", "1"]
    # Ctrl-C as in a terminal: a shell that starts the tests in the background (nohup,
    # `&`) ignores SIGINT, and an ignored signal stays ignored in every child.
    proc = _cli(args, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 30
    while not (out.exists() and len(load_rows(out, OutputFormat.XLSX)) >= 2):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signum)
    text, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130, text
    assert "interrupted" in text
    rows = load_rows(out, OutputFormat.XLSX)  # a valid workbook with what was done
    assert 2 <= len(rows) < 10
    wb = openpyxl.load_workbook(out)
    summary = {r[0].value: r[1].value for r in wb[SUMMARY_SHEET].iter_rows(max_col=2)}
    assert summary["interrupted"] == "yes"
    assert summary["not processed (interrupted)"] == 10 - len(rows)
    done_before = len(rows)
    server.delay_s = 0.0
    proc = _cli(args)
    text, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, text
    assert f"{done_before} of 10 files already in the output" in text
    assert len(load_rows(out, OutputFormat.XLSX)) == 10
    assert max(server.calls.values()) == 1  # nothing was sent twice


def test_unwritable_output_is_a_clear_error(server: ContractServer, folder: Path,
                                            tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputFileError, match="cannot write"):
        run(folder, tmp_path / "afile" / "results.xlsx", client_for(server))

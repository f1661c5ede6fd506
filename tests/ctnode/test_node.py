"""The README's run command starts the REST API and the DICOM SCP together."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO_ROOT
from tests.helpers import free_port


@pytest.mark.skipif(shutil.which("echoscu") is None, reason="dcmtk echoscu not installed")
def test_node_serves_http_and_dicom(tmp_path: Path) -> None:
    http_port, dicom_port = free_port(), free_port()
    env = {
        **os.environ,
        "CTNODE_API__PORT": str(http_port),
        "CTNODE_SCP__PORT": str(dicom_port),
        "CTNODE_NODE__WORK_DIR": str(tmp_path / "var"),
        "CTNODE_WEIGHTS__DIRECTORY": str(tmp_path / "weights"),
    }
    exe = Path(sys.executable).with_name("ctnode")
    proc = subprocess.Popen([str(exe), "node"], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        health = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{http_port}/health", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.5)
        assert health is not None and health.status_code == 200, "API did not come up"
        assert health.json()["status"] == "healthy"
        echo = subprocess.run(["echoscu", "-aec", "CTNODE", "127.0.0.1", str(dicom_port)],
                              capture_output=True, text=True, timeout=30)
        assert echo.returncode == 0, echo.stdout + echo.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert proc.returncode is not None
    assert "Traceback" not in out, out[-3000:]

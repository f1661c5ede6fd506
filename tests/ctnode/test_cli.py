"""The ctnode command line: help everywhere, predict prints the API's JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ctnode.cli import app
from tests.conftest import REPO_ROOT
from tests.helpers import zip_folder

runner = CliRunner()


def test_top_level_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("predict", "serve", "weights"):
        assert command in result.output


@pytest.mark.parametrize("command", ["predict", "serve", "weights"])
def test_every_command_has_help(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_predict_folder_prints_success_json(small_study: Any, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTNODE_WEIGHTS__DIRECTORY", str(tmp_path / "w"))
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["predict", str(small_study.root), "--output", str(out)])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["processing_status"] == "Success"
    assert json.loads(out.read_text()) == body


def test_predict_failure_exits_1(tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"PK\x03\x04broken")
    result = runner.invoke(app, ["predict", str(junk)])
    assert result.exit_code == 1
    body = json.loads(result.output)
    assert body["processing_status"] == "Failure" and body["error"]


def test_installed_console_script_runs(small_study: Any, tmp_path: Path) -> None:
    """The real `ctnode` entry point, as a user runs it, on a ZIP."""
    exe = Path(sys.executable).with_name("ctnode")
    archive = zip_folder(small_study.root, tmp_path / "s.zip")
    env = {**os.environ, "CTNODE_WEIGHTS__DIRECTORY": str(tmp_path / "w")}
    proc = subprocess.run([str(exe), "predict", str(archive), "--compact"], capture_output=True,
                          text=True, cwd=REPO_ROOT, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    assert body["study_uid"] == small_study.study_uid
    assert body["processing_status"] == "Success"

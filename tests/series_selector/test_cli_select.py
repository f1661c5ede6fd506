"""``ctnode select``: the table, the JSON, the exit codes."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from typer.testing import CliRunner

from ctnode.cli import app
from tests.series_selector.synth import SeriesSpec, write_localizer, write_series

runner = CliRunner()


def _study(root: Path, study_uid: str) -> Path:
    write_localizer(root / "loc", study_uid)
    write_series(root / "s2", SeriesSpec(study_uid, series_number=2, description="Chest soft"))
    write_series(root / "s3", SeriesSpec(study_uid, series_number=3, description="Chest lung",
                                         kernel="B70f"))
    return root


def test_table(tmp_path: Path, study_uid: str) -> None:
    result = runner.invoke(app, ["select", str(_study(tmp_path, study_uid))])
    assert result.exit_code == 0, result.output
    assert "CHOSEN" in result.output and "rejected" in result.output
    assert "is a localizer (scout) image" in result.output
    assert "Chose series 2 'Chest soft'" in result.output


def test_json_from_zip(tmp_path: Path, study_uid: str) -> None:
    src = _study(tmp_path / "src", study_uid)
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in src.rglob("*"):
            if p.is_file():
                zf.write(p, p.relative_to(src).as_posix())
    result = runner.invoke(app, ["select", str(archive), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["study_uid"] == study_uid
    assert len(data["series"]) == 3


def test_exit_codes(tmp_path: Path, study_uid: str) -> None:
    write_series(tmp_path / "short", SeriesSpec(study_uid, n=5))
    assert runner.invoke(app, ["select", str(tmp_path / "short")]).exit_code == 1
    write_series(tmp_path / "other", SeriesSpec("1.2.3.99", n=5))
    several = runner.invoke(app, ["select", str(tmp_path), "--json"])
    assert several.exit_code == 2
    assert json.loads(several.output)["error_code"] == "multiple_studies"
    each = runner.invoke(app, ["select", str(tmp_path), "--json", "--each-study"])
    assert each.exit_code == 1 and len(json.loads(each.output)) == 2
    (tmp_path / "empty").mkdir()
    assert runner.invoke(app, ["select", str(tmp_path / "empty")]).exit_code == 2

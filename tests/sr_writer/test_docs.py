"""docs/sr.md's example runs as written (STYLE 29: docs examples are executed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.sr_writer.synthetic import write_study

DOC = Path(__file__).resolve().parents[2] / "docs" / "sr.md"


def test_sr_doc_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 1
    write_study(tmp_path / "example-study")
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], str(DOC), "exec"), {"__name__": "docs_sr"})
    out = capsys.readouterr().out
    assert "SR_" in out and "result.json" in out
    assert (tmp_path / "summary.png").is_file()
    assert len(list((tmp_path / "results").glob("SR_*.dcm"))) == 1


def test_sr_doc_image_exists() -> None:
    image = re.search(r"!\[[^\]]*\]\(([^)]+)\)", DOC.read_text(encoding="utf-8"))
    assert image is not None
    assert (DOC.parent / image.group(1)).is_file()

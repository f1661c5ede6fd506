"""Settings: defaults, environment variables, a JSON file, and refusals of bad values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from ctnode.settings import Settings


def test_defaults_bind_to_loopback() -> None:
    s = Settings()
    assert s.api.host == "127.0.0.1" and s.api.port == 8000
    assert s.api.api_key is None


def test_environment_overrides_nested_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTNODE_API__PORT", "8123")
    monkeypatch.setenv("CTNODE_SELECTION__MAX_SLICE_THICKNESS_MM", "3.0")
    monkeypatch.setenv("CTNODE_API__API_KEY", "s3cr3t-Value")
    s = Settings()
    assert s.api.port == 8123
    assert s.selection.max_slice_thickness_mm == 3.0
    assert s.api.api_key is not None and s.api.api_key.get_secret_value() == "s3cr3t-Value"
    assert "s3cr3t-Value" not in repr(s.api)  # secrets never print


def test_json_file_is_read_below_the_environment(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "ctnode.json"
    cfg.write_text(json.dumps({"api": {"port": 9001, "host": "127.0.0.2"}}))
    monkeypatch.setenv("CTNODE_CONFIG_FILE", str(cfg))
    monkeypatch.setenv("CTNODE_API__PORT", "9002")
    s = Settings()
    assert s.api.host == "127.0.0.2" and s.api.port == 9002


def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTNODE_API__PORT", "70000")
    with pytest.raises(ValidationError):
        Settings()
    monkeypatch.delenv("CTNODE_API__PORT")
    monkeypatch.setenv("CTNODE_OUTPUT__ORG_UID_ROOT", "1.2.03")
    with pytest.raises(ValidationError):
        Settings()

"""docs/scp.md's configuration and commands are valid as written (STYLE 29)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from ctnode.cli import app
from ctnode.settings import Settings
from scp_node import build_policy, targets_from_settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "scp.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_site_configuration_example_loads() -> None:
    (config,) = _blocks("json")
    settings = Settings(**json.loads(config))
    scp = settings.scp
    assert scp.allowed_source_addresses == ["10.20.0.0/16"]
    policy = build_policy(scp.allowed_calling_ae_titles, scp.allowed_source_addresses, None)
    assert policy.check("PACS", "CTNODE", "10.20.1.5").allowed
    assert [t.key for t in targets_from_settings(scp)] == ["PACS@10.20.1.5:104"]


def test_documented_ctnode_commands_exist() -> None:
    (commands,) = _blocks("sh")
    runner = CliRunner()
    used = re.findall(r"\.venv/bin/ctnode ([a-z ]+?)(?: \d+)?[ \t]*(?:#|$)", commands, re.M)
    assert {c.strip() for c in used} == {"scp", "jobs", "jobs show", "jobs retry"}
    for command in used:
        result = runner.invoke(app, [*command.split(), "--help"])
        assert result.exit_code == 0, (command, result.output)

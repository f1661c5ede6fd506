"""orthanc.json, Dockerfile and docker-compose.yml agree with each other and with the code."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ctnode.settings import Settings
from orthanc_plugin.host import parse_config

REPO = Path(__file__).resolve().parents[2]
_VAR = re.compile(r"\$\{([A-Z0-9_]+)(?::-([^}]*))?\}")


def _substitute(text: str, env: dict[str, str]) -> str:
    """What Orthanc 1.10 does with ${VAR} and ${VAR:-default} (unset -> empty)."""
    return _VAR.sub(lambda m: env.get(m.group(1), m.group(2) or ""), text)


def _orthanc_json(env: dict[str, str]) -> dict[str, object]:
    return json.loads(_substitute((REPO / "orthanc.json").read_text(), env))


def test_orthanc_json_defaults_match_the_node_settings() -> None:
    config = _orthanc_json({"CTNODE_ORTHANC__PASSWORD": "x"})
    plugin = parse_config(config)
    settings = Settings()
    assert plugin.own_manufacturer == settings.output.manufacturer
    assert list(plugin.trigger_modalities) == settings.orthanc.trigger_modalities
    assert config["RegisteredUsers"] == {settings.orthanc.username: "x"}
    assert config["AuthenticationEnabled"] is True
    assert str(config["PythonScript"]).endswith("/orthanc_plugin/plugin.py")
    assert (REPO / "orthanc_plugin" / "plugin.py").is_file()
    assert "pacs" in config["DicomModalities"]  # type: ignore[operator]


def test_unset_password_leaves_an_empty_one_that_the_plugin_refuses() -> None:
    from orthanc_plugin.errors import PluginConfigError
    from orthanc_plugin.host import check_authentication

    config = _orthanc_json({})
    try:
        check_authentication(config)
    except PluginConfigError as exc:
        assert "CTNODE_ORTHANC__PASSWORD" in str(exc)
    else:
        raise AssertionError("an empty password was accepted")


def test_docker_paths_match_orthanc_json_defaults() -> None:
    config = _orthanc_json({"CTNODE_ORTHANC__PASSWORD": "x"})
    dockerfile = (REPO / "Dockerfile").read_text()
    ctnode = config["CtNode"]
    assert isinstance(ctnode, dict)
    assert f"CTNODE_REPO_ROOT={ctnode['RepoRoot']}" in dockerfile
    assert f"CTNODE_ORTHANC__QUEUE_PATH={ctnode['QueuePath']}" in dockerfile
    assert f"CTNODE_ORTHANC_STORAGE={config['StorageDirectory']}" in dockerfile
    for plugin in config["Plugins"]:  # type: ignore[union-attr]
        assert "/usr/share/orthanc/plugins/" in plugin
    compose = (REPO / "docker-compose.yml").read_text()
    assert '["ctnode", "worker", "--orthanc", "http://node:8042"]' in compose
    assert "CTNODE_ORTHANC__DESTINATIONS: '[\"pacs\"]'" in compose

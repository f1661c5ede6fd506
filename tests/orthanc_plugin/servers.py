"""Real servers for the integration tests: Orthanc processes and ``ctnode worker`` processes.

Each binds 127.0.0.1 on free ports, keeps its files under a temporary folder,
and is stopped by its PID (SIGTERM, then SIGKILL) by whoever started it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import kill_process, stop_process, wait_for

REPO = Path(__file__).resolve().parents[2]
ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
PYTHON_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancPython.so")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


class OrthancProcess:
    """One Orthanc with its own config, storage and ports."""

    def __init__(self, name: str, root: Path, config: dict[str, Any],
                 env: dict[str, str] | None = None, auth: tuple[str, str] | None = None,
                 args: tuple[str, ...] = ()) -> None:
        self.name = name
        self.root = root
        self.http_port = int(config["HttpPort"])
        self.dicom_port = int(config["DicomPort"])
        self.aet = str(config.get("DicomAet", "ORTHANC"))
        self.config_path = root / f"{name}.json"
        self.log_path = root / f"{name}.log"
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.auth = auth
        self._env = env or {}
        self._args = args
        self.proc: subprocess.Popen[bytes] | None = None
        root.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(config, indent=1))

    def start(self, timeout: float = 60.0) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [ORTHANC, *self._args, str(self.config_path)], stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, **self._env}, cwd=self.root,
        )
        log.close()

        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited: {self.log_tail()}")
            try:
                return httpx.get(self.url + "/system", auth=self.auth, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout, f"Orthanc {self.name} to answer")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def kill(self) -> None:
        """SIGKILL: a crash; the storage stays for the next start."""
        if self.proc is not None:
            kill_process(self.proc)
            self.proc = None

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=self.auth, timeout=30)

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def node_config(root: Path, http_port: int, dicom_port: int, stable_age: int) -> dict[str, Any]:
    """The shipped orthanc.json with only ports, storage and StableAge changed."""
    config: dict[str, Any] = json.loads((REPO / "orthanc.json").read_text())
    config.update({
        "Name": "ctnode-test",
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "StorageDirectory": str(root / "node-db"),
        "IndexDirectory": str(root / "node-db"),
        "StableAge": stable_age,
        "RemoteAccessAllowed": False,
        "SyncStorageArea": False,  # no fsync per instance: test speed only
    })
    return config


def pacs_config(root: Path, http_port: int, dicom_port: int) -> dict[str, Any]:
    """A plain Orthanc standing in for the hospital PACS (C-FIND allowed, DICOMweb on)."""
    return {
        "Name": "pacs-test",
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": "PACS",
        "StorageDirectory": str(root / "pacs-db"),
        "IndexDirectory": str(root / "pacs-db"),
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {"pacs": "pacs-secret"},
        "DicomAlwaysAllowStore": True,
        "DicomAlwaysAllowFind": True,
        "DicomCheckCalledAet": False,
        "OverwriteInstances": True,  # a re-sent object would show up in /changes
        "SyncStorageArea": False,
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }


class WorkerProcess:
    """``ctnode worker --orthanc URL`` in a subprocess of the project's virtualenv."""

    def __init__(self, url: str, env: dict[str, str], log_path: Path) -> None:
        self.url = url
        self._env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        ctnode = Path(sys.executable).with_name("ctnode")
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [str(ctnode), "worker", "--orthanc", self.url],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self._env}, cwd=REPO,
        )
        log.close()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL: a crash, no chance to clean up."""
        assert self.proc is not None
        kill_process(self.proc)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=30)
            self.proc = None

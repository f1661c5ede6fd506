"""Fixtures for the SCP node: free ports, tiny CT series, real dcmtk tools, node processes."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from tests.helpers import ct_slice, free_port, kill_process, stop_process, wait_for

REPO = Path(__file__).resolve().parents[2]
PATIENT_NAME = "Secret^Patient"
PATIENT_ID = "PID-7731-SECRET"
DCMTK = ("echoscu", "storescu", "storescp")


@pytest.fixture(scope="session")
def dcmtk() -> None:
    missing = [tool for tool in DCMTK if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"dcmtk tools missing: {missing}")


def write_ct_series(
    out_dir: Path,
    study_uid: str,
    series_uid: str | None = None,
    n: int = 4,
    size: int = 32,
    series_number: int = 1,
) -> list[Path]:
    """A tiny axial CT series (pydicom-made), one file per slice; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    frame_uid = generate_uid()
    pixels = np.full((size, size), -1000, dtype=np.int16)
    pixels[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 40
    paths = []
    for i in range(n):
        ds = ct_slice(
            pixels, study_uid=study_uid, series_uid=series_uid, frame_uid=frame_uid,
            instance_number=i + 1, series_number=series_number,
            position=[0.0, 0.0, float(-i * 2)], pixel_mm=1.0, thickness_mm=2.0,
            PatientName=PATIENT_NAME, PatientID=PATIENT_ID, AccessionNumber="ACC-SECRET",
        )
        path = out_dir / f"s{series_number}_{i:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def storescu(port: int, files: list[Path] | Path, calling: str = "MODALITY",
             called: str = "CTNODE", check: bool = True) -> subprocess.CompletedProcess[str]:
    """dcmtk storescu, one association for all files (+sd scans a folder)."""
    targets = [str(files)] if isinstance(files, Path) else [str(f) for f in files]
    args = ["storescu", "-v", "-aet", calling, "-aec", called, "+sd", "+r", "-nh",
            "127.0.0.1", str(port), *targets]
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=check)


def echoscu(port: int, calling: str = "MODALITY", called: str = "CTNODE"
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["echoscu", "-aet", calling, "-aec", called, "127.0.0.1", str(port)],
        capture_output=True, text=True, timeout=30,
    )


@dataclass
class NodeProcess:
    """A `ctnode scp` subprocess and where its state lives."""

    port: int
    work_dir: Path
    log_path: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    @property
    def queue_path(self) -> Path:
        return self.work_dir / "jobs.sqlite3"

    @property
    def spool(self) -> Path:
        return self.work_dir / "spool"

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from ctnode.cli import main; main()", "scp"],
            cwd=self.work_dir, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        wait_for(lambda: self._alive_and_echo(), 60, "the SCP to answer C-ECHO", 0.2)

    def _alive_and_echo(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"node exited: {self.log()[-3000:]}")
        return echoscu(self.port).returncode == 0

    def kill(self) -> None:
        if self.proc is not None:
            kill_process(self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=20)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def jobs(self) -> list[dict[str, object]]:
        if not self.queue_path.exists():
            return []
        conn = sqlite3.connect(self.queue_path, timeout=10)
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute("SELECT * FROM jobs ORDER BY id")]
        except sqlite3.OperationalError:
            return []
        finally:
            conn.close()


@pytest.fixture()
def make_node(tmp_path: Path, dcmtk: None) -> Iterator[Callable[..., NodeProcess]]:
    """Factory: a configured (not yet started) `ctnode scp` process; killed at teardown."""
    nodes: list[NodeProcess] = []

    def factory(destinations: list[tuple[str, int]] = (), **scp: object) -> NodeProcess:
        work = tmp_path / f"node{len(nodes)}"
        work.mkdir()
        port = free_port()
        settings = {
            "port": port, "ae_title": "CTNODE", "stable_seconds": 1.0,
            "job_lease_s": 3.0, "job_poll_s": 0.2, "delivery_backoff_s": 0.5,
            "delivery_backoff_max_s": 2.0, "delivery_max_attempts": 10, "min_free_mb": 0,
            "destinations": [{"ae_title": ae, "host": "127.0.0.1", "port": p}
                             for ae, p in destinations],
            **scp,
        }
        env = {k: v for k, v in os.environ.items() if not k.startswith("CTNODE_")}
        env.update({
            "PYTHONPATH": str(REPO),
            "CTNODE_NODE__WORK_DIR": str(work),
            "CTNODE_SCP": json.dumps(settings),
            "CTNODE_LOG_LEVEL": "INFO",
        })
        weights = REPO / "var" / "weights"
        if weights.is_dir():
            env["CTNODE_WEIGHTS__DIRECTORY"] = str(weights)
        node = NodeProcess(port=port, work_dir=work, log_path=work / "node.log", env=env)
        nodes.append(node)
        return node

    yield factory
    for node in nodes:
        node.kill()


@dataclass
class Destination:
    """An in-process pynetdicom storage SCP that counts what it receives."""

    ae_title: str
    port: int
    out_dir: Path
    received: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: object | None = None
    #: When set: the first C-STORE waits for ``release`` and is then refused (not stored),
    #: so a test can kill the sender while it is mid-delivery.
    hold_first: bool = False
    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        from pynetdicom import AE, AllStoragePresentationContexts, evt

        def on_store(event: object) -> int:
            if self.hold_first and not self.holding.is_set():
                self.holding.set()
                self.release.wait(60)
                return 0xA700
            ds = event.dataset  # type: ignore[attr-defined]
            ds.file_meta = event.file_meta  # type: ignore[attr-defined]
            uid = str(ds.SOPInstanceUID)
            with self.lock:
                self.received[uid] += 1
                n = self.received[uid]
            ds.save_as(self.out_dir / f"{uid}.{n}.dcm", enforce_file_format=True)
            return 0x0000

        ae = AE(ae_title=self.ae_title)
        ae.supported_contexts = AllStoragePresentationContexts
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.server = ae.start_server(("127.0.0.1", self.port), block=False,
                                      evt_handlers=[(evt.EVT_C_STORE, on_store)])

    def stop(self) -> None:
        self.release.set()
        if self.server is not None:
            self.server.shutdown()  # type: ignore[attr-defined]
            self.server = None

    def files(self) -> list[Path]:
        return sorted(self.out_dir.glob("*.dcm"))

    def studies(self) -> Counter[str]:
        """Objects received per Study Instance UID."""
        return Counter(str(pydicom.dcmread(p, stop_before_pixels=True).StudyInstanceUID)
                       for p in self.files())


@pytest.fixture()
def destination(tmp_path: Path) -> Iterator[Destination]:
    """A destination AE 'PACS' on a free port, not started: call .start()."""
    dest = Destination("PACS", free_port(), tmp_path / "pacs")
    yield dest
    dest.stop()


@dataclass
class DcmtkStoreScp:
    """dcmtk storescp writing received objects to a folder; stopped by PID."""

    port: int
    out_dir: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["storescp", "-aet", "DCMTKPACS", "-od", str(self.out_dir), str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: echoscu(self.port, called="DCMTKPACS").returncode == 0, 20,
                 "dcmtk storescp")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=10)


@pytest.fixture()
def dcmtk_pacs(tmp_path: Path, dcmtk: None) -> Iterator[DcmtkStoreScp]:
    scp = DcmtkStoreScp(free_port(), tmp_path / "dcmtk_pacs")
    scp.start()
    yield scp
    scp.stop()

"""Issue 15 on the DICOM door: bounded receive, per-instance limit, no buffers left, safe logs.

The node runs in-process on a free loopback port (its job workers never fire:
the stable time is long); a pynetdicom SCU in the same process sends.
"""

from __future__ import annotations

import io
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, _config

from ctnode.settings import Settings
from jobs import JobOutcome, JobState
from scp_node.node import ScpNode
from scp_node.receive import PREFIX
from tests.fuzz.hostile import associate_rq, p_data, store_command, traced_peak, write_deflated_ct
from tests.helpers import ct_slice, free_port, wait_for

CT = "1.2.840.10008.5.1.4.1.1.2"


def _settings(tmp_path: Path, max_instance_mb: float = 1024.0) -> Settings:
    return Settings(
        node={"work_dir": tmp_path / "var"}, weights={"directory": tmp_path / "w"},
        limits={"max_instance_mb": max_instance_mb},
        scp={"port": free_port(), "stable_seconds": 3600, "min_free_mb": 0,
             "job_poll_s": 0.5},
    )


def _noop(job: Any, ctx: Any) -> JobOutcome:
    return JobOutcome(JobState.DONE, "not analysed in this test")


@pytest.fixture
def node_factory() -> Iterator[Any]:
    nodes: list[ScpNode] = []

    def make(settings: Settings) -> ScpNode:
        node = ScpNode(settings, handler=_noop)
        node.start()
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.stop()


def _send(port: int, path: Path, syntax: str) -> Any:
    """C-STORE one file from disk (chunked send: the SCU never loads it whole)."""
    _config.STORE_SEND_CHUNKED_DATASET = True
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(CT, [syntax])
    assoc = ae.associate("127.0.0.1", port, ae_title="CTNODE")
    assert assoc.is_established
    try:
        return assoc.send_c_store(path)
    finally:
        assoc.release()


def _big_instance(path: Path) -> Path:
    """An 8 MB native CT instance (2048 x 2048 int16) on disk."""
    ds = ct_slice(np.zeros((2048, 2048), np.int16), study_uid=generate_uid(),
                  series_uid=generate_uid(), frame_uid=generate_uid(), instance_number=1,
                  position=[0, 0, 0], pixel_mm=0.2, thickness_mm=1.0)
    ds.save_as(path, enforce_file_format=True)
    return path


def _temp_files(settings: Settings) -> list[Path]:
    folder = settings.node.server_temp_dir()
    return sorted(folder.glob(f"{PREFIX}*")) if folder.is_dir() else []


def test_deflated_instance_is_received_in_bounded_memory(tmp_path: Path, node_factory: Any
                                                         ) -> None:
    """Was: the spool's header read inflated the whole data set (3.2 GB for a 1.46 MB file)."""
    settings = _settings(tmp_path)
    node = node_factory(settings)
    study = generate_uid()
    path = write_deflated_ct(tmp_path / "d.dcm", 150_000_000, study_uid=study)
    status, peak = traced_peak(lambda: _send(node.port, path, DeflatedExplicitVRLittleEndian))
    assert status.Status == 0x0000
    assert peak < 60_000_000, f"{peak / 1e6:.0f} MB held to receive a 0.15 MB file"
    assert node.spool.study(study).n_instances == 1


def test_instance_inflating_beyond_the_limit_is_refused(tmp_path: Path, node_factory: Any
                                                        ) -> None:
    settings = _settings(tmp_path, max_instance_mb=20)
    node = node_factory(settings)
    study = generate_uid()
    path = write_deflated_ct(tmp_path / "d.dcm", 60_000_000, study_uid=study)
    status = _send(node.port, path, DeflatedExplicitVRLittleEndian)
    assert status.Status == 0xA700
    assert "too large" in str(status.get("ErrorComment", ""))
    assert node.spool.studies() == []


def test_instance_above_the_limit_is_refused_and_not_kept(tmp_path: Path, node_factory: Any
                                                          ) -> None:
    """A native 8 MB instance against a 2 MB limit: 0xA700, at most 2 MB ever on disk."""
    settings = _settings(tmp_path, max_instance_mb=2)
    node = node_factory(settings)
    path = _big_instance(tmp_path / "big.dcm")
    largest = [0]
    stop = threading.Event()

    def watch() -> None:  # the largest receive buffer seen while the instance arrives
        while not stop.is_set():
            for p in _temp_files(settings):
                try:
                    largest[0] = max(largest[0], p.stat().st_size)
                except FileNotFoundError:
                    pass
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        status = _send(node.port, path, ExplicitVRLittleEndian)
    finally:
        stop.set()
        watcher.join()
    assert status.Status == 0xA700
    assert "larger than 2 MB" in str(status.ErrorComment)
    assert largest[0] <= 2_000_000
    assert node.spool.studies() == []
    wait_for(lambda: not _temp_files(settings), 10, "the receive buffer to go")


def test_buffers_live_in_the_node_folder_and_go_with_an_aborted_association(
        tmp_path: Path, node_factory: Any) -> None:
    """Was: pynetdicom's buffer of a C-STORE cut short stayed in the system's /tmp.

    A raw client associates, sends a C-STORE command and the first part of its
    data set, then drops the connection (as a sender killed mid-transfer does).
    """
    settings = _settings(tmp_path)
    node = node_factory(settings)
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as sock:
        sock.sendall(associate_rq(node.port))
        assert sock.recv(65536)[:1] == b"\x02"  # A-ASSOCIATE-AC
        sock.sendall(p_data(1, 0x03, store_command(generate_uid())))
        sock.sendall(p_data(1, 0x00, b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 100" * 1000))
        wait_for(lambda: _temp_files(settings), 30, "a receive buffer in the temp folder", 0.01)
    wait_for(lambda: not _temp_files(settings), 10, "the cut-short buffer to be removed")
    assert node.spool.studies() == []


def test_leftover_buffers_are_removed_at_start_up(tmp_path: Path, node_factory: Any) -> None:
    """A node killed mid-C-STORE leaves its buffer; the next start removes it."""
    settings = _settings(tmp_path)
    folder = settings.node.server_temp_dir()
    folder.mkdir(parents=True)
    (folder / f"{PREFIX}killed.dcm").write_bytes(b"\0" * 1000)
    (folder / "someone-elses.txt").write_text("kept")
    node_factory(settings)
    assert not _temp_files(settings)
    assert (folder / "someone-elses.txt").exists()


def test_untrusted_uid_cannot_forge_a_log_line(tmp_path: Path) -> None:
    """Was: a SOP Instance UID with a newline wrote a line of its own in the plain log."""
    from ctnode.logging_setup import configure_logging
    from scp_node.access import build_policy
    from scp_node.server import StoreScp
    from scp_node.spool import Spool

    buf = io.StringIO()
    handler = configure_logging(Settings(), stream=buf)
    try:
        scp = StoreScp(Spool(tmp_path / "spool"), SimpleNamespace(), build_policy([], [], None))
        junk = tmp_path / "junk.dcm"
        junk.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00" * 40)
        forged = "1.2.3\n2026-01-01 00:00:00,000 INFO scp_node.server forged line"
        event = SimpleNamespace(request=SimpleNamespace(AffectedSOPInstanceUID=forged),
                                dataset_path=junk)
        assert scp.handle_store(event) == 0xC000  # type: ignore[arg-type]
    finally:
        logging.getLogger().removeHandler(handler)
    lines = buf.getvalue().splitlines()
    assert lines and all(line[:4].isdigit() or line.startswith(" ") for line in lines)
    assert not any(line.startswith("2026-01-01 00:00:00,000") for line in lines)
    assert "\\n2026-01-01" in buf.getvalue()

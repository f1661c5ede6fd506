"""Delivery: C-STORE SCU outcomes and STOW-RS, against real local servers."""

from __future__ import annotations

import email.parser
import email.policy
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import CTImageStorage, SecondaryCaptureImageStorage, generate_uid
from pynetdicom import AE, AllStoragePresentationContexts, evt

from ctnode.settings import ScpSettings
from scp_node import DeliveryError, DeliveryTarget, deliver, targets_from_settings
from tests.helpers import free_port
from tests.scp_node.conftest import Destination, write_ct_series


@pytest.fixture()
def files(tmp_path: Path) -> list[Path]:
    return write_ct_series(tmp_path / "out", generate_uid(), n=2)


def _target(port: int, ae: str = "PACS") -> DeliveryTarget:
    return DeliveryTarget(key=f"{ae}@127.0.0.1:{port}", kind="c-store", ae_title=ae,
                          host="127.0.0.1", port=port)


def test_targets_from_settings() -> None:
    scp = ScpSettings(destinations=[{"ae_title": "PACS", "host": "10.0.0.5", "port": 104}],
                      stow_url="http://pacs/dicom-web")
    assert [(t.key, t.kind) for t in targets_from_settings(scp)] == [
        ("PACS@10.0.0.5:104", "c-store"), ("http://pacs/dicom-web", "stow-rs")]


def test_c_store_delivers_every_file(destination: Destination, files: list[Path]) -> None:
    destination.start()
    deliver(files, _target(destination.port), "CTNODE", 10)
    assert len(destination.received) == 2 and set(destination.received.values()) == {1}


def test_c_store_failure_status_is_an_error(tmp_path: Path, files: list[Path]) -> None:
    ae = AE(ae_title="FULL")
    ae.supported_contexts = AllStoragePresentationContexts
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False,
                             evt_handlers=[(evt.EVT_C_STORE, lambda event: 0xA700)])
    try:
        with pytest.raises(DeliveryError, match=r"not stored \(status 0xA700\)"):
            deliver(files, _target(port, "FULL"), "CTNODE", 10)
    finally:
        server.shutdown()


def test_sop_class_the_destination_refuses_is_an_error(files: list[Path]) -> None:
    other = pydicom.dcmread(files[1])
    other.SOPClassUID = other.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    other.save_as(files[1])
    ae = AE(ae_title="CTONLY")
    ae.add_supported_context(CTImageStorage)  # the Secondary Capture context is refused
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False,
                             evt_handlers=[(evt.EVT_C_STORE, lambda event: 0x0000)])
    try:
        with pytest.raises(DeliveryError, match=rf"CTONLY@.*{files[1].name} not sent"):
            deliver(files, _target(port, "CTONLY"), "CTNODE", 10)
    finally:
        server.shutdown()


def test_rejected_association_is_an_error(files: list[Path]) -> None:
    ae = AE(ae_title="PICKY")
    ae.supported_contexts = AllStoragePresentationContexts
    ae.require_calling_aet = ["SOMEONE_ELSE"]
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False)
    try:
        with pytest.raises(DeliveryError, match="association rejected"):
            deliver(files, _target(port, "PICKY"), "CTNODE", 10)
    finally:
        server.shutdown()


def test_unreachable_destination_is_an_error(files: list[Path]) -> None:
    with pytest.raises(DeliveryError, match="unreachable"):
        deliver(files, _target(free_port()), "CTNODE", 5)


class _StowServer:
    """A minimal DICOMweb STOW-RS endpoint that parses the multipart body."""

    def __init__(self, status: int) -> None:
        self.parts: list[bytes] = []
        self.paths: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                owner.paths.append(self.path)
                raw = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + body
                msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
                owner.parts = [p.get_payload(decode=True) for p in msg.iter_parts()
                               if p.get_content_type() == "application/dicom"]
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/dicom-web"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def stow_ok() -> Iterator[_StowServer]:
    server = _StowServer(200)
    yield server
    server.close()


def test_stow_rs_sends_one_multipart_request(stow_ok: _StowServer, files: list[Path]) -> None:
    deliver(files, DeliveryTarget(key=stow_ok.url, kind="stow-rs", url=stow_ok.url), "X", 10)
    assert stow_ok.paths == ["/dicom-web/studies"]
    assert stow_ok.parts == [f.read_bytes() for f in files]


def test_stow_rs_conflict_is_an_error(files: list[Path]) -> None:
    server = _StowServer(409)
    try:
        with pytest.raises(DeliveryError, match="HTTP 409"):
            deliver(files, DeliveryTarget(key=server.url, kind="stow-rs", url=server.url),
                    "X", 10)
    finally:
        server.close()

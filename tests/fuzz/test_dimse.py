"""Malformed DICOM upper-layer and DIMSE traffic against the running SCP.

Each example opens a TCP connection to an in-process node and sends one of:
random bytes; a valid A-ASSOCIATE-RQ with bytes damaged; or a valid
association followed by P-DATA-TF PDUs carrying a C-STORE command and a data
set whose bytes, lengths, context IDs and fragment flags Hypothesis chooses,
then closes, aborts or releases. Properties: the node still answers C-ECHO,
no receive buffer stays in its temp folder, no association thread lingers.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom.uid import generate_uid
from pynetdicom import AE

from ctnode.settings import Settings
from jobs import JobOutcome, JobState
from scp_node.node import ScpNode
from scp_node.receive import PREFIX
from tests.fuzz.conftest import count_case
from tests.fuzz.hostile import associate_rq, p_data, store_command
from tests.helpers import free_port

CT = "1.2.840.10008.5.1.4.1.1.2"
# pynetdicom's DUL thread dies on some malformed PDUs (its own assert, an FSM event it
# did not expect): that association ends, the node keeps serving, which is what we check.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")


@st.composite
def traffic(draw: st.DrawFn, port: int) -> list[bytes]:
    kind = draw(st.sampled_from(["random", "damaged_rq", "store"]))
    if kind == "random":
        return [draw(st.binary(min_size=1, max_size=2000))]
    rq = bytearray(associate_rq(port))
    if kind == "damaged_rq":
        for offset, chunk in draw(st.lists(st.tuples(st.integers(0, len(rq) - 1),
                                                     st.binary(min_size=1, max_size=4)),
                                           min_size=1, max_size=4)):
            rq[offset:offset + len(chunk)] = chunk
        return [bytes(rq)]
    sop = draw(st.one_of(st.just(generate_uid()),
                         st.text(st.characters(max_codepoint=255), max_size=70)))
    pdus = [bytes(rq), p_data(draw(st.sampled_from([1, 1, 3, 255])), 0x03,
                               store_command(sop))]
    for _ in range(draw(st.integers(0, 4))):
        data = draw(st.binary(max_size=3000))
        if draw(st.booleans()):  # a PDV whose length lies
            pdus.append(struct.pack(">BBL", 0x04, 0, draw(st.integers(0, 2**32 - 1))) + data)
        else:
            pdus.append(p_data(draw(st.sampled_from([1, 1, 3])),
                                draw(st.sampled_from([0x00, 0x02, 0x01, 0xFF])), data))
    ending = draw(st.sampled_from([b"", bytes.fromhex("0700000000040000"),  # A-ABORT
                                   bytes.fromhex("0500000000040000")]))  # A-RELEASE-RQ
    return [*pdus, ending]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScpNode]:
    root = tmp_path_factory.mktemp("dimse_fuzz")
    settings = Settings(node={"work_dir": root / "var"}, weights={"directory": root / "w"},
                        scp={"port": free_port(), "stable_seconds": 3600, "min_free_mb": 0,
                             "network_timeout_s": 5, "acse_timeout_s": 5,
                             "dimse_timeout_s": 5})
    node = ScpNode(settings, handler=lambda job, ctx: JobOutcome(JobState.DONE, "-"))
    node.start()
    yield node
    node.stop()


def _echo_ok(port: int) -> bool:
    ae = AE(ae_title="CHECKER")
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", port, ae_title="CTNODE")
    if not assoc.is_established:
        return False
    status = assoc.send_c_echo()
    assoc.release()
    return bool(status) and status.Status == 0


def _settle(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def test_malformed_traffic_leaves_the_node_serving(node: ScpNode) -> None:
    baseline = threading.active_count()
    temp = Path(node.buffers.folder)

    @given(traffic(node.port))
    def run(pdus: list[bytes]) -> None:
        count_case("dimse traffic")
        with socket.create_connection(("127.0.0.1", node.port), timeout=5) as sock:
            for pdu in pdus:
                try:
                    sock.sendall(pdu)
                except OSError:
                    break  # the node hung up on us: allowed
            sock.shutdown(socket.SHUT_WR)
            try:
                while sock.recv(65536):
                    pass
            except OSError:
                pass
        assert _settle(lambda: not list(temp.glob(f"{PREFIX}*")), 10), "receive buffer left"
        assert _settle(lambda: threading.active_count() <= baseline + 2, 15), \
            f"{threading.active_count()} threads (was {baseline})"

    run()
    assert _echo_ok(node.port)

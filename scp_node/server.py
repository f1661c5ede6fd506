"""The Application Entity: C-ECHO and C-STORE SCP that only spools (STYLE 8, 11).

The C-STORE handler moves pynetdicom's chunked temp file into the spool,
tells the stability timer, and returns a status (PS3.4 GG.4.2):

- ``0x0000`` Success: the instance is in the spool (also for a duplicate).
- ``0xA700`` Refused, Out of Resources: the spool's disk is full or below
  ``min_free_mb``, or the instance (inflated, when deflated) is larger than
  ``limits.max_instance_mb``; nothing stored (an ErrorComment says which).
- ``0xC000`` Error, Cannot Understand: the header has no usable Study/Series
  Instance UID; the bytes are kept as received in the quarantine folder.
- ``0xC211`` (pynetdicom's own): an unexpected exception in the handler.
"""

from __future__ import annotations

import enum
import logging
from pathlib import Path
from typing import TYPE_CHECKING, cast

from pydicom.dataset import Dataset
from pynetdicom import AE, _config, evt

from scp_node.access import AccessPolicy
from scp_node.errors import InstanceTooLargeError, SpoolFullError, UnreadableInstanceError
from scp_node.receive import ReceiveBuffers
from scp_node.sop_classes import ACCEPTED_TRANSFER_SYNTAXES, CT_STUDY_STORAGE_CLASSES
from scp_node.spool import Spool
from scp_node.stability import StabilityMonitor
from scp_node.transport import start_low_latency_server

if TYPE_CHECKING:
    from pynetdicom.dimse_primitives import C_STORE
    from pynetdicom.events import EventHandlerType
    from pynetdicom.transport import ThreadedAssociationServer

    from ctnode.settings import ScpSettings

logger = logging.getLogger(__name__)

VERIFICATION_SOP_CLASS = "1.2.840.10008.1.1"


class StoreStatus(enum.IntEnum):
    """C-STORE response statuses this SCP sends (PS3.4 Table GG.4-1)."""

    SUCCESS = 0x0000
    OUT_OF_RESOURCES = 0xA700
    CANNOT_UNDERSTAND = 0xC000


def configure_pynetdicom() -> None:
    """Process-wide pynetdicom switches: chunked receive on, dataset logging off (STYLE 26).

    pynetdicom logs C-FIND/C-MOVE identifiers and, at DEBUG, whole PDUs and
    datasets; neither may reach our logs, which must stay free of patient data.
    """
    _config.STORE_RECV_CHUNKED_DATASET = True
    _config.LOG_HANDLER_LEVEL = "none"
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)


class StoreScp:
    """The SCP's event handlers: access control, echo, store-to-spool."""

    def __init__(self, spool: Spool, monitor: StabilityMonitor, policy: AccessPolicy,
                 buffers: ReceiveBuffers | None = None) -> None:
        self.spool = spool
        self.monitor = monitor
        self.policy = policy
        self.buffers = buffers

    def handlers(self) -> list[EventHandlerType]:
        """Event handlers to bind at start-up (STYLE 9)."""
        return [
            (evt.EVT_REQUESTED, self.handle_requested),
            (evt.EVT_C_ECHO, self.handle_echo),
            (evt.EVT_C_STORE, self.handle_store),
        ]

    def handle_requested(self, event: evt.Event) -> None:
        """A-ASSOCIATE-RQ received: reject it here when the policy says so."""
        assoc = event.assoc
        primitive = assoc.requestor.primitive
        calling = _ae_text(getattr(primitive, "calling_ae_title", ""))
        called = _ae_text(getattr(primitive, "called_ae_title", ""))
        address = str(assoc.requestor.address)
        decision = self.policy.check(calling, called, address)
        if decision.allowed:
            logger.info("association from %s (%s) to %s accepted", calling, address, called)
            if self.buffers is not None:  # its receive buffers go when it ends, however
                self.buffers.watch(assoc)
            return
        logger.warning("association from %s (%s) rejected: %s", calling, address,
                       decision.reason)
        assert decision.reject is not None
        assoc.acse.send_reject(*decision.reject)
        # As pynetdicom's own rejections do: wait until the DUL has sent the A-ASSOCIATE-RJ,
        # otherwise the socket may close first and the peer sees only an abort.
        assoc.kill()

    def handle_echo(self, event: evt.Event) -> int:
        """C-ECHO: always Success."""
        return int(StoreStatus.SUCCESS)

    def handle_store(self, event: evt.Event) -> int | Dataset:
        """C-STORE: spool the instance, reset its study's quiet timer."""
        sop_uid = str(cast("C_STORE", event.request).AffectedSOPInstanceUID)
        path = event.dataset_path
        try:
            return self._store(path, sop_uid)
        finally:
            if self.buffers is not None:
                self.buffers.done(path)

    def _store(self, path: Path, sop_uid: str) -> int | Dataset:
        received = self.buffers.oversize(path) if self.buffers is not None else None
        if received is not None:
            limit_mb = self.spool.max_instance_bytes / 1e6
            logger.error("instance %s refused: more than %.0f MB received", sop_uid, limit_mb)
            return _status(StoreStatus.OUT_OF_RESOURCES,
                           f"instance larger than {limit_mb:.0f} MB: refused")
        try:
            instance = self.spool.store(path, sop_uid)
        except SpoolFullError as exc:
            logger.error("instance %s refused: %s", sop_uid, exc)
            return int(StoreStatus.OUT_OF_RESOURCES)
        except InstanceTooLargeError as exc:
            logger.error("instance %s refused: %s", sop_uid, exc)
            return _status(StoreStatus.OUT_OF_RESOURCES, "instance too large: refused")
        except UnreadableInstanceError as exc:
            logger.error("instance %s not accepted: %s", sop_uid, exc)
            return int(StoreStatus.CANNOT_UNDERSTAND)
        except OSError:
            logger.exception("instance %s could not be written to the spool", sop_uid)
            return int(StoreStatus.OUT_OF_RESOURCES)
        self.monitor.touch(instance.study_uid)
        logger.debug("instance %s of study %s spooled", sop_uid, instance.study_uid)
        return int(StoreStatus.SUCCESS)


def _status(status: StoreStatus, comment: str) -> Dataset:
    """A C-STORE response status with an ErrorComment (LO: at most 64 characters)."""
    ds = Dataset()
    ds.Status = int(status)
    ds.ErrorComment = comment[:64]
    return ds


def _ae_text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").strip()
    return str(value).strip()


def build_ae(scp: ScpSettings) -> AE:
    """Our AE with the presentation contexts of a CT study, limits and timeouts from settings."""
    ae = AE(ae_title=scp.ae_title)
    ae.maximum_associations = scp.max_associations
    ae.maximum_pdu_size = scp.max_pdu_size
    ae.acse_timeout = scp.acse_timeout_s
    ae.dimse_timeout = scp.dimse_timeout_s
    ae.network_timeout = scp.network_timeout_s
    ae.add_supported_context(VERIFICATION_SOP_CLASS, list(ACCEPTED_TRANSFER_SYNTAXES))
    for sop_class in CT_STUDY_STORAGE_CLASSES:
        ae.add_supported_context(sop_class, list(ACCEPTED_TRANSFER_SYNTAXES))
    return ae


def start_scp(scp: ScpSettings, store: StoreScp) -> ThreadedAssociationServer:
    """Listen on (bind_address, port) in background threads; stop with ``.shutdown()``."""
    configure_pynetdicom()
    ae = build_ae(scp)
    server = start_low_latency_server(ae, (scp.bind_address, scp.port), store.handlers())
    logger.info("SCP %s listening on %s:%d", scp.ae_title, scp.bind_address, scp.port)
    return server

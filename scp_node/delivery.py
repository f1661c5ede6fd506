"""Sending results on: C-STORE SCU to destination AEs, STOW-RS to a DICOMweb server.

Each call sends every file to one target and raises DeliveryError unless all
were accepted; retries and backoff belong to the job worker. Our SR/SC UIDs
are deterministic, so a resend after a crash stores the same objects again
rather than new copies.
"""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE

from scp_node.errors import DeliveryError
from scp_node.types import DeliveryTarget

if TYPE_CHECKING:
    from ctnode.settings import ScpSettings

logger = logging.getLogger(__name__)

#: C-STORE statuses meaning "stored" (PS3.4 GG.4-1): success and the three warnings.
_STORED = frozenset({0x0000, 0xB000, 0xB006, 0xB007})
_UNCOMPRESSED = (str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian))


def targets_from_settings(scp: ScpSettings) -> list[DeliveryTarget]:
    """Every configured destination, in settings order, STOW-RS last."""
    targets = [
        DeliveryTarget(
            key=f"{d.ae_title}@{d.host}:{d.port}", kind="c-store",
            ae_title=d.ae_title, host=d.host, port=d.port,
        )
        for d in scp.destinations
    ]
    if scp.stow_url:
        targets.append(DeliveryTarget(key=scp.stow_url, kind="stow-rs", url=scp.stow_url))
    return targets


def deliver(
    files: Sequence[Path], target: DeliveryTarget, calling_ae: str, timeout_s: float
) -> None:
    """Send ``files`` to ``target``; DeliveryError says what went wrong."""
    if not files:
        return
    if target.kind == "c-store":
        send_c_store(files, target, calling_ae, timeout_s)
    else:
        send_stow(files, target, timeout_s)


def send_c_store(
    files: Sequence[Path], target: DeliveryTarget, calling_ae: str, timeout_s: float
) -> None:
    """One association, one C-STORE per file (PS3.4 B)."""
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = timeout_s
    ae.dimse_timeout = timeout_s
    ae.network_timeout = timeout_s
    contexts: dict[str, set[str]] = {}
    for path in files:
        ds = dcmread(path, stop_before_pixels=True)
        contexts.setdefault(str(ds.SOPClassUID), set()).add(str(ds.file_meta.TransferSyntaxUID))
    for sop_class, syntaxes in sorted(contexts.items()):
        # One context per syntax, plus uncompressed ones: a peer that refuses the stored
        # (compressed) syntax still accepts the object decompressed (PS3.8 9.3.2.2).
        for syntax in sorted(syntaxes | set(_UNCOMPRESSED)):
            ae.add_requested_context(sop_class, syntax)
    assoc = ae.associate(target.host, target.port, ae_title=target.ae_title)
    if not assoc.is_established:
        why = "rejected" if assoc.is_rejected else _why_not_connected(target, timeout_s)
        raise DeliveryError(f"{target.key}: association {why}")
    try:
        for path in files:
            try:
                status = _send_one(assoc, path)
            except (RuntimeError, ValueError) as exc:
                # pynetdicom: the peer accepted no context for this SOP class / transfer
                # syntax (ValueError), or aborted the association mid-way (RuntimeError).
                raise DeliveryError(f"{target.key}: {path.name} not sent ({exc})") from exc
            code = int(getattr(status, "Status", -1)) if status else -1
            if code not in _STORED:
                reason = "no response" if code < 0 else f"status 0x{code:04X}"
                raise DeliveryError(f"{target.key}: {path.name} not stored ({reason})")
    finally:
        if assoc.is_established:
            assoc.release()
    logger.info("%d object(s) stored at %s", len(files), target.key)


def _send_one(assoc: Any, path: Path) -> Any:
    """C-STORE one file as stored, or decompressed when the peer refused its syntax."""
    try:
        return assoc.send_c_store(path)
    except ValueError:
        accepted = {(c.abstract_syntax, c.transfer_syntax[0])
                    for c in assoc.accepted_contexts}
        ds = dcmread(path)
        if ds.file_meta.TransferSyntaxUID.is_compressed and any(
                (ds.SOPClassUID, ts) in accepted for ts in _UNCOMPRESSED):
            ds.decompress()  # pydicom's own RLE / JPEG decoders; lossless for RLE
            return assoc.send_c_store(ds)
        raise


def _why_not_connected(target: DeliveryTarget, timeout_s: float) -> str:
    """pynetdicom reports a refused TCP connection as an abort: tell the two apart."""
    try:
        with socket.create_connection((target.host, target.port), timeout=min(timeout_s, 5.0)):
            return "aborted"
    except OSError as exc:
        return f"unreachable ({exc.strerror or type(exc).__name__})"


def send_stow(files: Sequence[Path], target: DeliveryTarget, timeout_s: float) -> None:
    """One STOW-RS request (PS3.18 10.5) carrying every file; 200 means all stored."""
    import httpx  # only the SCP's worker needs it, not the spool or the plugin

    boundary = uuid.uuid4().hex
    parts = []
    for path in files:
        parts.append(
            f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode("ascii")
            + path.read_bytes() + b"\r\n"
        )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode("ascii")
    headers = {
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        "Accept": "application/dicom+json",
    }
    url = target.url.rstrip("/") + "/studies"
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{target.key}: {type(exc).__name__}") from exc
    if response.status_code != 200:
        raise DeliveryError(f"{target.key}: STOW-RS answered HTTP {response.status_code}")
    logger.info("%d object(s) stored at %s by STOW-RS", len(files), target.key)

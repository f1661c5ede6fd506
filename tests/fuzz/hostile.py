"""Hostile inputs of any size, written by streaming so that making one costs no memory.

Shared by the hardening tests (small sizes) and ``benchmarks/probes.py`` (the
sizes of the original probes): deflated DICOM that inflates far beyond its
size, NIfTI headers that declare huge volumes, gzip and ZIP bombs.
"""

from __future__ import annotations

import gzip
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, generate_uid
from pynetdicom.pdu import A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    MaximumLengthNotification,
)
from pynetdicom.presentation import build_context
from pynetdicom.transport import AddressInformation

from tests.helpers import ct_slice

_CHUNK = 1 << 22
_PIXEL_DATA_OW = b"\xe0\x7f\x10\x00OW\x00\x00"


def _zeros(n: int) -> list[bytes]:
    """``n`` zero bytes as a list of chunk-sized views (one buffer reused)."""
    block = bytes(min(n, _CHUNK))
    out = []
    while n > 0:
        out.append(block[: min(n, len(block))])
        n -= len(out[-1])
    return out


def write_deflated_ct(path: Path, inflated_pixel_bytes: int, *, rows: int = 512,
                      columns: int = 512, study_uid: str | None = None,
                      series_uid: str | None = None, sop_uid: str | None = None,
                      **attributes: object) -> Path:
    """A CT instance in Deflated Explicit VR LE whose PixelData inflates to that many zeros.

    The header is honest (NumberOfFrames matches the pixel data), so only the
    inflated size makes it hostile: 1.5 GB of zeros deflate to about 1.5 MB.
    """
    frame = rows * columns * 2
    frames = max(1, inflated_pixel_bytes // frame)
    n_bytes = frames * frame
    ds = ct_slice(np.zeros((1, 1), np.int16), study_uid=study_uid or generate_uid(),
                  series_uid=series_uid or generate_uid(), frame_uid=generate_uid(),
                  instance_number=1, position=[0.0, 0.0, 0.0], pixel_mm=0.7,
                  thickness_mm=1.0, sop_uid=sop_uid, **attributes)
    del ds.PixelData
    ds.Rows, ds.Columns = rows, columns
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, ds)
    with path.open("wb") as out:
        out.write(b"\0" * 128 + b"DICM")
        meta = DicomBytesIO()
        write_file_meta_info(meta, ds.file_meta)
        out.write(meta.getvalue())
        z = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        out.write(z.compress(body.getvalue() + _PIXEL_DATA_OW + struct.pack("<I", n_bytes)))
        for chunk in _zeros(n_bytes):
            out.write(z.compress(chunk))
        out.write(z.flush())
    return path


def nifti_header(shape: tuple[int, ...], dtype: str = "int16") -> bytes:
    """A NIfTI-1 single-file header (348 bytes + 4 extension bytes) for ``shape``."""
    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_data_dtype(np.dtype(dtype))
    header.set_data_shape(shape)
    header.set_zooms((1.0,) * len(shape))
    header.set_qform(np.diag([-1.0, -1.0, 1.0, 1.0]), code=1)
    header.set_sform(np.diag([-1.0, -1.0, 1.0, 1.0]), code=1)
    header["vox_offset"] = 352
    return header.binaryblock + b"\0\0\0\0"


def write_nifti_header_only(path: Path, shape: tuple[int, ...], dtype: str = "int16") -> Path:
    """A NIfTI file that is only a header declaring ``shape`` (gzip'ed for ``.gz``)."""
    data = nifti_header(shape, dtype)
    if path.name.endswith(".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def write_nifti_gz_bomb(path: Path, shape: tuple[int, int, int]) -> Path:
    """A ``.nii.gz`` whose honest header and zero voxels inflate to the full int16 volume."""
    n_bytes = int(np.prod(shape)) * 2
    with gzip.open(path, "wb", compresslevel=9) as out:
        out.write(nifti_header(shape))
        for chunk in _zeros(n_bytes):
            out.write(chunk)
    return path


def write_zip_bomb(path: Path, inflated_bytes: int, name: str = "IM0001") -> Path:
    """A ZIP with one deflated member of zeros; the central directory states both sizes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open(name, "w", force_zip64=True) as member:
            for chunk in _zeros(inflated_bytes):
                member.write(chunk)
    return path


def write_multipart_body(path: Path, payload_bytes: int, field: str = "file",
                         boundary: str = "ctnodeboundary") -> tuple[Path, str]:
    """A multipart/form-data body with one file part of ``payload_bytes`` bytes.

    Returns the path and the Content-Type header value.
    """
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; "
            f"filename=\"study.zip\"\r\nContent-Type: application/zip\r\n\r\n").encode()
    with path.open("wb") as out:
        out.write(head + b"PK\x03\x04")
        for chunk in _zeros(max(0, payload_bytes - 4)):
            out.write(chunk)
        out.write(f"\r\n--{boundary}--\r\n".encode())
    return path, f"multipart/form-data; boundary={boundary}"


def traced_peak(fn: Callable[[], Any]) -> tuple[Any, int]:
    """(what ``fn`` returned or raised, peak bytes allocated while it ran, by tracemalloc).

    tracemalloc sees Python's and numpy's allocations in every thread: enough to
    tell a streamed read from one that held the whole inflated data.
    """
    import tracemalloc

    tracemalloc.start()
    try:
        try:
            result = fn()
        except Exception as exc:  # noqa: BLE001 - the caller inspects it
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def associate_rq(port: int) -> bytes:
    """A valid A-ASSOCIATE-RQ (CT Image Storage, Explicit VR LE) from FUZZER to CTNODE."""
    prim = A_ASSOCIATE()
    prim.application_context_name = "1.2.840.10008.3.1.1.1"
    prim.calling_ae_title = "FUZZER"
    prim.called_ae_title = "CTNODE"
    prim.calling_presentation_address = AddressInformation("127.0.0.1", 1)
    prim.called_presentation_address = AddressInformation("127.0.0.1", port)
    context = build_context(CT_IMAGE_STORAGE, ExplicitVRLittleEndian)
    context.context_id = 1
    prim.presentation_context_definition_list = [context]
    max_length = MaximumLengthNotification()
    max_length.maximum_length_received = 16384
    impl = ImplementationClassUIDNotification()
    impl.implementation_class_uid = "1.2.826.0.1.3680043.9.9999"
    prim.user_information = [max_length, impl]
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(prim)
    return bytes(pdu.encode())


def store_command(sop_uid: str) -> bytes:
    """The encoded command set of a C-STORE-RQ for a CT instance."""
    cmd = Dataset()
    cmd.AffectedSOPClassUID = CT_IMAGE_STORAGE
    cmd.CommandField = 0x0001
    cmd.MessageID = 1
    cmd.Priority = 0
    cmd.CommandDataSetType = 0x0000
    cmd.AffectedSOPInstanceUID = sop_uid
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, True
    write_dataset(buf, cmd)
    body = buf.getvalue()
    return struct.pack("<HHIL", 0, 0, 4, len(body)) + body  # CommandGroupLength first


def p_data(context_id: int, control: int, data: bytes) -> bytes:
    """One P-DATA-TF PDU holding one PDV (control: 0x03 last command, 0x02 last data)."""
    pdv = struct.pack(">LBB", len(data) + 2, context_id, control) + data
    return struct.pack(">BBL", 0x04, 0, len(pdv)) + pdv

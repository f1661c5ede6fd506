"""Receiving an upload onto disk, within limits, and knowing what it is.

The upload is streamed to a file in the request's private temporary folder
(never into memory, never through the system's temp folder), counted as it
arrives, and sniffed by its first bytes: a client's Content-Type and file
name are hints, not facts. A ZIP without its central directory (cut short
in transfer) is refused here, as malformed (400).
"""

from __future__ import annotations

import gzip
import struct
import zipfile
from pathlib import Path

from starlette.requests import Request

from api.guard import BodyRejected
from api.multipart import FormRejected, receive_file
from ctnode.settings import ApiSettings

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # local file header; empty archive
_GZIP_MAGIC = b"\x1f\x8b"


class UploadRejected(Exception):
    """The upload cannot be accepted; ``http_status`` and ``code`` say how to answer."""

    def __init__(self, message: str, code: str, http_status: int) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status


def _is_nifti_header(head: bytes) -> bool:
    """NIfTI-1 (sizeof_hdr 348) or NIfTI-2 (540), either byte order."""
    if len(head) < 4:
        return False
    for order in "<>":
        if struct.unpack(order + "i", head[:4])[0] in (348, 540):
            return True
    return False


async def save_upload(request: Request, workdir: Path, kind: str, limits: ApiSettings) -> Path:
    """Write the request's ``file`` field under ``workdir`` and return its path.

    ``kind`` is "zip" or "nifti". Raises ``UploadRejected`` (413 too large,
    415 wrong type, 400 empty or malformed, 422 not a form with a ``file``).
    """
    max_bytes = int(limits.max_upload_mb * 1e6)
    raw = workdir / "upload.bin"
    try:
        size = (await receive_file(request, raw, max_bytes)).size
    except BodyRejected as exc:  # the guard's limits, met while reading the body
        raise UploadRejected(str(exc), exc.code, exc.status) from None
    except FormRejected as exc:
        if exc.code == "upload_too_large":
            raise UploadRejected(f"the upload exceeds the limit of {limits.max_upload_mb:.0f} MB",
                                 exc.code, exc.status) from None
        raise UploadRejected(str(exc), exc.code, exc.status) from None
    if size == 0:
        raise UploadRejected("the uploaded file is empty", "empty_upload", 400)
    with open(raw, "rb") as f:
        head = f.read(8)
    if kind == "zip":
        if not head.startswith(_ZIP_MAGIC):
            raise UploadRejected(
                "the upload is not a ZIP archive; /predict takes a ZIP of DICOM files "
                "(use /predict_nifti for NIfTI)",
                "unsupported_media_type", 415,
            )
        if not zipfile.is_zipfile(raw):
            raise UploadRejected(
                "the ZIP archive is truncated or corrupt (its central directory is missing); "
                "send the whole archive again", "corrupt_upload", 400)
        return raw.rename(workdir / "study.zip")
    if head.startswith(_GZIP_MAGIC):
        try:
            with gzip.open(raw, "rb") as g:
                inner = g.read(4)
        except (OSError, EOFError) as exc:
            raise UploadRejected(f"the .nii.gz upload is corrupt ({exc})", "corrupt_upload",
                                 400) from exc
        if not _is_nifti_header(inner):
            raise UploadRejected("the gzip upload does not hold a NIfTI volume",
                                 "unsupported_media_type", 415)
        return raw.rename(workdir / "volume.nii.gz")
    if _is_nifti_header(head):
        return raw.rename(workdir / "volume.nii")
    raise UploadRejected(
        "the upload is not a NIfTI volume (.nii or .nii.gz); /predict_nifti takes one CT "
        "volume in HU",
        "unsupported_media_type", 415,
    )

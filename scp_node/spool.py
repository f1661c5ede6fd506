"""The spool: received instances on disk as ``<root>/<study>/<series>/<sop>.dcm``.

Each instance lands by rename (atomic on one file system), so a reader never
sees half a file and the C-STORE response is sent only once the file is in
place. The same SOP Instance UID received twice replaces the first copy, so
a resent study leaves the spool (and its content hash) unchanged. Instances
whose header cannot be read go, as received, to ``<root>/_unreadable/``.

The file is not fsync'ed: a killed process loses nothing (the page cache
survives it); a power cut right after the response could.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

from pydicom import dcmread

from scp_node.errors import SpoolFullError, UnreadableInstanceError
from scp_node.types import SpooledInstance, SpooledStudy

logger = logging.getLogger(__name__)

#: PS3.5 9.1: digits and dots, at most 64 characters. Anything else never becomes a path.
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
QUARANTINE = "_unreadable"
_SUFFIX = ".dcm"
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def is_uid(value: object) -> bool:
    """True for a syntactically valid UID (safe as a file name)."""
    return isinstance(value, str) and len(value) <= 64 and _UID.match(value) is not None


class Spool:
    """Stores received instances under ``root``; refuses when the disk is nearly full."""

    def __init__(self, root: Path, min_free_mb: float = 0.0) -> None:
        if not isinstance(root, Path):
            raise TypeError("Spool.root must be a Path")
        if min_free_mb < 0:
            raise ValueError("Spool.min_free_mb must not be negative")
        self.root = root
        self.min_free_bytes = int(min_free_mb * 1024 * 1024)
        root.mkdir(parents=True, exist_ok=True)

    # -- receiving ------------------------------------------------------------------------

    def store(self, received: Path, sop_instance_uid: str) -> SpooledInstance:
        """Move a received file (pynetdicom's chunked temp file) into place.

        Raises SpoolFullError (nothing stored) or UnreadableInstanceError (quarantined).
        """
        self._check_space()
        study_uid, series_uid = self._read_uids(received, sop_instance_uid)
        if not is_uid(sop_instance_uid):
            self._quarantine(received, sop_instance_uid)
            raise UnreadableInstanceError("SOP Instance UID is not a valid UID")
        target = self.root / study_uid / series_uid / f"{sop_instance_uid}{_SUFFIX}"
        duplicate = target.exists()
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            _move_into_place(received, target)
        except OSError as exc:
            if exc.errno in _NO_SPACE:
                raise SpoolFullError(f"disk full while storing {sop_instance_uid}") from exc
            raise
        if duplicate:
            logger.info("instance %s received again: replaced in spool", sop_instance_uid)
        return SpooledInstance(study_uid, series_uid, sop_instance_uid, target, duplicate)

    def _check_space(self) -> None:
        if not self.min_free_bytes:
            return
        free = shutil.disk_usage(self.root).free
        if free < self.min_free_bytes:
            raise SpoolFullError(
                f"{free // 2**20} MB free on the spool's disk, "
                f"below the {self.min_free_bytes // 2**20} MB minimum"
            )

    def _read_uids(self, received: Path, sop_instance_uid: str) -> tuple[str, str]:
        try:
            ds = dcmread(
                received,
                stop_before_pixels=True,
                specific_tags=["StudyInstanceUID", "SeriesInstanceUID"],
            )
            study_uid = str(ds.get("StudyInstanceUID", "") or "")
            series_uid = str(ds.get("SeriesInstanceUID", "") or "")
        except Exception as exc:  # untrusted bytes: pydicom may raise almost anything
            where = self._quarantine(received, sop_instance_uid)
            raise UnreadableInstanceError(
                f"header unreadable ({type(exc).__name__}); kept as {where.name}"
            ) from exc
        if not (is_uid(study_uid) and is_uid(series_uid)):
            where = self._quarantine(received, sop_instance_uid)
            raise UnreadableInstanceError(
                f"missing or invalid Study/Series Instance UID; kept as {where.name}"
            )
        return study_uid, series_uid

    def _quarantine(self, received: Path, sop_instance_uid: str) -> Path:
        folder = self.root / QUARANTINE
        folder.mkdir(parents=True, exist_ok=True)
        name = sop_instance_uid if is_uid(sop_instance_uid) else hashlib.sha256(
            sop_instance_uid.encode("utf-8", "replace")
        ).hexdigest()[:32]
        target = folder / f"{name}{_SUFFIX}"
        _move_into_place(received, target)
        return target

    # -- reading back -----------------------------------------------------------------------

    def study_dir(self, study_uid: str) -> Path:
        """The folder of one study (which may not exist)."""
        if not is_uid(study_uid):
            raise ValueError(f"not a UID: {study_uid!r}")
        return self.root / study_uid

    def studies(self) -> list[str]:
        """Study Instance UIDs present in the spool."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and is_uid(p.name))

    def study(self, study_uid: str) -> SpooledStudy:
        """The study's current content and its hash (sorted series/SOP UID pairs)."""
        directory = self.study_dir(study_uid)
        members = sorted(
            f"{p.parent.name}/{p.name[: -len(_SUFFIX)]}"
            for p in directory.glob(f"*/*{_SUFFIX}")
        ) if directory.is_dir() else []
        digest = hashlib.sha256("\n".join(members).encode("ascii")).hexdigest()
        return SpooledStudy(study_uid, directory, digest, len(members))

    def newest_mtime(self, study_uid: str) -> float:
        """When the study last changed (0 when absent)."""
        directory = self.study_dir(study_uid)
        times = [p.stat().st_mtime for p in directory.glob(f"*/*{_SUFFIX}")]
        return max(times, default=0.0)

    def remove_study(self, study_uid: str) -> None:
        """Delete a study's folder (after its results were delivered and retention passed)."""
        shutil.rmtree(self.study_dir(study_uid), ignore_errors=True)
        logger.info("study %s removed from spool", study_uid)


def _move_into_place(source: Path, target: Path) -> None:
    """Rename when possible; across file systems copy beside the target, then rename."""
    try:
        os.replace(source, target)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    fd, tmp_name = tempfile.mkstemp(prefix=".incoming-", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    source.unlink(missing_ok=True)

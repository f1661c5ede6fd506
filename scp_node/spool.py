"""The spool: received instances on disk as ``<root>/<study>/<series>/<sop>.dcm``.

Each instance lands by rename (atomic on one file system), so a reader never
sees half a file and the C-STORE response is sent only once the file is in
place. The same SOP Instance UID received twice replaces the first copy, so
a resent study leaves the spool (and its content hash) unchanged. Instances
whose header cannot be read go, as received, to ``<root>/_unreadable/``.

The placement is durable before the response: the file's data is fsync'ed,
then renamed, then its folder (and any folder just created) is fsync'ed, so
a power cut after a Success response loses no instance and never leaves a
half-written one under its final name.

Placing a file and removing a study hold the same per-study lock, so the
retention clean-up can never delete an instance whose C-STORE was answered.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

from scp_node.errors import InstanceTooLargeError, SpoolFullError, UnreadableInstanceError
from scp_node.types import SpooledInstance, SpooledStudy
from series_selector import bounded_read
from series_selector.reader import default_max_instance_bytes

logger = logging.getLogger(__name__)

#: PS3.5 9.1: digits and dots, at most 64 characters. Anything else never becomes a path.
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
QUARANTINE = "_unreadable"
_SUFFIX = ".dcm"
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_LOCK_STRIPES = 64


def is_uid(value: object) -> bool:
    """True for a syntactically valid UID (safe as a file name)."""
    return isinstance(value, str) and len(value) <= 64 and _UID.match(value) is not None


class Spool:
    """Stores received instances under ``root``; refuses when the disk is nearly full."""

    def __init__(self, root: Path, min_free_mb: float = 0.0,
                 max_instance_bytes: int | None = None) -> None:
        if not isinstance(root, Path):
            raise TypeError("Spool.root must be a Path")
        if min_free_mb < 0:
            raise ValueError("Spool.min_free_mb must not be negative")
        self.root = root
        self.min_free_bytes = int(min_free_mb * 1024 * 1024)
        self.max_instance_bytes = (default_max_instance_bytes() if max_instance_bytes is None
                                   else max_instance_bytes)
        root.mkdir(parents=True, exist_ok=True)
        # Striped rather than one lock per study: bounded memory, and associations
        # carrying different studies rarely wait for each other.
        self._locks = tuple(threading.Lock() for _ in range(_LOCK_STRIPES))

    def _lock(self, study_uid: str) -> threading.Lock:
        return self._locks[hash(study_uid) % _LOCK_STRIPES]

    # -- receiving ------------------------------------------------------------------------

    def store(self, received: Path, sop_instance_uid: str) -> SpooledInstance:
        """Move a received file (pynetdicom's chunked temp file) into place.

        Raises SpoolFullError or InstanceTooLargeError (nothing stored), or
        UnreadableInstanceError (quarantined).
        """
        self._check_space()
        study_uid, series_uid = self._read_uids(received, sop_instance_uid)
        if not is_uid(sop_instance_uid):
            self._quarantine(received, sop_instance_uid)
            raise UnreadableInstanceError("SOP Instance UID is not a valid UID")
        target = self.root / study_uid / series_uid / f"{sop_instance_uid}{_SUFFIX}"
        try:
            _fsync_file(received)  # the slow part, outside the lock (pynetdicom's temp file)
            with self._lock(study_uid):
                duplicate = target.exists()
                _make_dirs(target.parent)
                _rename(received, target)
            _fsync_dir(target.parent)
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
        try:  # bounded: a deflated data set is inflated as a stream, never whole
            ds = bounded_read.read_header(
                received, self.max_instance_bytes,
                specific_tags=["StudyInstanceUID", "SeriesInstanceUID"],
            ).dataset
            study_uid = str(ds.get("StudyInstanceUID", "") or "")
            series_uid = str(ds.get("SeriesInstanceUID", "") or "")
        except bounded_read.InstanceTooLargeError as exc:
            raise InstanceTooLargeError(str(exc)) from exc
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
        _make_dirs(folder)
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
        with self._lock(study_uid):  # never the listing of a study half removed
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

    def remove_study(
        self, study_uid: str, quiet_seconds: float = 0.0, now: float | None = None
    ) -> bool:
        """Delete a study's folder (after its results were delivered and retention passed).

        Kept when an instance of it arrived in the last ``quiet_seconds`` (a
        sender may be sending it again): checked and removed under the study's
        lock, so no instance is placed in between. Returns whether it was removed.
        """
        directory = self.study_dir(study_uid)
        with self._lock(study_uid):
            now = time.time() if now is None else now
            if quiet_seconds > 0 and now - self.newest_mtime(study_uid) < quiet_seconds:
                logger.info("study %s received again lately: kept in spool", study_uid)
                return False
            shutil.rmtree(directory, ignore_errors=True)
        logger.info("study %s removed from spool", study_uid)
        return True


def _fsync_file(path: Path) -> None:
    """Flush a file's data to disk (fsync works on a read-only descriptor on POSIX)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    """Flush a folder's entries, so a rename or a new name in it survives a power cut."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dirs(folder: Path) -> None:
    """``mkdir -p`` whose new folders are recorded on disk in their parents."""
    if folder.is_dir():
        return
    _make_dirs(folder.parent)
    folder.mkdir(exist_ok=True)
    _fsync_dir(folder.parent)


def _move_into_place(source: Path, target: Path) -> None:
    """Durably: the data fsync'ed, renamed into place, then the folder fsync'ed."""
    _fsync_file(source)
    _rename(source, target)
    _fsync_dir(target.parent)


def _rename(source: Path, target: Path) -> None:
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
        _fsync_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    source.unlink(missing_ok=True)

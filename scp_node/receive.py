"""pynetdicom's receive buffers: in the node's temp folder, bounded per instance, never left behind.

With chunked receive on (STYLE 11) pynetdicom writes each incoming C-STORE
data set to a ``NamedTemporaryFile`` in the system's temp folder, as it
arrives, and nothing removes it when the association is aborted or the
process dies mid-transfer: the file may hold a whole instance with patient
data. Here the buffers

* live in the node's own temp folder under a prefix of ours, so a start-up
  can remove what a killed process left (``remove_leftovers``);
* keep at most ``max_bytes`` on disk: past it the file is emptied and bytes
  are only counted, and the C-STORE handler answers 0xA700 (``oversize``);
* are removed when their association ends, whatever way it ends
  (``watch``: a thread joins the association, then removes the buffers
  still on disk, i.e. those of a transfer cut short or never handled).

pynetdicom has no setting for its buffer folder, so ``install`` replaces the
``NamedTemporaryFile`` name its DIMSE message module calls (process-wide,
like its ``_config`` switches).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

PREFIX = "ctnode-rx-"


class _BoundedFile:
    """A stand-in for pynetdicom's temp file that stores at most ``max_bytes``."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self._file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - pynetdicom closes it
            delete=False, mode="wb", prefix=PREFIX, suffix=".dcm", dir=folder)
        self.name = self._file.name
        self.max_bytes = max_bytes
        self.received = 0
        self.oversize = False

    @property
    def file(self) -> _BoundedFile:  # pynetdicom calls ``._data_set_file.file.flush()``
        return self

    def write(self, data: bytes) -> int:
        self.received += len(data)
        if self.oversize:
            return len(data)
        if self.received > self.max_bytes:
            self.oversize = True
            self._file.seek(0)
            self._file.truncate()  # nothing of a refused instance stays on disk
            return len(data)
        return self._file.write(data)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


class ReceiveBuffers:
    """Factory and registry of the receive buffers of one node."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._by_path: dict[str, tuple[int, _BoundedFile]] = {}

    def __call__(self, *args: Any, **kwargs: Any) -> _BoundedFile:
        """Called by pynetdicom (in the association's DUL thread) instead of NamedTemporaryFile."""
        buffer = _BoundedFile(self.folder, self.max_bytes)
        owner = getattr(threading.current_thread(), "_assoc", None)
        with self._lock:
            self._by_path[buffer.name] = (id(owner), buffer)
        return buffer

    def oversize(self, path: Path | str) -> int | None:
        """Bytes received for ``path`` when they exceeded the limit, else None."""
        with self._lock:
            entry = self._by_path.get(str(path))
        if entry is None or not entry[1].oversize:
            return None
        return entry[1].received

    def done(self, path: Path | str) -> None:
        """The C-STORE handler is finished with ``path`` (moved or refused)."""
        with self._lock:
            self._by_path.pop(str(path), None)

    def watch(self, assoc: threading.Thread) -> None:
        """Remove the association's buffers once its thread has ended."""

        def wait_then_clean() -> None:
            assoc.join()
            self.release(id(assoc))

        threading.Thread(target=wait_then_clean, name="rx-cleanup", daemon=True).start()

    def release(self, owner: int) -> int:
        """Remove every buffer of association ``owner`` still on disk; returns how many."""
        with self._lock:
            mine = [p for p, (o, _) in self._by_path.items() if o == owner]
            entries = [self._by_path.pop(p)[1] for p in mine]
        removed = 0
        for buffer in entries:
            try:
                buffer.close()
            except OSError:
                pass
            try:
                os.unlink(buffer.name)
                removed += 1
            except FileNotFoundError:
                pass  # moved into the spool, or removed by pynetdicom after its handler
        if removed:
            logger.info("removed %d receive buffer(s) of an association that ended early",
                        removed)
        return removed

    def install(self) -> None:
        """Make pynetdicom create its C-STORE buffers through this object."""
        from pynetdicom import dimse_messages

        self.folder.mkdir(parents=True, exist_ok=True)
        dimse_messages.NamedTemporaryFile = self  # type: ignore[assignment]

    def uninstall(self) -> None:
        """Give pynetdicom its own factory back (when this node stops)."""
        from pynetdicom import dimse_messages

        if dimse_messages.NamedTemporaryFile is self:
            dimse_messages.NamedTemporaryFile = tempfile.NamedTemporaryFile


def remove_leftovers(folder: Path) -> int:
    """Remove receive buffers a previous process left in ``folder`` (at start-up only)."""
    removed = 0
    if not folder.is_dir():
        return 0
    for path in folder.glob(f"{PREFIX}*"):
        try:
            path.unlink()
            removed += 1
        except OSError:
            logger.warning("cannot remove a leftover receive buffer")
    if removed:
        logger.info("removed %d receive buffer(s) left by a previous run", removed)
    return removed

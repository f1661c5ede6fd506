"""Study-stable detection: a study is complete once no instance arrived for ``stable_seconds``.

DICOM has no "end of study" message (an association may carry part of a
study, or several); like Orthanc's StableAge, quiet time is the signal. A
study that gains instances after its job was queued becomes stable again
later with a different content hash, and is queued again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)


class StabilityMonitor:
    """Remembers when each study last received an instance; reports the quiet ones.

    ``on_stable(study_uid)`` runs on the monitor's thread; when it raises, the
    study is retried after another quiet period (the error is logged).
    """

    def __init__(
        self,
        stable_seconds: float,
        on_stable: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if stable_seconds <= 0:
            raise ValueError("StabilityMonitor.stable_seconds must be positive")
        self.stable_seconds = float(stable_seconds)
        self._on_stable = on_stable
        self._clock = clock
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def touch(self, study_uid: str) -> None:
        """An instance of this study just arrived."""
        with self._lock:
            self._last[study_uid] = self._clock()

    def pending(self) -> set[str]:
        """Studies still receiving (not yet quiet for long enough)."""
        with self._lock:
            return set(self._last)

    def due(self) -> list[str]:
        """Remove and return the studies quiet for ``stable_seconds``, oldest first."""
        now = self._clock()
        with self._lock:
            ready = sorted(
                (t, uid) for uid, t in self._last.items() if now - t >= self.stable_seconds
            )
            for _, uid in ready:
                del self._last[uid]
        return [uid for _, uid in ready]

    def check(self) -> list[str]:
        """Hand every due study to ``on_stable``; returns those handed over successfully."""
        done = []
        for uid in self.due():
            try:
                self._on_stable(uid)
                done.append(uid)
            except Exception:
                logger.exception("study %s: could not queue it; will try again", uid)
                self.touch(uid)
        return done

    def start(self) -> None:
        """Check in a background thread, a few times per ``stable_seconds``."""
        if self._thread is not None:
            raise RuntimeError("StabilityMonitor already started")
        interval = min(1.0, self.stable_seconds / 4)
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(interval):
                self.check()

        self._thread = threading.Thread(target=loop, name="study-stable", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the background thread (pending studies are found again at the next start)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

"""The plugin's life inside Orthanc: callbacks registered as data, one background thread.

Standard library only. The ``orthanc`` module is a parameter (the real one in
Orthanc, a fake in tests). Orthanc calls callbacks synchronously with its core,
and REST calls made from an ``OnChange`` callback can deadlock it (Orthanc
book, Python plugin chapter), so ``STABLE_STUDY`` only puts the study ID on an
in-memory queue; a daemon thread reads the index, decides, and enqueues the
persistent job.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from jobs.queue import JobQueue
from orthanc_plugin import rest_routes as routes
from orthanc_plugin.errors import PluginConfigError
from orthanc_plugin.study_scan import scan_study
from orthanc_plugin.types import PluginConfig, StudyScan

logger = logging.getLogger(__name__)

JOB_SOURCE = "orthanc"
PLUGIN_VERSION = "0.1.0"
SWEEP = "\0sweep"
CHANGES_PAGE = 1000


def parse_config(full_config: Mapping[str, Any]) -> PluginConfig:
    """Read the ``CtNode`` section of Orthanc's configuration; fail fast when wrong."""
    section = full_config.get("CtNode")
    if not isinstance(section, dict):
        raise PluginConfigError("orthanc.json has no \"CtNode\" section")
    queue_path = str(section.get("QueuePath", "")).strip()
    if not queue_path:
        raise PluginConfigError("CtNode.QueuePath is empty (set CTNODE_ORTHANC__QUEUE_PATH)")
    manufacturer = str(section.get("OwnManufacturer", "")).strip()
    if not manufacturer:
        raise PluginConfigError("CtNode.OwnManufacturer is empty")
    modalities = section.get("TriggerModalities", ["CT"])
    if not isinstance(modalities, list) or not all(isinstance(m, str) for m in modalities):
        raise PluginConfigError("CtNode.TriggerModalities must be a list of modality codes")
    enabled = section.get("Enabled", True)
    if not isinstance(enabled, bool):
        raise PluginConfigError("CtNode.Enabled must be true or false")
    sweep = section.get("StartupSweepChanges", 10000)
    if not isinstance(sweep, int) or isinstance(sweep, bool) or sweep < 0:
        raise PluginConfigError("CtNode.StartupSweepChanges must be an integer >= 0")
    return PluginConfig(
        queue_path=Path(queue_path),
        own_manufacturer=manufacturer,
        trigger_modalities=tuple(m.strip().upper() for m in modalities),
        enabled=enabled,
        startup_sweep_changes=sweep,
    )


def check_authentication(full_config: Mapping[str, Any]) -> None:
    """Refuse to start an AI node whose REST API (and so ``/ai/jobs``) is open.

    orthanc.json takes the password from ``${CTNODE_ORTHANC__PASSWORD}``; when
    that variable is unset Orthanc substitutes an empty string, which would
    silently accept an empty password.
    """
    section = full_config.get("CtNode", {})
    if isinstance(section, dict) and section.get("AllowUnauthenticated") is True:
        return
    if full_config.get("AuthenticationEnabled") is not True:
        raise PluginConfigError(
            "AuthenticationEnabled must be true (or set CtNode.AllowUnauthenticated)")
    users = full_config.get("RegisteredUsers")
    if not isinstance(users, dict) or not users:
        raise PluginConfigError("RegisteredUsers is empty: no one could call /ai/jobs")
    empty = sorted(str(user) for user, password in users.items() if not password)
    if empty:
        raise PluginConfigError(
            f"RegisteredUsers {', '.join(empty)} has an empty password "
            "(is CTNODE_ORTHANC__PASSWORD set?)")


class OrthancLogHandler(logging.Handler):
    """Sends our loggers' records to Orthanc's log (installed by the entry script only)."""

    def __init__(self, orthanc: Any) -> None:
        super().__init__()
        self._orthanc = orthanc

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            if record.levelno >= logging.ERROR:
                self._orthanc.LogError(message)
            elif record.levelno >= logging.WARNING:
                self._orthanc.LogWarning(message)
            else:
                self._orthanc.LogInfo(message)
        except Exception:  # logging must never break the host
            self.handleError(record)


class PluginHost:
    """Registers the callbacks and runs the thread that turns stable studies into jobs."""

    def __init__(self, orthanc: Any, config: PluginConfig, job_queue: JobQueue) -> None:
        self._orthanc = orthanc
        self._config = config
        self._queue = job_queue
        # a study ID, SWEEP (look at recent changes) or None (stop)
        self._events: queue.Queue[str | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stats = {"events": 0, "enqueued": 0, "duplicates": 0, "skipped": 0, "errors": 0,
                       "swept": 0}
        self._last_error = ""
        self._started_at = time.time()

    # -- registration -------------------------------------------------------------------

    def change_handlers(self) -> dict[Any, Callable[[str], None]]:
        """Change type -> handler; anything else is ignored."""
        change = self._orthanc.ChangeType
        return {
            change.STABLE_STUDY: self._on_stable_study,
            change.ORTHANC_STARTED: lambda _resource: self._events.put(SWEEP),
            change.ORTHANC_STOPPED: lambda _resource: self.stop(),
        }

    def rest_routes(self) -> list[tuple[str, Callable[..., None]]]:
        """URI pattern -> REST callback (Orthanc matches the whole URI)."""
        return [
            ("/ai/health", self._rest_health),
            ("/ai/jobs", self._rest_jobs),
            ("/ai/jobs/([0-9]+)", self._rest_job),
            ("/ai/jobs/([0-9]+)/retry", self._rest_retry),
        ]

    def register(self) -> None:
        """Register every callback with Orthanc and start the background thread."""
        handlers = self.change_handlers()

        def on_change(change_type: Any, level: Any, resource_id: str) -> None:
            handler = handlers.get(change_type)
            if handler is None:
                return
            try:
                handler(resource_id)
            except Exception:  # a notify hook never breaks Orthanc
                logger.exception("change handler failed for %s", resource_id)

        self._orthanc.RegisterOnChangeCallback(on_change)
        for pattern, callback in self.rest_routes():
            self._orthanc.RegisterRestCallback(pattern, self._guarded(callback))
        self.start()

    def start(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(
                target=self._run, name="ctnode-stable-study", daemon=True
            )
            self._thread.start()
        logger.info("ctnode plugin %s started; queue %s", PLUGIN_VERSION, self._config.queue_path)

    def stop(self, timeout: float = 10.0) -> None:
        """Let the thread finish the events already received, then end it."""
        thread = self._thread
        if thread is None:
            return
        self._events.put(None)
        thread.join(timeout)
        self._thread = None

    # -- the stable-study path ------------------------------------------------------------

    def _on_stable_study(self, orthanc_study_id: str) -> None:
        """The OnChange side: remember the study and return at once."""
        self._count("events")
        self._events.put(orthanc_study_id)

    def _run(self) -> None:
        while True:
            study_id = self._events.get()
            if study_id is None:
                return
            try:
                if study_id == SWEEP:
                    self.sweep_recent_changes()
                else:
                    self.process_study(study_id)
            except Exception as exc:
                self._count("errors")
                self._last_error = f"{type(exc).__name__}: {exc}"
                logger.exception("could not queue Orthanc study %s", study_id)

    def _get_json(self, uri: str) -> Any:
        return json.loads(self._orthanc.RestApiGet(uri))

    def process_study(self, orthanc_study_id: str) -> StudyScan:
        """Scan one stable study and enqueue it if it needs analysis."""
        scan = scan_study(orthanc_study_id, self._get_json, self._config)
        if not scan.should_enqueue:
            self._count("skipped")
            logger.info("study %s not queued: %s", scan.study_uid or orthanc_study_id,
                        scan.skip_reason)
            return scan
        if not self._config.enabled:
            self._count("skipped")
            logger.info("study %s not queued: plugin disabled (CtNode.Enabled)", scan.study_uid)
            return scan
        job, created = self._queue.enqueue(
            study_uid=scan.study_uid,
            source=JOB_SOURCE,
            locator=scan.orthanc_study_id,
            content_hash=scan.content_hash,
            n_instances=scan.n_instances,
        )
        self._count("enqueued" if created else "duplicates")
        logger.info(
            "study %s: %s job %s (%d instances, hash %s)",
            scan.study_uid, "queued" if created else "unchanged, kept", job.id,
            scan.n_instances, scan.content_hash[:12],
        )
        return scan

    def sweep_recent_changes(self) -> int:
        """Re-check stable studies named in Orthanc's recent changes; returns how many.

        STABLE_STUDY events live only in memory (Orthanc's and ours): a crash
        between the last instance and the event, or before our thread handled
        it, would lose the study. Re-checking is safe because enqueueing is
        idempotent per (study, content hash); unstable studies are left to
        their own coming STABLE_STUDY.
        """
        limit = self._config.startup_sweep_changes
        if limit == 0:
            return 0
        last = int(self._get_json("/changes?last").get("Last", 0))
        since = max(0, last - limit)
        studies: list[str] = []
        while since < last:
            page = self._get_json(f"/changes?since={since}&limit={CHANGES_PAGE}")
            for change in page.get("Changes", []):
                kind = change.get("ChangeType")
                if kind in ("NewStudy", "StableStudy"):
                    studies.append(change["ID"])
                elif kind == "NewSeries":
                    try:
                        studies.append(self._get_json(f"/series/{change['ID']}")["ParentStudy"])
                    except Exception:  # the series was deleted since
                        continue
            if page.get("Done", True) or not page.get("Changes"):
                break
            since = int(page["Last"])
        checked = 0
        for study_id in dict.fromkeys(studies):
            try:
                if not self._get_json(f"/studies/{study_id}").get("IsStable", False):
                    continue
            except Exception:  # deleted since
                continue
            try:
                self.process_study(study_id)
            except Exception as exc:  # one bad study must not end the recovery of the others
                self._count("errors")
                self._last_error = f"{type(exc).__name__}: {exc}"
                logger.exception("start-up sweep: could not queue Orthanc study %s", study_id)
                continue
            checked += 1
        self._count("swept", checked)
        logger.info("start-up sweep: %d stable studies re-checked from the last %d changes",
                    checked, limit)
        return checked

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._stats[key] += n

    def plugin_state(self) -> dict[str, Any]:
        """The plugin's part of ``/ai/health``."""
        with self._lock:
            stats = dict(self._stats)
        thread = self._thread
        return {
            "plugin_version": PLUGIN_VERSION,
            "event_thread_alive": bool(thread and thread.is_alive()),
            "pending_events": self._events.qsize(),
            "events": stats,
            "last_error": self._last_error,
            "uptime_seconds": round(time.time() - self._started_at, 1),
            "trigger_modalities": list(self._config.trigger_modalities),
        }

    # -- REST -------------------------------------------------------------------------------

    def _guarded(self, callback: Callable[..., None]) -> Callable[..., None]:
        """A failing route answers 500 with the reason instead of a bare plugin error."""

        def guarded(output: Any, uri: str, **request: Any) -> None:
            try:
                callback(output, uri, **request)
            except Exception as exc:
                logger.exception("REST %s %s failed", request.get("method"), uri)
                self._answer(output, routes.RestAnswer(500, {"error": str(exc)}))

        return guarded

    def _answer(self, output: Any, answer: routes.RestAnswer) -> None:
        body = answer.encoded()
        if answer.status == 200:
            output.AnswerBuffer(body, "application/json")
        else:
            text = body.decode("utf-8")
            output.SendHttpStatus(answer.status, text, len(body))

    def _rest_health(self, output: Any, uri: str, **request: Any) -> None:
        if request.get("method") != "GET":
            output.SendMethodNotAllowed("GET")
            return
        self._answer(output, routes.health(self._queue, self.plugin_state))

    def _rest_jobs(self, output: Any, uri: str, **request: Any) -> None:
        if request.get("method") != "GET":
            output.SendMethodNotAllowed("GET")
            return
        self._answer(output, routes.list_jobs(self._queue, request.get("get") or {}))

    def _rest_job(self, output: Any, uri: str, **request: Any) -> None:
        if request.get("method") != "GET":
            output.SendMethodNotAllowed("GET")
            return
        self._answer(output, routes.get_job(self._queue, int(request["groups"][0])))

    def _rest_retry(self, output: Any, uri: str, **request: Any) -> None:
        if request.get("method") != "POST":
            output.SendMethodNotAllowed("POST")
            return
        self._answer(output, routes.retry_job(self._queue, int(request["groups"][0])))

"""Logging for the node's entry points: plain or JSON lines, with request and job IDs.

Only entry points call ``configure_logging`` (STYLE 24); library modules just
``logging.getLogger(__name__)``. Request and job IDs travel in contextvars, so
every line logged while a request or a job is handled carries them, in
threads started with ``contextvars.copy_context`` and in asyncio tasks alike.

No patient data: our code logs UIDs only (STYLE 26); as a safety net the
``PhiRedactionFilter`` masks values after patient-identifying DICOM keywords
in any message, and pynetdicom's logging of query identifiers is switched off.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from jobs.context import current_job_id

if TYPE_CHECKING:
    from ctnode.settings import Settings

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "ctnode_request_id", default=None)
job_id_var = current_job_id  # set by the job worker around each job

OUR_PACKAGES: tuple[str, ...] = (
    "ctnode", "api", "inference", "series_selector", "weights", "sr_writer", "scp_node",
    "orthanc_plugin", "jobs", "phantom",
)
# Chatty or PHI-prone libraries: warnings only, whatever our own level is.
_QUIET_LIBRARIES: tuple[str, ...] = ("httpx", "httpcore", "pydicom", "PIL", "matplotlib")

_PHI_KEYWORDS = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientBirthName", "PatientAddress",
    "PatientTelephoneNumbers", "OtherPatientIDs", "OtherPatientNames", "PatientMotherBirthName",
    "ReferringPhysicianName", "AccessionNumber",
)
_PHI_RE = re.compile(
    r"(?P<key>\b(?:" + "|".join(_PHI_KEYWORDS) + r")\b['\"]?\s*(?:[:=]|,\s*\w+:)\s*)"
    r"(?P<value>'[^']*'|\"[^\"]*\"|[^\s,;)\]}]+)")
# pydicom's dataset repr: "(0010,0010) Patient's Name  PN: 'Doe^Jane'" (group 0010 = patient).
_PHI_ELEMENT_RE = re.compile(
    r"(?P<key>\(0010,\s?[0-9A-Fa-f]{4}\)[^:\n]*?\b[A-Z]{2}:\s*)"
    r"(?P<value>'[^']*'|\"[^\"]*\"|[^\n]+)")
REDACTED = "***"
# Characters that end or rewrite a line in a terminal or a line-oriented reader (C0/C1
# controls, DEL, Unicode line/paragraph separators): never written raw (issue 15).
_LINE_BREAKERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_controls(text: str) -> str:
    """``text`` with every control character written as an escape (``\\n``, ``\\x1b``):
    an untrusted value (a UID, a file name) can never forge a log line or a terminal code."""
    return _LINE_BREAKERS.sub(lambda m: repr(m.group())[1:-1], text)


def new_request_id() -> str:
    """A short random ID (16 hex digits): unique enough to find one request in the logs."""
    return uuid.uuid4().hex[:16]


def current_request_id() -> str | None:
    """The request ID of the request being handled in this context, if any."""
    return request_id_var.get()


@contextlib.contextmanager
def log_context(*, request_id: str | None = None, job_id: str | int | None = None
                ) -> Iterator[None]:
    """Tag every log line in this block with the request and/or job ID."""
    tokens: list[tuple[contextvars.ContextVar[str | None], contextvars.Token[str | None]]] = []
    if request_id is not None:
        tokens.append((request_id_var, request_id_var.set(request_id)))
    if job_id is not None:
        tokens.append((job_id_var, job_id_var.set(str(job_id))))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def redact_phi(text: str) -> str:
    """Mask the value after a patient-identifying DICOM keyword (``PatientName=...``)."""
    if not any(marker in text for marker in ("Patient", "Physician", "Accession", "(0010,")):
        return text
    text = _PHI_RE.sub(lambda m: m.group("key") + REDACTED, text)
    return _PHI_ELEMENT_RE.sub(lambda m: m.group("key") + REDACTED, text)


class ContextFilter(logging.Filter):
    """Adds ``request_id`` and ``job_id`` (or None) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.job_id = job_id_var.get()
        return True


class PhiRedactionFilter(logging.Filter):
    """Safety net: rewrites the record's message with patient identifiers masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_phi(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, request_id, job_id[, exc]."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "job_id": getattr(record, "job_id", None),
        }
        if record.exc_info:
            entry["exc"] = redact_phi(self.formatException(record.exc_info))
        line = json.dumps(entry, ensure_ascii=False, default=str)
        # JSON escapes C0 controls itself; these three it leaves raw, and readers split on them.
        return line.replace("\x85", "\\u0085").replace("\u2028", "\\u2028").replace(
            "\u2029", "\\u2029")


class PlainFormatter(logging.Formatter):
    """``2026-11-29 10:00:00,123 INFO api.app [req=ab12 job=7] message``.

    One record is one line: control characters in the message are escaped, and
    the lines of a traceback are indented, so no value can start a line that
    looks like a record of its own.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indented(super().formatStack(stack_info))

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(ids)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        ids = [f"req={rid}" for rid in [getattr(record, "request_id", None)] if rid]
        ids += [f"job={jid}" for jid in [getattr(record, "job_id", None)] if jid]
        record.ids = f" [{' '.join(ids)}]" if ids else ""
        text = super().format(record)
        return redact_phi(text) if record.exc_info else text


def _indented(text: str) -> str:
    return "\n".join("    " + escape_controls(line) for line in text.split("\n"))


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is now (Rich's progress display swaps it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def configure_logging(settings: Settings, *, stream: TextIO | None = None) -> logging.Handler:
    """Install one handler on the root logger; calling it again replaces it.

    Our packages log at ``settings.log_level``; other libraries at WARNING
    unless they are more verbose by their own choice (uvicorn keeps its own).
    ``settings.log_json`` picks JSON lines. Returns the installed handler.
    """
    level = logging.getLevelName(settings.log_level.upper())
    if not isinstance(level, int):
        raise ValueError(f"log_level {settings.log_level!r} is not a logging level")
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_ctnode", False)]:
        root.removeHandler(old)
    handler: logging.Handler = (
        logging.StreamHandler(stream) if stream is not None else _StderrHandler())
    # A marker attribute (logging.Handler has no slot for it) so a second call finds ours.
    handler._ctnode = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if settings.log_json else PlainFormatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(PhiRedactionFilter())
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for name in OUR_PACKAGES:
        logging.getLogger(name).setLevel(level)
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    try:  # PS: pynetdicom logs C-FIND/C-MOVE identifiers (patient data) unless told not to.
        from pynetdicom import _config as pynetdicom_config

        pynetdicom_config.LOG_REQUEST_IDENTIFIERS = False
        pynetdicom_config.LOG_RESPONSE_IDENTIFIERS = False
    except ImportError:  # pragma: no cover - pynetdicom is a dependency
        pass
    return handler

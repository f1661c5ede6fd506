"""A stand-in for Orthanc's ``orthanc`` module: enough of the SDK for the plugin's unit tests.

Keeps a tiny index (study -> series -> instances) with Orthanc-style IDs and
answers the two REST resources the plugin reads. Records registrations and
flags any REST call made from inside an OnChange callback (STYLE 8: callbacks
never do work; Orthanc can deadlock on it).
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class ChangeType(enum.IntEnum):
    NEW_INSTANCE = 2
    STABLE_STUDY = 12
    ORTHANC_STARTED = 13
    ORTHANC_STOPPED = 14


class ResourceType(enum.IntEnum):
    STUDY = 1
    INSTANCE = 3


def orthanc_id(*uids: str) -> str:
    """Orthanc-like resource ID (a SHA-1 of the identifying UIDs)."""
    digest = hashlib.sha1("|".join(uids).encode()).hexdigest()
    return "-".join(digest[i:i + 8] for i in range(0, 40, 8))


@dataclass
class FakeSeries:
    uid: str
    modality: str
    manufacturer: str
    instances: list[str] = field(default_factory=list)


class FakeRestOutput:
    """Records what a REST callback answered."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.body: bytes = b""
        self.content_type = ""
        self.allowed = ""

    def AnswerBuffer(self, body: bytes | str, content_type: str) -> None:  # noqa: N802
        self.status = 200
        self.body = body.encode() if isinstance(body, str) else body
        self.content_type = content_type

    def SendHttpStatus(self, status: int, body: str, size: int) -> None:  # noqa: N802
        if not isinstance(body, str) or not isinstance(size, int):
            raise TypeError("Bad types for the arguments (3 arguments expected)")
        self.status = status
        self.body = body.encode()[:size]

    def SendMethodNotAllowed(self, allowed: str) -> None:  # noqa: N802
        self.status = 405
        self.allowed = allowed

    def json(self) -> Any:
        return json.loads(self.body)


class FakeOrthanc:
    """The fake module. Pass it where the plugin expects ``orthanc``."""

    ChangeType = ChangeType
    ResourceType = ResourceType

    def __init__(self, configuration: dict[str, Any] | None = None) -> None:
        self.configuration = configuration or {}
        self.on_change: list[Callable[..., None]] = []
        self.routes: list[tuple[str, Callable[..., None]]] = []
        self.logs: list[tuple[str, str]] = []
        self.rest_calls: list[str] = []
        self.rest_calls_inside_callback: list[str] = []
        self._in_callback = threading.local()
        self.studies: dict[str, tuple[str, dict[str, FakeSeries]]] = {}
        self.rest_gate = threading.Event()
        self.rest_gate.set()
        self.changes: list[dict[str, Any]] = []
        self.unstable: set[str] = set()

    # -- SDK ------------------------------------------------------------------------------

    def GetConfiguration(self) -> str:  # noqa: N802
        return json.dumps(self.configuration)

    def RegisterOnChangeCallback(self, callback: Callable[..., None]) -> None:  # noqa: N802
        self.on_change.append(callback)

    def RegisterRestCallback(self, pattern: str, callback: Callable[..., None]) -> None:  # noqa: N802
        self.routes.append((pattern, callback))

    def LogInfo(self, message: str) -> None:  # noqa: N802
        self.logs.append(("info", message))

    def LogWarning(self, message: str) -> None:  # noqa: N802
        self.logs.append(("warning", message))

    def LogError(self, message: str) -> None:  # noqa: N802
        self.logs.append(("error", message))

    def RestApiGet(self, uri: str) -> str:  # noqa: N802
        if getattr(self._in_callback, "active", False):
            self.rest_calls_inside_callback.append(uri)
        self.rest_gate.wait(10)
        self.rest_calls.append(uri)
        if uri.startswith("/changes"):
            return json.dumps(self._changes(uri))
        m = re.fullmatch(r"/series/([^/]+)", uri)
        if m:
            for study_id, (study_uid, series) in self.studies.items():
                for s in series.values():
                    if orthanc_id(study_uid, s.uid) == m.group(1):
                        return json.dumps({"ID": m.group(1), "ParentStudy": study_id})
            raise ValueError(f"Unknown resource {uri}")
        m = re.fullmatch(r"/studies/([^/]+)(/series)?", uri)
        if not m or m.group(1) not in self.studies:
            raise ValueError(f"Unknown resource {uri}")  # the SDK raises on 404
        study_uid, series = self.studies[m.group(1)]
        if m.group(2) is None:
            return json.dumps({
                "ID": m.group(1), "Type": "Study",
                "MainDicomTags": {"StudyInstanceUID": study_uid},
                "Series": [orthanc_id(study_uid, s) for s in series],
                "IsStable": m.group(1) not in self.unstable,
            })
        return json.dumps([
            {
                "ID": orthanc_id(study_uid, s.uid), "Type": "Series",
                "MainDicomTags": {"Modality": s.modality, "Manufacturer": s.manufacturer,
                                  "SeriesInstanceUID": s.uid},
                "Instances": [orthanc_id(study_uid, s.uid, sop) for sop in s.instances],
            }
            for s in series.values()
        ])

    # -- test helpers -----------------------------------------------------------------------

    def add_instances(
        self, study_uid: str, series_uid: str, sop_uids: list[str],
        modality: str = "CT", manufacturer: str = "ACME",
    ) -> str:
        """Store instances; returns the Orthanc study ID."""
        study_id = orthanc_id(study_uid)
        if study_id not in self.studies:
            self._change("NewStudy", study_id)
        _, series = self.studies.setdefault(study_id, (study_uid, {}))
        if series_uid not in series:
            self._change("NewSeries", orthanc_id(study_uid, series_uid))
        s = series.setdefault(series_uid, FakeSeries(series_uid, modality, manufacturer))
        s.instances.extend(sop_uids)
        for sop in sop_uids:
            self._change("NewInstance", orthanc_id(study_uid, series_uid, sop))
        return study_id

    def _change(self, kind: str, resource_id: str) -> None:
        self.changes.append({"ChangeType": kind, "ID": resource_id, "Seq": len(self.changes) + 1})

    def _changes(self, uri: str) -> dict[str, Any]:
        """``/changes?last`` and ``/changes?since=N&limit=M`` as Orthanc answers them."""
        last = len(self.changes)
        if uri == "/changes?last":
            return {"Changes": self.changes[-1:], "Done": True, "Last": last}
        m = re.fullmatch(r"/changes\?since=(\d+)&limit=(\d+)", uri)
        if not m:
            raise ValueError(f"Unknown resource {uri}")
        since, limit = int(m.group(1)), int(m.group(2))
        page = self.changes[since:since + limit]
        return {"Changes": page, "Done": since + limit >= last,
                "Last": page[-1]["Seq"] if page else last}

    def fire(self, change_type: ChangeType, resource_id: str = "",
             level: ResourceType = ResourceType.STUDY) -> None:
        """Call every OnChange callback as Orthanc would."""
        self._in_callback.active = True
        try:
            for callback in self.on_change:
                callback(change_type, level, resource_id)
        finally:
            self._in_callback.active = False

    def rest(self, method: str, uri: str, get: dict[str, str] | None = None,
             body: bytes = b"") -> FakeRestOutput:
        """Call the REST callback whose pattern matches ``uri`` (whole-URI match)."""
        for pattern, callback in self.routes:
            m = re.fullmatch(pattern, uri)
            if m:
                output = FakeRestOutput()
                callback(output, uri, method=method, groups=list(m.groups()),
                         get=get or {}, headers={}, body=body)
                return output
        raise LookupError(f"no route for {uri}")

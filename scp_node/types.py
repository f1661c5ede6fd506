"""Values that cross the borders of ``scp_node`` (spool → stability timer → queue → delivery)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def _require_str(owner: str, name: str, value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{owner}.{name} must be a str")
    if not value:
        raise ValueError(f"{owner}.{name} must not be empty")


@dataclass(frozen=True, slots=True)
class SpooledInstance:
    """One received instance, now at ``path`` in the spool. ``duplicate``: it was there already."""

    study_uid: str
    series_uid: str
    sop_instance_uid: str
    path: Path
    duplicate: bool = False

    def __post_init__(self) -> None:
        for name in ("study_uid", "series_uid", "sop_instance_uid"):
            _require_str("SpooledInstance", name, getattr(self, name))
        if not isinstance(self.path, Path):
            raise TypeError("SpooledInstance.path must be a Path")


@dataclass(frozen=True, slots=True)
class SpooledStudy:
    """The instances of one study now in the spool, identified by a hash of their UIDs."""

    study_uid: str
    directory: Path
    content_hash: str
    n_instances: int

    def __post_init__(self) -> None:
        _require_str("SpooledStudy", "study_uid", self.study_uid)
        _require_str("SpooledStudy", "content_hash", self.content_hash)
        if not isinstance(self.directory, Path):
            raise TypeError("SpooledStudy.directory must be a Path")
        if self.n_instances < 0:
            raise ValueError("SpooledStudy.n_instances must not be negative")


@dataclass(frozen=True, slots=True)
class AccessDecision:
    """Whether an association may proceed and, if not, the A-ASSOCIATE-RJ to send.

    ``reject`` is (result, source, diagnostic) as in PS3.8 9.3.4.
    """

    allowed: bool
    reason: str
    reject: tuple[int, int, int] | None = None

    def __post_init__(self) -> None:
        if self.allowed == (self.reject is not None):
            raise ValueError("AccessDecision.reject must be set exactly when not allowed")


@dataclass(frozen=True, slots=True)
class DeliveryTarget:
    """Where results go: a DICOM AE (C-STORE) or a DICOMweb server (STOW-RS).

    ``key`` names it in job records (``AE@host:port`` or the STOW URL).
    """

    key: str
    kind: str
    ae_title: str = ""
    host: str = ""
    port: int = 0
    url: str = ""

    def __post_init__(self) -> None:
        _require_str("DeliveryTarget", "key", self.key)
        if self.kind not in ("c-store", "stow-rs"):
            raise ValueError(f"DeliveryTarget.kind must be c-store or stow-rs, got {self.kind!r}")

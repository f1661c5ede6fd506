"""Types of the weights manifest."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class WeightsEntry:
    """One installable weights file: what it is, where it comes from, how to check it."""

    name: str
    version: str
    file: str
    source: str
    sha256: str
    license: str
    model: str
    input_spec: str = ""
    output_spec: str = ""

    def __post_init__(self) -> None:
        for field_name in ("name", "version", "file", "source", "license", "model"):
            if not getattr(self, field_name):
                raise ValueError(f"WeightsEntry.{field_name} must not be empty")
        if not _SHA256.match(self.sha256):
            raise ValueError(f"WeightsEntry {self.name}: sha256 must be 64 lowercase hex digits")
        if "/" in self.file or self.file.startswith("."):
            raise ValueError(f"WeightsEntry {self.name}: file must be a plain file name")


@dataclass(frozen=True, slots=True)
class WeightsStatus:
    """Whether one entry is installed and intact."""

    entry: WeightsEntry
    installed: bool
    intact: bool
    detail: str

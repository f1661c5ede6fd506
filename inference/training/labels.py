"""The labels file of the ML loop: one row per study, one column per finding.

``labels.csv``::

    study_uid,pathology,lung_nodule,pleural_effusion,...
    1.2.826.0...,1,1,0,...

``study_uid`` names the study (for a NIfTI input: the file name without its
suffix). Each other column is a finding key of ``inference/findings.py`` or
``pathology`` (any finding present: the target of the stacker), with 1, 0 or
blank (unknown: the study is left out of that finding). A ``comment`` column
is allowed and ignored. Unknown columns are refused, so a typo cannot silently
drop a finding.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from inference.findings import FINDING_KEYS

PATHOLOGY = "pathology"
_IGNORED = ("comment",)


class LabelsError(ValueError):
    """The labels file cannot be used as it is; the message says where."""


@dataclass(frozen=True, slots=True)
class Labels:
    """Labels by study: ``values[study][target]`` is 1, 0 or None (unknown)."""

    targets: tuple[str, ...]  # finding keys, then "pathology" when given or derivable
    values: dict[str, dict[str, int | None]]

    def column(self, target: str, studies: list[str]) -> list[int | None]:
        return [self.values.get(s, {}).get(target) for s in studies]

    def counts(self, target: str, studies: list[str] | None = None) -> tuple[int, int]:
        """(positives, negatives) among ``studies`` (default: all)."""
        col = self.column(target, studies if studies is not None else list(self.values))
        return sum(v == 1 for v in col), sum(v == 0 for v in col)


def _value(text: str, where: str) -> int | None:
    text = text.strip()
    if text == "":
        return None
    if text in ("0", "1"):
        return int(text)
    raise LabelsError(f"{where}: {text!r} is not 0, 1 or blank")


def read_labels(path: Path) -> Labels:
    """Parse and check ``labels.csv`` (see module doc)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        if "study_uid" not in header:
            raise LabelsError(f"{path.name}: no study_uid column")
        unknown = [c for c in header
                   if c not in ("study_uid", PATHOLOGY, *FINDING_KEYS, *_IGNORED)]
        if unknown:
            raise LabelsError(f"{path.name}: unknown column(s) {', '.join(unknown)}; columns "
                              "are study_uid, pathology and finding keys of inference/findings.py")
        findings = tuple(k for k in FINDING_KEYS if k in header)
        values: dict[str, dict[str, int | None]] = {}
        for line, row in enumerate(reader, start=2):
            uid = (row.get("study_uid") or "").strip()
            if not uid:
                raise LabelsError(f"{path.name} line {line}: empty study_uid")
            if uid in values:
                raise LabelsError(f"{path.name} line {line}: study {uid} labelled twice")
            rec = {k: _value(row.get(k) or "", f"{path.name} line {line}, {k}") for k in findings}
            if PATHOLOGY in header:
                rec[PATHOLOGY] = _value(row.get(PATHOLOGY) or "", f"{path.name} line {line}")
            else:  # any finding present; unknown unless every finding is known or one is 1
                known = [v for v in rec.values() if v is not None]
                rec[PATHOLOGY] = 1 if 1 in known else (0 if len(known) == len(findings) else None)
            values[uid] = rec
    if not values:
        raise LabelsError(f"{path.name}: no labelled study")
    return Labels(findings + (PATHOLOGY,), values)


def write_labels(path: Path, rows: dict[str, dict[str, int | None]],
                 targets: tuple[str, ...]) -> Path:
    """Write a labels file (the phantom cohort writes its truth this way)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["study_uid", *targets])
        for uid, rec in rows.items():
            writer.writerow([uid, *("" if rec.get(t) is None else rec[t] for t in targets)])
    return path

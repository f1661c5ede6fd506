"""What one result's SR and SC say, decided once so that both say the same.

Rules (issue 14, what a reader must never see):
- every finding of the vocabulary appears once: assessed (probability, Present /
  Absent at the threshold) or not assessed with the reason;
- lesions only for findings reported Present, and only those whose own score
  (when the model gives one) reaches the threshold: a sub-threshold candidate
  under an "Absent" finding, or beside the lesion that made it Present, reads
  as a contradiction;
- no whole-organ "lesions": for findings measured on an organ (heart size,
  aortic calibre, vertebral density, lung density) the model's evidence is the
  organ or the measuring region, not an abnormality, so it is not listed;
- no duplicates: the same evidence given by two measurements of one finding
  (e.g. ascending and descending aortic diameter) is listed once;
- findings are ordered for reading: Present (most probable, then most
  dangerous, first), then Absent and not assessed in vocabulary order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from inference.findings import FINDING_KEYS, FINDINGS
from inference.types import Evidence, FindingResult, StudyResult

ORGAN_MEASURED_FINDINGS = frozenset({
    "cardiomegaly", "thoracic_aortic_dilatation", "low_vertebral_bone_density", "emphysema",
    "mosaic_attenuation_pattern",
})
"""Findings whose evidence is the measured organ or region, never a lesion."""

NOT_SCORED_REASON = "no installed model scores this finding"


@dataclass(frozen=True, slots=True)
class ReportedLesion:
    """One lesion the SR lists and the SC may show."""

    finding: FindingResult
    evidence: Evidence
    number: int  # 1-based within its finding
    probability: float  # the lesion's own score when the model gives one, else the finding's

    @property
    def label(self) -> str:
        """Human name, also the SR tracking identifier: "Lung nodule 1"."""
        return f"{self.finding.display_name} {self.number}"


@dataclass(frozen=True, slots=True)
class NotAssessed:
    """A finding of the vocabulary without a probability, and why."""

    key: str
    reason: str

    @property
    def display_name(self) -> str:
        return FINDINGS[self.key].display_name


@dataclass(frozen=True, slots=True)
class ReportPlan:
    """Findings in reading order, the lesions to list, the key images to render."""

    threshold: float
    present: tuple[FindingResult, ...]
    absent: tuple[FindingResult, ...]
    not_assessed: tuple[NotAssessed, ...]
    lesions: tuple[ReportedLesion, ...]
    key_images: tuple[ReportedLesion, ...]
    key_images_left_out: int

    @property
    def assessed(self) -> tuple[FindingResult, ...]:
        return self.present + self.absent


def not_assessed_reason(finding: FindingResult) -> str:
    """The model's reason (a ``reason`` field when the type has one, else its note),
    each sentence once and without a repeated "not assessed:"."""
    text = str(getattr(finding, "reason", "") or finding.note or "")
    parts: list[str] = []
    for part in text.split(";"):
        part = part.strip()
        while part.lower().startswith("not assessed:"):
            part = part[len("not assessed:"):].strip()
        if part and part not in parts:
            parts.append(part)
    return "; ".join(parts) or "the model gave no reason"


def image_conditions_text(result: StudyResult) -> str:
    """What the image allowed (``StudyResult.image`` when the analyzer gives it), one line.

    Empty when the result carries no such description.
    """
    image = getattr(result, "image", None)
    if image is None:
        return ""
    parts: list[str] = []
    phase = str(getattr(image, "contrast_phase", "unknown") or "unknown")
    if phase != "unknown":
        evidence = str(getattr(image, "contrast_evidence", "") or "")
        parts.append(f"contrast phase {phase.replace('_', '-')}"
                     + (f" ({evidence})" if evidence else ""))
    kernel = str(getattr(image, "kernel_class", "unknown") or "unknown")
    if kernel != "unknown":
        parts.append(f"{kernel} kernel")
    noise = getattr(image, "noise_hu", None)
    if isinstance(noise, (int, float)):
        parts.append(f"noise {noise:.0f} HU")
    truncated = tuple(getattr(image, "lungs_truncated", ()) or ())
    if truncated:
        parts.append("lungs cut by the image border: " + ", ".join(truncated))
    parts += [str(n) for n in (getattr(image, "coverage_notes", ()) or ())]
    return ("Image: " + "; ".join(parts) + ".") if parts else ""


_SCORE_IN_TEXT = re.compile(r"\bscore (0(?:\.\d+)?|1(?:\.0+)?)\b")


def lesion_score(evidence: Evidence) -> float | None:
    """The lesion's own score: an ``Evidence.probability`` field when the type has one,
    else a "score 0.52" the model wrote into the description (chest_quant does)."""
    own = getattr(evidence, "probability", None)
    if isinstance(own, (int, float)) and 0.0 <= float(own) <= 1.0:
        return float(own)
    match = _SCORE_IN_TEXT.search(evidence.description)
    return float(match.group(1)) if match else None


def _unique(evidence: tuple[Evidence, ...]) -> list[Evidence]:
    seen: set[tuple[object, ...]] = set()
    out: list[Evidence] = []
    for e in evidence:
        key = (e.slice_index, tuple(round(c, 1) for c in e.center_lps),
               None if e.volume_ml is None else round(e.volume_ml, 2))
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


def report_plan(result: StudyResult, threshold: float, max_key_images: int) -> ReportPlan:
    """The plan of one result (a Failure has no findings, lesions or key images)."""
    by_key = {f.key: f for f in result.findings}
    assessed = [f for f in result.findings if f.probability is not None]
    present = sorted((f for f in assessed if (f.probability or 0.0) >= threshold),
                     key=lambda f: (-(f.probability or 0.0), FINDINGS[f.key].danger_rank))
    order = {k: i for i, k in enumerate(FINDING_KEYS)}
    absent = sorted((f for f in assessed if (f.probability or 0.0) < threshold),
                    key=lambda f: order[f.key])
    not_assessed: list[NotAssessed] = []
    if result.ok:
        for key in FINDING_KEYS:
            finding = by_key.get(key)
            if finding is None:
                not_assessed.append(NotAssessed(key, NOT_SCORED_REASON))
            elif finding.probability is None:
                not_assessed.append(NotAssessed(key, not_assessed_reason(finding)))
    lesions: list[ReportedLesion] = []
    if result.volume is not None:
        for finding in present:
            if finding.key in ORGAN_MEASURED_FINDINGS:
                continue
            number = 0
            for evidence in _unique(finding.evidence):
                own = lesion_score(evidence)
                if own is not None and own < threshold:
                    continue  # a sub-threshold candidate: not a lesion of this finding
                number += 1
                lesions.append(ReportedLesion(
                    finding, evidence, number,
                    own if own is not None else float(finding.probability or 0.0)))
    keys = lesions[:max_key_images]
    return ReportPlan(
        threshold=threshold, present=tuple(present), absent=tuple(absent),
        not_assessed=tuple(not_assessed), lesions=tuple(lesions), key_images=tuple(keys),
        key_images_left_out=len(lesions) - len(keys),
    )

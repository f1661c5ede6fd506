"""Preferences among several valid series, with a deterministic tie-break.

The order of criteria, most important first: original over derived images;
slices at or below the preferred thickness; the preferred contrast phase; the
preferred kernel family (soft/standard vs sharp); thinner; fewer
irregularities; longer coverage; more slices; lower series number; UID.
Each criterion has a phrase so the report can say *why* one series beat another.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from ctnode.settings import SelectionSettings
from series_selector.rules import StackFacts
from series_selector.types import RuleResult, Verdict


class KernelFamily(enum.Enum):
    """Reconstruction kernel family: soft/standard (body) or sharp (lung, bone)."""

    SOFT = "soft"
    SHARP = "sharp"
    UNKNOWN = "unknown"


_SHARP_WORDS = ("LUNG", "BONE", "EDGE", "SHARP", "HIGH", "DETAIL", "CHST")
_SOFT_WORDS = ("SOFT", "STANDARD", "STND", "SMOOTH", "BODY", "ABDOMEN", "BRAIN")
_PHILIPS = {"A": KernelFamily.SOFT, "B": KernelFamily.SOFT, "C": KernelFamily.SOFT,
            "UB": KernelFamily.SOFT, "D": KernelFamily.SHARP, "E": KernelFamily.SHARP,
            "L": KernelFamily.SHARP, "YC": KernelFamily.SHARP, "YD": KernelFamily.SHARP,
            "YE": KernelFamily.SHARP, "YF": KernelFamily.SHARP}
# Siemens (B30f, Br38f, I70f, Bl57d, Qr40): two digits give the sharpness; 50 and up is sharp.
_SIEMENS = re.compile(r"^[A-Z][A-Z]?(\d{2})[A-Z]?\b")
# Canon/Toshiba FC01..FC18 body; FC30+ bone and high resolution; FC50+ lung.
_CANON = re.compile(r"^FC(\d{2})")


def kernel_family(kernel: str) -> KernelFamily:
    """Classify a vendor kernel name; unknown names stay UNKNOWN rather than guessed."""
    k = kernel.strip().upper()
    if not k:
        return KernelFamily.UNKNOWN
    if k in _PHILIPS:
        return _PHILIPS[k]
    m = _CANON.match(k)
    if m:
        return KernelFamily.SHARP if int(m.group(1)) >= 30 else KernelFamily.SOFT
    m = _SIEMENS.match(k)
    if m:
        return KernelFamily.SHARP if int(m.group(1)) >= 50 else KernelFamily.SOFT
    if any(w in k for w in _SHARP_WORDS):
        return KernelFamily.SHARP
    if any(w in k for w in _SOFT_WORDS):
        return KernelFamily.SOFT
    return KernelFamily.UNKNOWN


def has_contrast(facts: StackFacts) -> bool:
    agent = facts.stack.first.contrast_agent.strip().upper()
    return bool(agent) and agent not in ("NONE", "NO", "N", "0")


@dataclass(frozen=True, slots=True)
class Candidate:
    """An accepted stack with what ranking needs."""

    facts: StackFacts
    results: tuple[RuleResult, ...]

    def key(self, settings: SelectionSettings) -> tuple[object, ...]:
        f = self.facts
        first = f.stack.first
        derived = any(r.code == "derived" for r in self.results)
        t = f.thickness_mm if f.thickness_mm is not None else 99.0
        contrast = has_contrast(f)
        if settings.prefer_contrast == "any":
            contrast_rank = 0
        else:
            contrast_rank = 0 if contrast == (settings.prefer_contrast == "contrast") else 1
        family = kernel_family(first.convolution_kernel)
        preferred = KernelFamily(settings.prefer_kernel)
        kernel_rank = 0 if family is preferred else (1 if family is KernelFamily.UNKNOWN else 2)
        warnings = sum(r.verdict is Verdict.WARN for r in self.results
                       if r.rule in ("uniform_spacing", "duplicates", "gantry_tilt"))
        return (
            int(derived),
            int(t > settings.preferred_max_thickness_mm + 1e-6),
            contrast_rank,
            kernel_rank,
            round(t, 2),
            warnings,
            -round(f.coverage_mm or 0.0, 1),
            -f.n_slices,
            first.series_number if first.series_number is not None else 1 << 30,
            f.stack.series_uid,
            f.stack.stack_id,
        )


def rank(candidates: list[Candidate], settings: SelectionSettings) -> list[Candidate]:
    """Best first."""
    return sorted(candidates, key=lambda c: c.key(settings))


def why_preferred(winner: Candidate, loser: Candidate, settings: SelectionSettings) -> str:
    """The first criterion on which ``winner`` beats ``loser``, as a phrase."""
    a, b = winner.key(settings), loser.key(settings)
    wf, lf = winner.facts, loser.facts
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if x == y:
            continue
        if i == 0:
            return "original images are preferred over derived ones"
        if i == 1:
            return (f"slices of at most {settings.preferred_max_thickness_mm:g} mm are "
                    f"preferred ({wf.thickness_mm:g} vs {lf.thickness_mm:g} mm)")
        if i == 2:
            phase = "contrast-enhanced" if settings.prefer_contrast == "contrast" else (
                "non-contrast")
            return f"{phase} series are preferred (setting prefer_contrast)"
        if i == 3:
            wk, lk = wf.stack.first.convolution_kernel, lf.stack.first.convolution_kernel
            return (f"a {settings.prefer_kernel} kernel is preferred (setting prefer_kernel): "
                    f"kernel {wk or '?'} is {kernel_family(wk).value}, "
                    f"kernel {lk or '?'} is {kernel_family(lk).value}")
        if i == 4:
            return f"thinner slices ({wf.thickness_mm:g} vs {lf.thickness_mm:g} mm)"
        if i == 5:
            return "fewer spacing/tilt irregularities"
        if i == 6:
            return (f"longer coverage ({wf.coverage_mm or 0:.0f} vs "
                    f"{lf.coverage_mm or 0:.0f} mm)")
        if i == 7:
            return f"more slices ({wf.n_slices} vs {lf.n_slices})"
        return "otherwise equivalent; lower series number / UID wins (tie-break)"
    return "identical by every criterion"

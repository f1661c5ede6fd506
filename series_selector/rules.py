"""Selection rules: each a small function from a stack's facts to a RuleResult.

A rule says pass, warn (usable, but worth telling the reader) or fail, with a
machine code and a reason phrased to follow the series' name ("series 2
'CT Body 3.0' covers only 38 mm (at least 120 mm needed)"). Thresholds come
from ``SelectionSettings``. Gate rules (what the object is) run first; the
geometric ones only for image stacks with a usable geometry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ctnode.settings import SelectionSettings
from series_selector.geometry import StackGeometry
from series_selector.grouping import Slice, Stack
from series_selector.types import RuleResult, Verdict

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
LEGACY_ENHANCED_CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2.2"
CT_SOP_CLASSES = frozenset({CT_IMAGE_STORAGE, ENHANCED_CT_STORAGE, LEGACY_ENHANCED_CT_STORAGE})
_SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
_SR_PREFIX = "1.2.840.10008.5.1.4.1.1.88."
_DOSE_SR = {"1.2.840.10008.5.1.4.1.1.88.67", "1.2.840.10008.5.1.4.1.1.88.22"}
_PROJECTION_TYPES = ("MIP", "MINIP", "MIN IP", "MAX IP", "VOLUME_RENDER", "VR", "AVERAGE_IP",
                     "PROJECTION IMAGE")
_DERIVED_TYPES = ("DERIVED", "SECONDARY", "REFORMATTED", "MPR", "CURVED")


@dataclass(frozen=True, slots=True)
class StackFacts:
    """A stack with its geometry (None when positions/orientation are missing)."""

    stack: Stack
    geometry: StackGeometry | None

    @property
    def n_slices(self) -> int:
        return len(self.stack.slices)

    @property
    def thickness_mm(self) -> float | None:
        values = [s.thickness for s in self.stack.slices if s.thickness]
        if values:
            return float(np.median(values))
        if self.geometry is not None and self.geometry.median_step is not None:
            return self.geometry.median_step
        return None

    @property
    def step_mm(self) -> float | None:
        return None if self.geometry is None else self.geometry.median_step

    @property
    def coverage_mm(self) -> float | None:
        return None if self.geometry is None else self.geometry.coverage_mm


Rule = Callable[[StackFacts, SelectionSettings], RuleResult]


def _ok(rule: str, code: str, reason: str) -> RuleResult:
    return RuleResult(rule, Verdict.PASS, code, reason)


def _warn(rule: str, code: str, reason: str) -> RuleResult:
    return RuleResult(rule, Verdict.WARN, code, reason)


def _fail(rule: str, code: str, reason: str) -> RuleResult:
    return RuleResult(rule, Verdict.FAIL, code, reason)


# --- gate rules: what the object is ---------------------------------------------------------

def rule_modality(f: StackFacts, s: SelectionSettings) -> RuleResult:
    modality = f.stack.first.modality or "(none)"
    if modality == "CT":
        return _ok("modality", "modality_ct", "modality is CT")
    return _fail("modality", "modality_not_ct", f"is modality {modality}, not CT")


def rule_sop_class(f: StackFacts, s: SelectionSettings) -> RuleResult:
    uid = f.stack.first.sop_class_uid
    if uid in CT_SOP_CLASSES:
        kind = "Enhanced CT" if uid != CT_IMAGE_STORAGE else "CT Image"
        return _ok("sop_class", "ct_image_storage", f"{kind} Storage")
    if uid in _DOSE_SR or (uid.startswith(_SR_PREFIX) and _mentions_dose(f)):
        return _fail("sop_class", "dose_report", "is a radiation dose report, not images")
    if uid.startswith(_SR_PREFIX):
        return _fail("sop_class", "structured_report", "is a structured report, not images")
    if uid.startswith(_SECONDARY_CAPTURE_PREFIX):
        what = "a dose report screen capture" if _mentions_dose(f) else "a secondary capture"
        return _fail("sop_class", "secondary_capture",
                     f"is {what} (screenshots carry no CT geometry or HU)")
    return _fail("sop_class", "unsupported_sop_class",
                 f"is not CT Image or Enhanced CT Storage (SOP class {uid or 'missing'})")


def _mentions_dose(f: StackFacts) -> bool:
    text = " ".join((f.stack.first.series_description, *f.stack.first.image_type)).upper()
    return "DOSE" in text


def rule_image_type(f: StackFacts, s: SelectionSettings) -> RuleResult:
    types = f.stack.first.image_type
    joined = " ".join(types)
    if "LOCALIZER" in types or "SCOUT" in joined or "TOPOGRAM" in joined.replace(" ", ""):
        return _fail("image_type", "localizer", "is a localizer (scout) image")
    projection = [t for t in types if t in _PROJECTION_TYPES]
    if projection:
        return _fail("image_type", "projection",
                     f"is a {projection[0]} projection, whose values are not per-voxel HU")
    if "DERIVED" in types or "SECONDARY" in types or any(t in types for t in _DERIVED_TYPES[2:]):
        return _warn("image_type", "derived",
                     f"holds derived images ({'/'.join(types[:3])}); original preferred")
    if types and types[0] == "ORIGINAL":
        return _ok("image_type", "original", "original images")
    return _ok("image_type", "image_type_unknown", "image type not stated")


def rule_geometry_present(f: StackFacts, s: SelectionSettings) -> RuleResult:
    if f.geometry is None:
        return _fail("geometry", "no_geometry",
                     "lacks image position or orientation, so no volume can be built")
    return _ok("geometry", "geometry_present", "position and orientation on every slice")


def rule_identifiers(f: StackFacts, s: SelectionSettings) -> RuleResult:
    missing = sorted({m for sl in f.stack.slices for m in sl.header.missing_uids})
    if missing:
        return _warn("identifiers", "missing_uids",
                     f"lacks {', '.join(missing)} (over-eager de-identification?); results "
                     "cannot reference the source images")
    return _ok("identifiers", "uids_present", "study, series and instance UIDs present")


GATE_RULES: tuple[Rule, ...] = (rule_modality, rule_sop_class, rule_image_type,
                                rule_geometry_present, rule_identifiers)


# --- geometric rules ------------------------------------------------------------------------

def rule_axial(f: StackFacts, s: SelectionSettings) -> RuleResult:
    g = f.geometry
    assert g is not None
    if g.axial_angle_deg <= s.axial_tolerance_deg:
        return _ok("orientation", "axial", f"axial (normal {g.axial_angle_deg:.1f} deg off)")
    plane = _plane_name(g.normal)
    return _fail("orientation", "not_axial",
                 f"is {plane}, not axial (slice normal {g.axial_angle_deg:.0f} deg from the "
                 f"head-feet axis; at most {s.axial_tolerance_deg:.0f} deg)")


def _plane_name(normal: np.ndarray) -> str:
    axis = int(np.argmax(np.abs(normal)))
    return ("sagittal", "coronal", "oblique axial")[axis]


def rule_consistency(f: StackFacts, s: SelectionSettings) -> RuleResult:
    g = f.geometry
    assert g is not None
    if g.consistent:
        return _ok("consistency", "consistent", "same matrix and pixel spacing on every slice")
    return _fail("consistency", "inconsistent_geometry", f"is inconsistent: {g.inconsistency}")


def rule_slice_thickness(f: StackFacts, s: SelectionSettings) -> RuleResult:
    t = f.thickness_mm
    if t is None:
        return _warn("slice_thickness", "thickness_unknown", "states no slice thickness")
    if t > s.max_slice_thickness_mm + 1e-6:
        return _fail("slice_thickness", "too_thick",
                     f"has {t:g} mm slices (at most {s.max_slice_thickness_mm:g} mm)")
    if t > s.preferred_max_thickness_mm + 1e-6:
        return _warn("slice_thickness", "thick",
                     f"has {t:g} mm slices: thick for nodule detection "
                     f"(<= {s.preferred_max_thickness_mm:g} mm preferred)")
    return _ok("slice_thickness", "thin", f"{t:g} mm slices")


def rule_slice_spacing(f: StackFacts, s: SelectionSettings) -> RuleResult:
    step = f.step_mm
    if step is None:
        return _fail("slice_spacing", "single_position", "has all slices at one position")
    if step > s.max_slice_spacing_mm + 1e-6:
        return _fail("slice_spacing", "spacing_too_large",
                     f"has slices {step:.2f} mm apart (at most {s.max_slice_spacing_mm:g} mm)")
    t = f.thickness_mm
    if t is not None and step > t * 1.05:
        return _warn("slice_spacing", "non_contiguous",
                     f"has {step:.2f} mm steps between {t:g} mm slices (tissue between "
                     "slices is not imaged)")
    return _ok("slice_spacing", "spacing_ok", f"{step:.2f} mm between slices")


def rule_slice_count(f: StackFacts, s: SelectionSettings) -> RuleResult:
    n = f.n_slices
    if n < s.min_slices:
        return _fail("slice_count", "too_few_slices",
                     f"has only {n} slice{'s' if n != 1 else ''} (at least {s.min_slices} needed)")
    return _ok("slice_count", "enough_slices", f"{n} slices")


def rule_coverage(f: StackFacts, s: SelectionSettings) -> RuleResult:
    c = f.coverage_mm or 0.0
    if c < s.min_coverage_mm:
        return _fail("coverage", "coverage_too_short",
                     f"covers only {c:.0f} mm (at least {s.min_coverage_mm:.0f} mm needed "
                     "for a chest)")
    return _ok("coverage", "coverage_ok", f"covers {c:.0f} mm")


def rule_uniform_spacing(f: StackFacts, s: SelectionSettings) -> RuleResult:
    g = f.geometry
    assert g is not None
    if g.gaps:
        parts = []
        for gap in g.gaps[:3]:
            names = (_slice_name(gap.before), _slice_name(gap.after))
            parts.append(f"{gap.missing} missing between z={gap.z_before:.1f} and "
                         f"z={gap.z_after:.1f} mm ({names[0]} and {names[1]})")
        more = f" and {len(g.gaps) - 3} more gaps" if len(g.gaps) > 3 else ""
        total = sum(gap.missing for gap in g.gaps)
        return _fail("uniform_spacing", "missing_slices",
                     f"has {total} missing slice{'s' if total != 1 else ''}: "
                     f"{'; '.join(parts)}{more}")
    if g.irregular_steps:
        return _warn("uniform_spacing", "irregular_spacing",
                     f"has {g.irregular_steps} irregular slice steps (more than "
                     f"{s.spacing_tolerance:.0%} from the median step); resampled to a "
                     "uniform grid")
    return _ok("uniform_spacing", "uniform", "uniform slice steps, no gaps")


def _slice_name(sl: Slice) -> str:
    header = sl.header
    frame = sl.frame_number
    if frame is not None:
        return f"frame {frame}"
    if header.instance_number is not None:
        return f"instance {header.instance_number}"
    return header.path.name


def rule_duplicates(f: StackFacts, s: SelectionSettings) -> RuleResult:
    g = f.geometry
    assert g is not None
    if g.duplicate_positions:
        return _fail("duplicates", "duplicate_positions",
                     f"has {g.duplicate_positions} slices at the same position as another "
                     "(different instances)")
    if f.stack.duplicates_dropped:
        return _warn("duplicates", "duplicate_instances",
                     f"was received with {f.stack.duplicates_dropped} duplicate copies of "
                     "instances (ignored)")
    return _ok("duplicates", "no_duplicates", "no duplicate slices")


def rule_gantry_tilt(f: StackFacts, s: SelectionSettings) -> RuleResult:
    g = f.geometry
    assert g is not None
    tilt = max(g.tilt_deg, abs(f.stack.first.gantry_tilt))
    if tilt < 0.5:
        return _ok("gantry_tilt", "no_tilt", "no gantry tilt")
    if tilt > s.max_gantry_tilt_deg:
        return _fail("gantry_tilt", "tilt_too_large",
                     f"was acquired with {tilt:.0f} deg gantry tilt (at most "
                     f"{s.max_gantry_tilt_deg:.0f} deg corrected)")
    if g.tilt_deg < 0.5:
        return _ok("gantry_tilt", "tilt_in_orientation",
                   f"gantry tilt {tilt:.1f} deg already in the slice orientation")
    return _warn("gantry_tilt", "tilt_corrected",
                 f"was acquired with {tilt:.1f} deg gantry tilt; slices are shifted to an "
                 "orthogonal grid")


GEOMETRY_RULES: tuple[Rule, ...] = (
    rule_axial, rule_consistency, rule_slice_thickness, rule_slice_spacing, rule_slice_count,
    rule_coverage, rule_uniform_spacing, rule_duplicates, rule_gantry_tilt,
)


def apply_rules(facts: StackFacts, settings: SelectionSettings) -> list[RuleResult]:
    """Gate rules, then (when the gates pass) the geometric ones."""
    results = [rule(facts, settings) for rule in GATE_RULES]
    if any(r.verdict is Verdict.FAIL for r in results):
        return results
    results.extend(rule(facts, settings) for rule in GEOMETRY_RULES)
    return results

"""From measurements to finding probabilities: one documented rule per finding.

Every rule maps a measurement through a logistic curve
``p = 1 / (1 + exp(-(x - threshold) / scale))``: probability 0.5 at the
literature threshold (a setting in ``AnalyzerSettings``), ``scale`` the width
over which the evidence turns from weak to strong (p = 0.12 two scales below
the threshold, 0.88 two scales above). Scales are set
from the measurement's own uncertainty (noise, partial volume, kernel),
stated per rule, not fitted to any case.

Sources of the thresholds:
- Emphysema: LAA%-950 > 6 % (Gevenois et al., AJRCCM 1996; upper limit of
  normal in never-smokers about 5-6 %, Mets et al., Eur Radiol 2012; COPDGene
  uses >= 5 %). Scale 1.5 % (kernel / thickness change LAA% by 1-3 points,
  Boedeker et al., Radiology 2004). Valid only where it was validated: soft
  kernel and thin sections (Gevenois 1996: 1 mm; Madani et al., Radiology
  2006;238:1036: 1.25 mm), here up to ``LAA_MAX_SLICE_MM`` = 3 mm; a sharp
  kernel (``ImageConditions.kernel_class``) or thicker sections give "not
  assessed" with the reason, as no harmonisation is applied. Nor is it read when
  the count hinges on sub-2 mm detail: noise (lower dose, den Harder et al.,
  Eur Radiol Exp 2018) and the overshoot of a sharper kernel than the header
  says push normal lung below -950 HU voxel by voxel, which an in-plane
  smoothing of 0.7 mm takes back (``parenchyma.LAA_SMOOTH_MM``); when the
  probability from LAA%-950 before and after it differs by 0.15 or more
  (``LAA_SMOOTHING_MAX_DP``) the call is the noise's, not the lung's, and
  emphysema is "not assessed" with both numbers.
- Lung opacity: ground glass or consolidation, the probability that either
  is present (1 - (1 - p1)(1 - p2), the two read as independent) from the
  consolidation rule below and the largest ground-glass
  region (``ggo_largest``: -700..-300 HU voxels that hold a 12 mm ball, the
  ground-glass margins of masses removed; ``parenchyma`` module doc). Issue 13: the earlier
  rule, the largest vessel-suppressed -700..+50 HU region at 1 ml, scored
  0.93-1.00 on three real chest CTs without any opacity and 0.95 on a normal
  phantom; what it found were lobar vessel bundles near the hila, nodules and
  the ground-glass margin of a mass. Threshold 1.81 ml, twice the 12 mm
  ball (``parenchyma.GGO_MIN_ML``, the same rule as ``MIN_OPACITY_ML``).
  Log-scale 0.40 (phantom physics, ``OPACITY_LOG_SCALE``).
- Consolidation: the largest connected vessel-suppressed -300..+50 HU region.
  Threshold 10 ml (a ~27 mm sphere, segmental scale: smaller dense foci are
  read as nodules, Hansell et al., Fleischner glossary 2008). Log-scale 0.22
  (phantom physics, ``CONSOLIDATION_LOG_SCALE``). The same phantom fit found
  no separation (slope ~0): the lung mask leaves out airless peripheral lung,
  so consolidation against the pleura is missed, and dense nodules and masses
  count as consolidation: a stated limit, measured in the evaluation.
- Lung nodule / mass: the candidate's shape score (``nodules.py``: isolation,
  elongation, lung contact, size >= 4 mm or 1.5 slices) times the probability
  that its long axial axis is >= 30 mm (a mass, Fleischner glossary) or below
  (a nodule), read with the readers' own spread of +-1.73 mm
  (``nodules.MASS_SIZE_SCALE_MM``, Revel et al. 2004): no jump at 30 mm.
- Pleural effusion: fluid volume, 20 ml at p = 0.5, scale 6 ml (CT shows
  effusions from ~10 ml; below ~20 ml the partial-volume rim of the
  costophrenic sulci competes).
- Pneumothorax: free air volume, 10 ml at p = 0.5, scale 3 ml (a 2 mm rim
  over one lung's anterior surface is ~10-20 ml).
- Medical material: metal (> 2500 HU) volume, 0.05 ml at p = 0.5 (a sternal
  wire or pacemaker lead segment), scale 0.015 ml.
- Coronary calcification: Agatston score > 0 is disease (Agatston 1990;
  CAC-DRS, Hecht et al. 2018); on a log scale, p = 0.5 at 5, so that single
  noise specks (score ~1-2 on thin noisy slices) stay below 0.5.
- Arterial wall calcification: aortic wall calcium volume, 0.02 ml at p = 0.5
  (a 3 mm plaque is 0.014 ml), scale 0.007 ml. On enhanced studies the streaks that
  undiluted contrast in the vena cava casts across the aorta are not counted
  (``calcium._is_streak``, issue 12).
- Cardiomegaly: axial cardiothoracic ratio, 0.5 at p = 0.5, scale 0.025.
- Pericardial effusion: fluid thickness >= 4 mm (normal pericardium <= 2 mm,
  Bogaert & Francone 2013), scale 1 mm.
- Thoracic aortic dilatation: ascending >= 40 mm (scale 2 mm) or descending
  >= 30 mm (scale 1.5 mm), the larger probability. On enhanced studies the diameter
  is the bright lumen's (``aorta._lumen_disk``), ~2-4 mm below the outer-wall diameter
  of these limits: a conservative reading.
- Low vertebral bone density: trabecular HU <= 110 (Pickhardt 2013), scale
  15 HU (p = 0.88 at 80 HU, 0.12 at 140 HU).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ctnode.settings import AnalyzerSettings
from inference.analyzer.mapping_math import logistic
from inference.analyzer.parenchyma import LAA_SMOOTH_MM
from inference.analyzer.types import Analysis, Measure
from inference.findings import FINDING_KEYS
from inference.types import Evidence, FindingResult, Measurement

LAA_MAX_SLICE_MM = 3.0
"""Thickest sections on which LAA%-950 is read against its threshold (module doc)."""
LAA_SCALE_PCT = 1.5
"""Width of the emphysema rule in LAA%-950 points: kernel and thickness change LAA% by
1-3 points (Boedeker et al., Radiology 2004)."""
LAA_SMOOTHING_MAX_DP = 0.15
"""Largest change of the emphysema probability that the ``parenchyma.LAA_SMOOTH_MM``
smoothing may cause for the call to stand: the bound issue 12 sets on a finding's change
between image variants of one study (a specification, not fitted)."""
OPACITY_LOG_SCALE = 0.40
CONSOLIDATION_LOG_SCALE = 0.22
"""Widths (in ln(volume)) of the ground-glass and consolidation rules (phantom physics):
the volume of a region measured on the 2 mm work grid is uncertain by a half-voxel (1 mm)
shell over its surface, d(ln V) = 3 dr / r: 0.40 for the 1.81 ml ground-glass threshold
(r = 7.6 mm), 0.22 for the 10 ml consolidation threshold (r = 13.4 mm)."""


def to_measurement(m: Measure) -> Measurement | None:
    """An ``inference.types.Measurement`` (None when the value is missing)."""
    if m.value is None:
        return None
    return Measurement(m.name, float(m.value), m.unit, m.description)


Score = Callable[[Analysis, AnalyzerSettings], float | None]


Validity = Callable[[Analysis, AnalyzerSettings], str]


@dataclass(frozen=True, slots=True)
class Rule:
    """How one finding is scored: which measures it reads and its probability function.

    ``validity`` says why the method is not valid on this scan ("" when it is):
    the finding is then not assessed, with that reason, instead of a number.
    """

    key: str
    measures: tuple[str, ...]
    score: Score
    why: str
    validity: Validity | None = None


def _val(a: Analysis, name: str) -> float | None:
    return a.value(name)


def _logistic_of(
    measure: str, threshold: float | Callable[[AnalyzerSettings], float], scale: float
) -> Score:
    """The score ``logistic(value, threshold, scale)`` of one measure.

    ``threshold`` is a number, or reads it from the settings (so a site can change it).
    """
    def score(a: Analysis, s: AnalyzerSettings) -> float | None:
        v = _val(a, measure)
        if v is None:
            return None
        t = threshold(s) if callable(threshold) else threshold
        return logistic(v, t, scale)
    return score


def _log_logistic_of(measure: str, threshold: Callable[[AnalyzerSettings], float],
                     scale: float) -> Score:
    """``logistic(ln(value + 1 ml), ln(threshold + 1 ml), scale)``: for volumes spanning decades."""
    def score(a: Analysis, s: AnalyzerSettings) -> float | None:
        v = _val(a, measure)
        if v is None:
            return None
        return logistic(math.log1p(max(v, 0.0)), math.log1p(threshold(s)), scale)
    return score


def _emphysema_of(measure: str) -> Score:
    """The emphysema rule's score read on ``measure`` (LAA%-950, raw or smoothed)."""
    return _logistic_of(measure, lambda s: s.emphysema_laa950_pct, LAA_SCALE_PCT)


_EMPHYSEMA = _emphysema_of("laa950")
_EMPHYSEMA_SMOOTHED = _emphysema_of("laa950_smoothed")
_GROUND_GLASS = _log_logistic_of("ggo_largest", lambda s: s.opacity_ml, OPACITY_LOG_SCALE)
_CONSOLIDATION = _log_logistic_of("consolidation_largest", lambda s: s.consolidation_ml,
                                  CONSOLIDATION_LOG_SCALE)


def _opacity(a: Analysis, s: AnalyzerSettings) -> float | None:
    """Ground glass or consolidation: the probability that either is present (module doc)."""
    ps = [p for p in (_GROUND_GLASS(a, s), _CONSOLIDATION(a, s)) if p is not None]
    return 1.0 - math.prod(1.0 - p for p in ps) if ps else None


def slice_thickness_mm(a: Analysis) -> float | None:
    """Reconstructed slice thickness: measured conditions, else the header, else the spacing."""
    if a.conditions.slice_thickness_mm is not None:
        return float(a.conditions.slice_thickness_mm)
    src = a.grid.source
    if src.slice_thickness_mm is not None:
        return float(src.slice_thickness_mm)
    return float(src.spacing[2])


def _laa_validity(a: Analysis, s: AnalyzerSettings) -> str:
    """LAA%-950 is validated on soft-kernel sections of at most 3 mm (see module doc)."""
    why = []
    if a.conditions.kernel_class == "sharp":
        why.append("LAA%-950 is not valid on a sharp (lung/bone) kernel, which spreads "
                   "noise below -950 HU (Boedeker et al. 2004); use a soft-kernel series")
    thick = slice_thickness_mm(a)
    if thick is not None and thick > LAA_MAX_SLICE_MM:
        why.append(f"LAA%-950 is not valid on {thick:g} mm sections (its threshold is "
                   f"read on sections up to {LAA_MAX_SLICE_MM:g} mm; thicker ones average "
                   "emphysematous spaces with the lung around them)")
    if not why:
        why.append(_laa_noise_check(a, s))
    return "; ".join(w for w in why if w)


def _laa_noise_check(a: Analysis, s: AnalyzerSettings) -> str:
    """Why the LAA%-950 call is the noise's (module doc), "" when it is the lung's."""
    p_raw, p_smooth = _EMPHYSEMA(a, s), _EMPHYSEMA_SMOOTHED(a, s)
    if p_raw is None or p_smooth is None:
        return ""
    dp = abs(p_raw - p_smooth)
    if dp < LAA_SMOOTHING_MAX_DP:
        return ""
    raw, smooth, t = _val(a, "laa950"), _val(a, "laa950_smoothed"), s.emphysema_laa950_pct
    return (f"LAA%-950 reads {raw:.1f} % but {smooth:.1f} % after {LAA_SMOOTH_MM:g} mm "
            f"smoothing (probability {dp:.2f} apart against the {t:g} % threshold): the "
            "count is driven by image noise or a sharp kernel (overshoot), not by "
            "emphysematous spaces; use a soft-kernel, standard-dose series")


def _lesion(name: str) -> Score:
    def score(a: Analysis, s: AnalyzerSettings) -> float | None:
        v = _val(a, f"{name}_score")
        return None if v is None else float(min(1.0, max(0.0, v)))
    return score


def _coronary(a: Analysis, s: AnalyzerSettings) -> float | None:
    v = _val(a, "coronary_agatston")
    return None if v is None else logistic(math.log1p(v), math.log1p(5.0), 0.5)


def _aorta(a: Analysis, s: AnalyzerSettings) -> float | None:
    asc = _val(a, "ascending_aorta_diameter")
    desc = _val(a, "descending_aorta_diameter")
    ps = []
    if asc is not None:
        ps.append(logistic(asc, s.ascending_aorta_mm, 2.0))
    if desc is not None:
        ps.append(logistic(desc, s.descending_aorta_mm, 1.5))
    return max(ps) if ps else None


def _bone(a: Analysis, s: AnalyzerSettings) -> float | None:
    v = _val(a, "vertebral_trabecular_hu")
    return None if v is None else logistic(s.vertebral_hu - v, 0.0, 15.0)


RULES: tuple[Rule, ...] = (
    Rule("emphysema", ("laa950", "laa950_smoothed", "laa910", "perc15", "laa_largest_cluster",
                       "image_noise"),
         _EMPHYSEMA, "LAA%-950 against the 6 % upper limit of normal", _laa_validity),
    Rule("lung_opacity", ("ggo_largest", "consolidation_largest", "opacity_largest",
                          "opacity_fraction", "ggo_fraction", "ggo_fraction_left",
                          "ggo_fraction_right", "ggo_volume"),
         _opacity, "largest ground-glass region, or the consolidation rule"),
    Rule("consolidation", ("consolidation_largest", "consolidation_volume",
                           "consolidation_fraction",
                           "consolidation_fraction_left", "consolidation_fraction_right"),
         _CONSOLIDATION, "largest vessel-suppressed -300..+50 HU region"),
    Rule("lung_nodule", ("nodule_score", "nodule_diameter", "nodule_solid_diameter",
                         "nodule_volume", "nodule_count"),
         _lesion("nodule"), "isolated dense blob of 4-30 mm"),
    Rule("lung_mass", ("mass_score", "mass_diameter", "mass_solid_diameter", "mass_volume",
                       "mass_count"),
         _lesion("mass"), "isolated dense lesion of 30 mm or more"),
    Rule("pleural_effusion", ("pleural_effusion_volume", "pleural_effusion_volume_left",
                              "pleural_effusion_volume_right"),
         _logistic_of("pleural_effusion_volume", lambda s: s.effusion_ml, 6.0),
         "fluid volume against the lung"),
    Rule("pneumothorax", ("pneumothorax_volume",),
         _logistic_of("pneumothorax_volume", lambda s: s.pneumothorax_ml, 3.0),
         "free air volume along the chest wall"),
    Rule("medical_material", ("metal_volume",), _logistic_of("metal_volume", 0.05, 0.015),
         "metal-density volume"),
    Rule("coronary_artery_wall_calcification", ("coronary_agatston", "coronary_calcium_volume",
                                                "image_noise"),
         _coronary, "Agatston-style coronary calcium score"),
    Rule("arterial_wall_calcification", ("aortic_calcium_volume",),
         _logistic_of("aortic_calcium_volume", 0.02, 0.007),
         "aortic wall calcium volume"),
    Rule("cardiomegaly", ("cardiothoracic_ratio", "heart_width", "thoracic_width",
                          "heart_volume"),
         _logistic_of("cardiothoracic_ratio", lambda s: s.cardiothoracic_ratio, 0.025),
         "axial cardiothoracic ratio"),
    Rule("pericardial_effusion", ("pericardial_fluid_thickness",),
         _logistic_of("pericardial_fluid_thickness", 4.0, 1.0),
         "fluid thickness around the heart"),
    Rule("thoracic_aortic_dilatation", ("ascending_aorta_diameter",
                                        "descending_aorta_diameter"), _aorta,
         "maximal ascending / descending aortic diameter"),
    Rule("low_vertebral_bone_density", ("vertebral_trabecular_hu",), _bone,
         "trabecular attenuation of L1 (counted from the 12th rib pair)"),
)

NOT_ASSESSED: dict[str, str] = {
    "hiatal_hernia": "not assessed: needs oesophagus/stomach segmentation the analyzer "
    "does not do reliably",
    "lymphadenopathy": "not assessed: short-axis node size needs node segmentation, "
    "which thresholds cannot separate from vessels without contrast",
    "atelectasis": "not assessed: volume loss cannot be told from consolidation by density",
    "pulmonary_fibrotic_sequela": "not assessed: reticulation needs texture analysis",
    "mosaic_attenuation_pattern": "not assessed: needs regional density texture analysis",
    "peribronchial_thickening": "not assessed: needs airway wall measurement",
    "bronchiectasis": "not assessed: needs airway-artery ratio measurement",
    "interlobular_septal_thickening": "not assessed: septa are below the working resolution",
}


def assessed_keys(rules: tuple[Rule, ...] = RULES) -> tuple[str, ...]:
    """Keys the rules score, in vocabulary order."""
    keys = {r.key for r in rules}
    return tuple(k for k in FINDING_KEYS if k in keys)


def map_findings(a: Analysis, s: AnalyzerSettings,
                 rules: tuple[Rule, ...] = RULES) -> tuple[FindingResult, ...]:
    """One FindingResult per vocabulary finding; unassessable ones have probability None."""
    by_key = {r.key: r for r in rules}
    out: list[FindingResult] = []
    for key in FINDING_KEYS:
        rule = by_key.get(key)
        if rule is None:
            note = NOT_ASSESSED.get(key, "not assessed by this version of the analyzer")
            out.append(FindingResult(key=key, probability=None, note=note))
            continue
        measures = [a.measures[n] for n in rule.measures if n in a.measures]
        meas = tuple(m for m in (to_measurement(x) for x in measures) if m is not None)
        invalid = rule.validity(a, s) if rule.validity is not None else ""
        if invalid:  # the measurements are shown, the finding is not scored
            out.append(FindingResult(key=key, probability=None, measurements=meas,
                                     note="not assessed: " + invalid))
            continue
        p = rule.score(a, s)
        evidence: tuple[Evidence, ...] = tuple(e for x in measures for e in x.evidence)
        notes = [x.note for x in measures if x.note]
        if p is None:
            reasons = dict.fromkeys(_without_prefix(n) for n in notes)  # once each, in order
            note = "not assessed: " + ("; ".join(reasons) or "its measurement was not possible")
            out.append(FindingResult(key=key, probability=None, measurements=meas, note=note))
            continue
        out.append(FindingResult(key=key, probability=float(p), measurements=meas,
                                 evidence=evidence, note="; ".join([rule.why, *notes])))
    return tuple(out)


def _without_prefix(note: str) -> str:
    """A measure's note without its own "not assessed:" (the finding's note adds it once)."""
    head = "not assessed:"
    return note[len(head):].strip() if note.lower().startswith(head) else note

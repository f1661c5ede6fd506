"""A gap-free phantom cohort: severities drawn continuously across each finding's threshold.

Why: a cohort that leaves a gap around each threshold (normal bone 175-230 HU
vs low 40-100 HU, say) measures an AUC of 1.00 by construction. Here every
finding the analyzer assesses is, in each case, independently either absent
or present with a severity drawn from a range that straddles its definition
(borderline cases on both sides), on scans that vary as real ones do: noise,
tube voltage, contrast phase, kernel sharpness, slice spacing, body size,
arms, fat.

The reference standard of each finding is a stated rule on what was inserted
(``REFERENCE_RULES``), never on what the analyzer measures:

- Definitional thresholds, on the inserted (or phantom-measured) value: lung
  nodule 4 mm <= longest diameter < 30 mm (Fleischner 2017's smallest reported
  size; 30 mm and more is a mass, Hansell et al. 2008); pericardial effusion
  fluid >= 4 mm (normal pericardium <= 2 mm with physiological fluid,
  Bogaert & Francone, Pediatr Radiol 2009); cardiomegaly, aortic dilatation and
  low bone density as the phantom's truth decides them (``phantom.truth``).
- "Any amount a reader would report": pleural effusion and pneumothorax from
  10 ml, ground glass and consolidation from 10-15 mm, emphysema from 0.5 % of
  the lung (Fleischner visual grade "trace", Lynch et al., Radiology 2015),
  calcium with an Agatston-style score > 0 (CAC-DRS, Hecht et al. 2018), any
  metal device. The analyzer's own detection limits are then crossed, not
  avoided.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from phantom.types import (
    AorticCalcification,
    AorticSegment,
    ArmsPosition,
    Cardiomegaly,
    Consolidation,
    ContrastPhase,
    CoronaryArtery,
    CoronaryCalcification,
    DilatedAorta,
    Distribution,
    Emphysema,
    GroundGlass,
    Lesion,
    LowBoneDensity,
    LungSite,
    Metal,
    MetalKind,
    Nodule,
    NoduleKind,
    PericardialEffusion,
    PhantomSpec,
    PleuralEffusion,
    Pneumothorax,
    Side,
)

NODULE_MIN_MM = 4.0
MASS_MIN_MM = 30.0
PERICARDIAL_MIN_MM = 4.0
KERNELS = ("soft", "sharp")


@dataclass(frozen=True, slots=True)
class CohortCase:
    """One case of the cohort: the phantom to generate and how the scan was made."""

    index: int
    spec: PhantomSpec
    kernel: str  # "soft" | "sharp": applied to the generated volume (``sharpen``)
    drawn: dict[str, float] = field(default_factory=dict)  # finding -> drawn severity


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _site(rng: np.random.Generator) -> LungSite:
    return LungSite(side=Side(str(rng.choice(["right", "left"]))),
                    level=float(rng.uniform(0.15, 0.9)), ap=float(rng.uniform(0.1, 0.9)),
                    lateral=float(rng.uniform(0.1, 0.95)))


def _side(rng: np.random.Generator) -> Side:
    return Side(str(rng.choice(["right", "left"])))


def _nodule(r: np.random.Generator) -> tuple[Lesion, float]:
    d = _log_uniform(r, 3.0, 29.0)
    kind = NoduleKind(str(r.choice(["solid", "solid", "part_solid", "ground_glass"])))
    return Nodule(d, kind, _site(r)), d


def _mass(r: np.random.Generator) -> tuple[Lesion, float]:
    d = float(r.uniform(20.0, 50.0))
    return Nodule(d, NoduleKind.SOLID, _site(r)), d


def _ground_glass(r: np.random.Generator) -> tuple[Lesion, float]:
    e = float(r.uniform(10.0, 70.0))
    return GroundGlass(_site(r), e, float(r.uniform(-750.0, -450.0))), e


def _consolidation(r: np.random.Generator) -> tuple[Lesion, float]:
    e = float(r.uniform(15.0, 70.0))
    return Consolidation(_site(r), e, float(r.uniform(-50.0, 60.0)), bool(r.random() < 0.7)), e


def _effusion(r: np.random.Generator) -> tuple[Lesion, float]:
    v = _log_uniform(r, 10.0, 800.0)
    return PleuralEffusion(_side(r), v), v


def _pneumothorax(r: np.random.Generator) -> tuple[Lesion, float]:
    v = _log_uniform(r, 10.0, 700.0)
    return Pneumothorax(_side(r), v), v


def _pericardial(r: np.random.Generator) -> tuple[Lesion, float]:
    t = float(r.uniform(2.0, 14.0))
    return PericardialEffusion(t), t


def _emphysema(r: np.random.Generator) -> tuple[Lesion, float]:
    f = _log_uniform(r, 0.005, 0.35)
    dist = Distribution(str(r.choice(["upper", "diffuse", "lower"])))
    return Emphysema(f, dist, float(r.uniform(6.0, 16.0))), f


def _coronary(r: np.random.Generator) -> tuple[Lesion, float]:
    d = float(r.uniform(1.0, 4.5))
    artery = CoronaryArtery(str(r.choice(["lm", "lad", "lcx", "rca"])))
    return CoronaryCalcification(artery, float(r.uniform(0.05, 0.7)),
                                 float(r.uniform(1.5, 15.0)), d,
                                 float(r.uniform(200.0, 900.0))), d


def _aortic_calcium(r: np.random.Generator) -> tuple[Lesion, float]:
    n = int(r.integers(1, 8))
    segment = AorticSegment(str(r.choice(["ascending", "arch", "descending"])))
    return AorticCalcification(segment, n, float(r.uniform(2.0, 9.0)),
                               float(r.uniform(200.0, 1000.0))), float(n)


def _metal(r: np.random.Generator) -> tuple[Lesion, float]:
    h = float(r.uniform(1500.0, 3071.0))
    return Metal(MetalKind(str(r.choice(["pacemaker", "port", "sternal_wires"]))), h), h


def _bone(r: np.random.Generator) -> tuple[Lesion, float]:
    h = float(r.uniform(40.0, 200.0))
    return LowBoneDensity(h), h


def _cardiomegaly(r: np.random.Generator) -> tuple[Lesion, float]:
    c = float(r.uniform(0.40, 0.65))
    return Cardiomegaly(c), c


def _aorta(r: np.random.Generator) -> tuple[Lesion, float]:
    which = float(r.random())
    asc = float(r.uniform(28.0, 55.0)) if which < 0.6 else None
    desc = float(r.uniform(20.0, 40.0)) if which >= 0.4 else None
    return DilatedAorta(asc, desc), float(asc if asc is not None else desc or 0.0)


# finding -> sampler of (lesion, severity) when the finding's draw says "insert"
_SAMPLERS: dict[str, Callable[[np.random.Generator], tuple[Lesion, float]]] = {
    "lung_nodule": _nodule,
    "lung_mass": _mass,
    "lung_opacity": _ground_glass,
    "consolidation": _consolidation,
    "pleural_effusion": _effusion,
    "pneumothorax": _pneumothorax,
    "pericardial_effusion": _pericardial,
    "emphysema": _emphysema,
    "coronary_artery_wall_calcification": _coronary,
    "arterial_wall_calcification": _aortic_calcium,
    "medical_material": _metal,
    "low_vertebral_bone_density": _bone,
    "cardiomegaly": _cardiomegaly,
    "thoracic_aortic_dilatation": _aorta,
}
COHORT_FINDINGS: tuple[str, ...] = tuple(_SAMPLERS)


def sample_case(index: int, rng: np.random.Generator, matrix: int = 128,
                p_insert: float = 0.5) -> CohortCase:
    """One case: each finding inserted with ``p_insert``, severity across its threshold."""
    lesions: list[Lesion] = []
    drawn: dict[str, float] = {}
    for key in COHORT_FINDINGS:
        if rng.random() < p_insert:
            lesion, severity = _SAMPLERS[key](rng)
            lesions.append(lesion)
            drawn[key] = severity
    _separate_sides(lesions)
    phase = ContrastPhase(str(rng.choice(["non_contrast", "non_contrast", "arterial",
                                          "venous"])))
    spec_kw: dict[str, Any] = {
        "matrix": matrix, "fov_mm": 350.0,
        "slice_spacing_mm": float(rng.choice([1.25, 2.5, 2.5, 5.0])),
        "noise_sigma_hu": float(rng.uniform(6.0, 35.0)),
        "kvp": float(rng.choice([80.0, 100.0, 120.0, 120.0, 140.0])),
        "contrast_phase": phase,
        "body_scale": float(rng.uniform(0.85, 1.12)),
        "arms": ArmsPosition.DOWN if rng.random() < 0.2 else ArmsPosition.UP,
        "fat_mm": float(rng.uniform(40.0, 80.0)) if rng.random() < 0.15 else None,
    }
    if spec_kw["slice_spacing_mm"] == 1.25:
        spec_kw["z_extent_mm"] = 290.0
    kernel = "sharp" if rng.random() < 0.3 else "soft"
    seed = int(rng.integers(0, 2**31 - 1))
    spec = PhantomSpec(seed=seed, lesions=tuple(lesions), **spec_kw)
    return CohortCase(index, spec, kernel, drawn)


def _separate_sides(lesions: list[Lesion]) -> None:
    """Effusion and pneumothorax on different sides, so each keeps its volume."""
    taken: set[Side] = set()
    for i, les in enumerate(lesions):
        if isinstance(les, PleuralEffusion | Pneumothorax):
            side = les.side if les.side not in taken else (
                Side.LEFT if les.side is Side.RIGHT else Side.RIGHT)
            taken.add(side)
            lesions[i] = type(les)(side, les.volume_ml)


def sample_cohort(n: int, seed: int, matrix: int = 128) -> tuple[CohortCase, ...]:
    """``n`` cases, deterministic from ``seed``."""
    rng = np.random.default_rng([seed, 13])
    return tuple(sample_case(i, rng, matrix) for i in range(n))


def reference(truth: dict[str, Any]) -> dict[str, str]:
    """present / absent for every cohort finding, by the rules of the module doc.

    ``truth`` is the generated phantom's truth (``Phantom.truth``).
    """
    lesions = truth["lesions"]
    phantom_map = truth["findings"]
    nod = [float(e["diameter_mm"]) for e in lesions if e["type"] == "nodule"]
    out = {
        "lung_nodule": any(NODULE_MIN_MM <= d < MASS_MIN_MM for d in nod),
        "lung_mass": any(d >= MASS_MIN_MM for d in nod),
        "lung_opacity": any(e["type"] in ("ground_glass", "consolidation") for e in lesions),
        "consolidation": any(e["type"] == "consolidation" for e in lesions),
        "pleural_effusion": any(e["type"] == "pleural_effusion" for e in lesions),
        "pneumothorax": any(e["type"] == "pneumothorax" for e in lesions),
        "pericardial_effusion": truth["measurements"].get(
            "pericardial_effusion_thickness_mm", 0.0) >= PERICARDIAL_MIN_MM,
        "emphysema": any(e["type"] == "emphysema" for e in lesions),
        "coronary_artery_wall_calcification": truth["measurements"].get(
            "coronary_agatston_like", 0.0) > 0.0,
        "arterial_wall_calcification": truth["measurements"].get(
            "aortic_agatston_like", 0.0) > 0.0,
        "medical_material": any(e["type"] == "metal" for e in lesions),
        "low_vertebral_bone_density": phantom_map["low_vertebral_bone_density"] == "present",
        "cardiomegaly": phantom_map["cardiomegaly"] == "present",
        "thoracic_aortic_dilatation": phantom_map["thoracic_aortic_dilatation"] == "present",
    }
    return {k: "present" if v else "absent" for k, v in out.items()}


REFERENCE_RULES: dict[str, str] = {
    "lung_nodule": f"a nodule {NODULE_MIN_MM:g} to < {MASS_MIN_MM:g} mm",
    "lung_mass": f"a nodule >= {MASS_MIN_MM:g} mm",
    "lung_opacity": "any ground glass or consolidation",
    "consolidation": "any consolidation",
    "pleural_effusion": "any effusion (>= 10 ml)",
    "pneumothorax": "any pneumothorax (>= 10 ml)",
    "pericardial_effusion": f"fluid >= {PERICARDIAL_MIN_MM:g} mm",
    "emphysema": "any emphysema (>= 0.5 % of lung)",
    "coronary_artery_wall_calcification": "Agatston-style score > 0",
    "arterial_wall_calcification": "Agatston-style score > 0",
    "medical_material": "any device",
    "low_vertebral_bone_density": "trabecular HU < 110 (phantom truth)",
    "cardiomegaly": "phantom truth (CTR > 0.5)",
    "thoracic_aortic_dilatation": "ascending >= 40 or descending >= 30 mm",
}

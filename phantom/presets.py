"""Lesions by name (for the CLI) and random lesion sets (for evaluation cohorts).

A lesion text is ``name`` or ``name:field=value:field=value``, e.g.
``nodule:diameter_mm=14:kind=part_solid``, ``effusion:side=left:volume_ml=500``;
site fields of lung lesions are ``side``, ``level``, ``ap``, ``lateral``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from phantom.errors import PhantomSpecError
from phantom.types import (
    AorticCalcification,
    AorticSegment,
    Atelectasis,
    Bronchiectasis,
    Cardiomegaly,
    Consolidation,
    CoronaryArtery,
    CoronaryCalcification,
    DilatedAorta,
    Distribution,
    Emphysema,
    FibroticSequela,
    GroundGlass,
    HiatalHernia,
    Lesion,
    LowBoneDensity,
    LungSite,
    Lymphadenopathy,
    LymphStation,
    Metal,
    MetalKind,
    MosaicAttenuation,
    Nodule,
    NoduleKind,
    PeribronchialThickening,
    PericardialEffusion,
    PleuralEffusion,
    Pneumothorax,
    SeptalThickening,
    Side,
)

# name -> (lesion type, default field values)
PRESETS: dict[str, tuple[type, dict[str, Any]]] = {
    "nodule": (Nodule, {"diameter_mm": 10.0}),
    "part_solid_nodule": (Nodule, {"diameter_mm": 16.0, "kind": "part_solid"}),
    "ground_glass_nodule": (Nodule, {"diameter_mm": 14.0, "kind": "ground_glass"}),
    "mass": (Nodule, {"diameter_mm": 40.0, "site": LungSite(Side.LEFT, 0.6, 0.5, 0.5)}),
    "ground_glass": (GroundGlass, {}),
    "consolidation": (Consolidation, {}),
    "effusion": (PleuralEffusion, {}),
    "pleural_effusion": (PleuralEffusion, {}),
    "pericardial_effusion": (PericardialEffusion, {}),
    "emphysema": (Emphysema, {}),
    "coronary_calcification": (CoronaryCalcification, {}),
    "aortic_calcification": (AorticCalcification, {}),
    "pneumothorax": (Pneumothorax, {}),
    "pacemaker": (Metal, {"kind": "pacemaker"}),
    "port": (Metal, {"kind": "port"}),
    "metal": (Metal, {}),
    "low_bone_density": (LowBoneDensity, {}),
    "cardiomegaly": (Cardiomegaly, {}),
    "dilated_aorta": (DilatedAorta, {}),
    "atelectasis": (Atelectasis, {}),
    "lymphadenopathy": (Lymphadenopathy, {}),
    "hiatal_hernia": (HiatalHernia, {}),
    "mosaic_attenuation": (MosaicAttenuation, {}),
    "septal_thickening": (SeptalThickening, {}),
    "fibrosis": (FibroticSequela, {}),
    "bronchiectasis": (Bronchiectasis, {}),
    "peribronchial_thickening": (PeribronchialThickening, {}),
}
_SITE_FIELDS = ("side", "level", "ap", "lateral")


def _convert(text: str) -> Any:
    low = text.lower()
    if low in {"true", "false"}:
        return low == "true"
    if low == "none":
        return None
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def lesion_from_text(text: str) -> Lesion:
    """Parse ``name[:field=value...]``; PhantomSpecError names what is wrong."""
    parts = [p.strip() for p in text.strip().split(":") if p.strip()]
    if not parts:
        raise PhantomSpecError("empty lesion text")
    name = parts[0].lower().replace("-", "_")
    if name not in PRESETS:
        raise PhantomSpecError(f"unknown lesion {name!r}; known: {', '.join(sorted(PRESETS))}")
    cls, defaults = PRESETS[name]
    kw = dict(defaults)
    site_kw: dict[str, Any] = {}
    fields = {f.name for f in dataclasses.fields(cls)}
    for part in parts[1:]:
        if "=" not in part:
            raise PhantomSpecError(f"lesion option {part!r} must be field=value")
        key, value = (s.strip() for s in part.split("=", 1))
        if key in _SITE_FIELDS and "site" in fields:
            site_kw[key] = _convert(value)
        elif key in fields:
            kw[key] = _convert(value)
        else:
            raise PhantomSpecError(f"{cls.__name__} has no field {key!r}; fields: "
                                   f"{', '.join(sorted(fields | set(_SITE_FIELDS)))}")
    if site_kw:
        base = kw.get("site")
        if base is None:
            base = cls().site  # the lesion type's default site
        kw["site"] = dataclasses.replace(base, **site_kw)
    if isinstance(kw.get("center_mm"), str):
        kw["center_mm"] = tuple(float(v) for v in kw["center_mm"].split(","))
    try:
        return cls(**kw)
    except (TypeError, ValueError) as exc:
        raise PhantomSpecError(f"lesion {text!r}: {exc}") from exc


def lesions_from_text(text: str) -> tuple[Lesion, ...]:
    """Comma-separated lesion texts."""
    return tuple(lesion_from_text(t) for t in text.split(",") if t.strip())


def _side(rng: np.random.Generator) -> Side:
    return Side(str(rng.choice(["right", "left"])))


def _site(rng: np.random.Generator) -> LungSite:
    return LungSite(
        side=_side(rng),
        level=float(rng.uniform(0.2, 0.85)),
        ap=float(rng.uniform(0.15, 0.85)),
        lateral=float(rng.uniform(0.2, 0.8)),
    )


_RANDOM: dict[str, Callable[[np.random.Generator], Lesion]] = {
    "lung_nodule": lambda r: Nodule(
        float(r.uniform(5.0, 25.0)),
        NoduleKind(str(r.choice(["solid", "solid", "part_solid", "ground_glass"]))), _site(r)),
    "lung_mass": lambda r: Nodule(float(r.uniform(32.0, 50.0)), NoduleKind.SOLID, _site(r)),
    "lung_opacity": lambda r: GroundGlass(_site(r), float(r.uniform(30.0, 70.0))),
    "consolidation": lambda r: Consolidation(_site(r), float(r.uniform(35.0, 70.0))),
    "pleural_effusion": lambda r: PleuralEffusion(_side(r), float(r.uniform(100.0, 900.0))),
    "pericardial_effusion": lambda r: PericardialEffusion(float(r.uniform(6.0, 20.0))),
    "emphysema": lambda r: Emphysema(
        float(r.uniform(0.08, 0.35)), Distribution(str(r.choice(["upper", "diffuse", "lower"])))),
    "coronary_artery_wall_calcification": lambda r: CoronaryCalcification(
        CoronaryArtery(str(r.choice(["lad", "lcx", "rca"]))), float(r.uniform(0.05, 0.6)),
        float(r.uniform(4.0, 15.0)), float(r.uniform(2.5, 4.5)), float(r.uniform(400.0, 900.0))),
    "arterial_wall_calcification": lambda r: AorticCalcification(
        AorticSegment(str(r.choice(["arch", "descending"]))), int(r.integers(2, 8)),
        float(r.uniform(4.0, 9.0)), float(r.uniform(400.0, 1000.0))),
    "pneumothorax": lambda r: Pneumothorax(_side(r), float(r.uniform(100.0, 700.0))),
    "medical_material": lambda r: Metal(MetalKind(str(r.choice(["pacemaker", "port"])))),
    "low_vertebral_bone_density": lambda r: LowBoneDensity(float(r.uniform(40.0, 100.0))),
    "cardiomegaly": lambda r: Cardiomegaly(float(r.uniform(0.54, 0.66))),
    "thoracic_aortic_dilatation": lambda r: DilatedAorta(float(r.uniform(43.0, 55.0))),
    "atelectasis": lambda r: Atelectasis(_side(r), float(r.uniform(60.0, 300.0))),
    "lymphadenopathy": lambda r: Lymphadenopathy(
        (LymphStation(str(r.choice(["4r", "7", "5", "10r", "10l"]))),),
        float(r.uniform(12.0, 25.0))),
    "hiatal_hernia": lambda r: HiatalHernia(float(r.uniform(35.0, 70.0))),
    "mosaic_attenuation_pattern": lambda r: MosaicAttenuation(float(r.uniform(0.2, 0.5))),
    "interlobular_septal_thickening": lambda r: SeptalThickening(
        Distribution(str(r.choice(["lower", "diffuse"])))),
    "pulmonary_fibrotic_sequela": lambda r: FibroticSequela(),
    "bronchiectasis": lambda r: Bronchiectasis(_site(r), float(r.uniform(35.0, 60.0)),
                                               float(r.uniform(1.8, 3.0))),
    "peribronchial_thickening": lambda r: PeribronchialThickening(float(r.uniform(2.0, 3.5))),
}
RANDOM_FINDINGS: tuple[str, ...] = tuple(_RANDOM)


def random_lesions(rng: np.random.Generator, p_each: float = 0.15) -> tuple[Lesion, ...]:
    """A random set of lesions for a cohort: each finding type independently with ``p_each``.

    At most one lesion per finding type; pleural effusion, pneumothorax and
    atelectasis go to different sides (a third one shares), so each keeps its volume.
    """
    out: list[Lesion] = []
    for key in RANDOM_FINDINGS:
        if rng.random() < p_each:
            out.append(_RANDOM[key](rng))
    # Collections that displace lung go to different sides, so each keeps its volume.
    taken: set[Side] = set()
    for i, les in enumerate(out):
        if isinstance(les, PleuralEffusion | Pneumothorax | Atelectasis):
            side = les.side if les.side not in taken else (
                Side.LEFT if les.side is Side.RIGHT else Side.RIGHT)
            taken.add(side)
            out[i] = dataclasses.replace(les, side=side)
    return tuple(out)

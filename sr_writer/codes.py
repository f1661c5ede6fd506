"""Coded concepts of our DICOM outputs: the one place where codes are spelled.

Finding concepts come from the findings vocabulary (``inference/findings.py``);
everything else the SR says is a DICOM (DCM, PS3.16), SNOMED CT (SCT), LOINC (LN)
or UCUM code taken from pydicom's code dictionary where it has one. Measurement
names a model invents that have no standard concept get a code in our private
coding scheme ``99CTNODE`` (PS3.16 Section 8: private schemes start with "99"),
which the SR identifies in its Coding Scheme Identification Sequence.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

import highdicom as hd
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from pydicom.sr.codedict import codes

from inference.findings import FINDING_KEYS, FINDINGS, CodedConcept

PRIVATE_SCHEME = "99CTNODE"
"""Designator of our private coding scheme (model-specific measurement names)."""

# --- document, observer, procedure -------------------------------------------------------
DOCUMENT_TITLE = codes.cid7021.ImagingMeasurementReport
PROCEDURE_CT_CHEST = hd.sr.CodedConcept("24627-2", "LN", "CT Chest")
"""LOINC 24627-2 "CT Chest" (CID 100 Quantitative Diagnostic Imaging Procedures)."""
OBSERVER_TYPE_DEVICE = codes.cid270.Device

# --- values and concept names inside measurement groups ------------------------------
PRESENT = codes.SCT.Present
ABSENT = codes.SCT.Absent
PROBABILITY = codes.DCM.Probability  # DCM 122157
DIAMETER = codes.SCT.Diameter
VOLUME = codes.SCT.Volume
ABNORMAL = codes.SCT.Abnormal
"""Names the overall 0/1 decision (value Present / Absent)."""
CAD_SUMMARY = codes.DCM.CADProcessingAndFindingsSummary  # DCM 111017, CID 6047 values
CAD_SUCCEEDED_WITH_FINDINGS = codes.DCM.AllAlgorithmsSucceededWithFindings
CAD_SUCCEEDED_WITHOUT_FINDINGS = codes.DCM.AllAlgorithmsSucceededWithoutFindings
CAD_FAILED = codes.DCM.NoAlgorithmsSucceededWithoutFindings
COMMENT = codes.DCM.Comment  # DCM 121106: selection outcome, failure reason, disclaimer
NOT_EVALUATED = codes.SCT.NotEvaluated  # SCT 373121007: value of a finding not assessed
THRESHOLD = codes.DCM.ThresholdValue  # DCM 122411: the probability at which Present is said
KEY_IMAGES = codes.DCM.KeyImages  # DCM 121180: our Secondary Capture key images
QUALITATIVE_EVALUATIONS = hd.sr.CodedConcept("C0034375", "UMLS", "Qualitative Evaluations")
"""TID 1500 row 14: evaluations not tied to an image region (every finding's verdict)."""
SOURCE_SERIES = codes.DCM.SourceSeriesForImageProcessingOperation  # DCM 121323 (UIDREF)

# --- anatomy (finding sites) --------------------------------------------------------------
LEFT = codes.SCT.Left
RIGHT = codes.SCT.Right
_LUNG = codes.SCT.Lung
_PLEURA = codes.SCT.Pleura

_SITE_BY_FINDING: Mapping[str, hd.sr.CodedConcept | None] = MappingProxyType({
    "medical_material": None,
    "arterial_wall_calcification": hd.sr.CodedConcept.from_code(codes.SCT.ThoracicAorta),
    "cardiomegaly": hd.sr.CodedConcept.from_code(codes.SCT.Heart),
    "pericardial_effusion": hd.sr.CodedConcept.from_code(codes.SCT.Pericardium),
    "coronary_artery_wall_calcification": hd.sr.CodedConcept.from_code(codes.SCT.CoronaryArtery),
    "hiatal_hernia": None,
    "lymphadenopathy": hd.sr.CodedConcept.from_code(codes.SCT.LymphNode),
    "emphysema": hd.sr.CodedConcept.from_code(_LUNG),
    "atelectasis": hd.sr.CodedConcept.from_code(_LUNG),
    "lung_nodule": hd.sr.CodedConcept.from_code(_LUNG),
    "lung_opacity": hd.sr.CodedConcept.from_code(_LUNG),
    "pulmonary_fibrotic_sequela": hd.sr.CodedConcept.from_code(_LUNG),
    "pleural_effusion": hd.sr.CodedConcept.from_code(_PLEURA),
    "mosaic_attenuation_pattern": hd.sr.CodedConcept.from_code(_LUNG),
    "peribronchial_thickening": hd.sr.CodedConcept.from_code(_LUNG),
    "consolidation": hd.sr.CodedConcept.from_code(_LUNG),
    "bronchiectasis": hd.sr.CodedConcept.from_code(_LUNG),
    "interlobular_septal_thickening": hd.sr.CodedConcept.from_code(_LUNG),
    "pneumothorax": hd.sr.CodedConcept.from_code(_PLEURA),
    "lung_mass": hd.sr.CodedConcept.from_code(_LUNG),
    "thoracic_aortic_dilatation": hd.sr.CodedConcept.from_code(codes.SCT.ThoracicAorta),
    "low_vertebral_bone_density": hd.sr.CodedConcept.from_code(codes.SCT.Spine),
})
if set(_SITE_BY_FINDING) != set(FINDING_KEYS):  # the vocabulary grew: decide its site here
    raise RuntimeError("sr_writer.codes: every finding needs a finding-site entry")

_PAIRED_SITES = frozenset({_LUNG.value, _PLEURA.value})


def finding_concept(key: str) -> hd.sr.CodedConcept:
    """The SR code of a finding, built from the findings vocabulary."""
    return _to_hd(FINDINGS[key].concept)


def finding_key_for(concept: hd.sr.CodedConcept | None) -> str | None:
    """The finding key whose code this is (for reading an SR back), else None."""
    if concept is None:
        return None
    return _KEY_BY_CODE.get((concept.value, concept.scheme_designator))


def finding_site(key: str) -> hd.sr.CodedConcept | None:
    """Anatomic location of a finding (CID 4 subset), or None when it has no single site."""
    return _SITE_BY_FINDING[key]


def site_is_paired(site: hd.sr.CodedConcept | None) -> bool:
    """Whether a laterality (left/right) qualifies this site (lung, pleura)."""
    return site is not None and site.value in _PAIRED_SITES


_LUNG_WINDOW_FINDINGS = frozenset(
    {key for key, site in _SITE_BY_FINDING.items()
     if site is not None and site.value == _LUNG.value}
    | {"pneumothorax"}  # air in the pleural space: a lung window shows it; fluid needs soft tissue
)


def is_lung_finding(key: str) -> bool:
    """Whether the finding is best seen in a lung window (else a soft-tissue window)."""
    return key in _LUNG_WINDOW_FINDINGS


_UCUM_MEANINGS: Mapping[str, str] = MappingProxyType({
    "1": "no units",
    "mm": "millimeter",
    "cm": "centimeter",
    "ml": "milliliter",
    "mL": "milliliter",
    "cm3": "cubic centimeter",
    "%": "percent",
    "[hnsf'U]": "Hounsfield unit",
    "{probability}": "probability",
    "{Agatston}": "Agatston score",
    "mm2": "square millimeter",
})


def ucum_unit(unit: str) -> hd.sr.CodedConcept:
    """A UCUM unit as a code (the measurement's unit string is the UCUM code)."""
    if not unit:
        raise ValueError("a measurement unit must be a UCUM code ('1' if unitless)")
    return hd.sr.CodedConcept(unit, "UCUM", _UCUM_MEANINGS.get(unit, unit))


_MEASUREMENT_CONCEPTS: Mapping[str, hd.sr.CodedConcept] = MappingProxyType({
    **{n: hd.sr.CodedConcept.from_code(DIAMETER) for n in ("diameter", "diametermm")},
    **{n: hd.sr.CodedConcept.from_code(VOLUME) for n in ("volume", "volumeml")},
    **{n: hd.sr.CodedConcept.from_code(codes.DCM.CalciumScore) for n in (
        "agatston", "agatstonscore", "calciumscore")},
    **{n: hd.sr.CodedConcept.from_code(codes.DCM.MeanAttenuationCoefficient) for n in (
        "meanhu", "meanattenuation")},
})
"""Generic measurement names with a standard concept. Specific names (e.g. an
ascending-aorta diameter next to a descending one) keep their own private code so
that two measurements of one group never share a concept name."""


def measurement_concept(
    name: str, description: str = "", *, private: bool = False
) -> hd.sr.CodedConcept:
    """The concept name of a model's measurement.

    Standard concepts for the quantities DICOM names (diameter, volume, calcium
    score, mean attenuation); otherwise a ``99CTNODE`` code whose value is the
    measurement name, so the SR stays lossless and the name round-trips.
    ``private=True`` forces the private code (used when a standard concept is
    already taken in the same group).
    """
    norm = re.sub(r"[^a-z0-9]", "", name.lower())
    known = _MEASUREMENT_CONCEPTS.get(norm)
    if known is not None and not private:
        return known
    return hd.sr.CodedConcept(name, PRIVATE_SCHEME, short_meaning(description or name))


MAX_MEANING = 64
"""Code Meaning is LO: 64 characters at most (PS3.5 6.2)."""


def short_meaning(text: str) -> str:
    """A code meaning of at most 64 characters, shortened on purpose, never cut mid-word.

    Parenthesised details go first (the method, e.g. "(>= 130 HU)", is in the
    model's documentation), then words from the end.
    """
    text = " ".join(text.split())
    if len(text) <= MAX_MEANING:
        return text
    plain = " ".join(re.sub(r"\s*\([^)]*\)", "", text).split())
    if plain and len(plain) <= MAX_MEANING:
        return plain
    words = (plain or text).split(" ")
    out = ""
    for word in words:
        if len(out) + len(word) + (1 if out else 0) > MAX_MEANING:
            break
        out = f"{out} {word}" if out else word
    return out.rstrip(",;:") or text[:MAX_MEANING]


def coding_scheme_identification() -> CodingSchemeIdentificationItem:
    """Coding Scheme Identification of our private scheme (PS3.3 C.12.1.1.2)."""
    return CodingSchemeIdentificationItem(
        designator=PRIVATE_SCHEME,
        name="ctnode measurement names",
        responsible_organization="ctnode project",
    )


def _to_hd(concept: CodedConcept) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(concept.value, concept.scheme, concept.meaning)


_KEY_BY_CODE: Mapping[tuple[str, str], str] = MappingProxyType({
    (f.concept.value, f.concept.scheme): key for key, f in FINDINGS.items()
})

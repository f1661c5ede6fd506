"""The findings vocabulary: the 22 classes every model, the stacker and the SR speak.

The first 18 are the CT-RATE abnormality labels (Hamamci et al., 2024), the last
4 are critical extras. Each has a stable ``key`` (never renamed: it is a JSON
and spreadsheet column), the English display name used in ``top_pathologies``,
a coded concept for the DICOM SR, and a danger rank (1 = most urgent) used for
``most_dangerous_pathology_type``.

Codes are SNOMED CT where DICOM PS3.16 (as shipped in pydicom's code dictionary)
or the SNOMED CT International release has a concept for the finding; DICOM
(DCM) or RadLex (RID) where SNOMED CT has no radiology-level concept for the
imaging pattern.

Where each code was checked (2026-11, chest_quant issue):
- In pydicom 3.0.2 ``pydicom.sr._concepts_dict`` (DICOM PS3.16): 40388003
  Implant, 237897009 Vascular calcification (PS3.16 also uses it for
  "Calcified"), 373945007 Pericardial effusion, 30746006 Lymphadenopathy,
  60046008 Pleural effusion, 36118008 Pneumothorax, DCM 112001 Opacity,
  DCM 112130 Mosaic pattern and DCM 112114 Septal line(s) (CID 6102/6103,
  the thoracic findings context groups; septal lines are thickened
  interlobular septa).
- In public FHIR value sets / terminology mappings (SNOMED CT International
  identifiers with their descriptions): 8186001 Cardiomegaly, 87433001
  Pulmonary emphysema, 46621007 Atelectasis, 786838002 Nodule of lung,
  95436008 Lung consolidation, 12295008 Bronchiectasis, 84089009 Hiatal
  hernia, 51615001 Fibrosis of lung, 445512009 Calcification of coronary
  artery, 309529002 Lung mass, 433068007 Aneurysm of thoracic aorta,
  312894000 Osteopenia.
- Corrected then: coronary calcification was 194842008 (= single vessel
  coronary artery disease), lung mass was 126713003 (= neoplasm of lung),
  mosaic attenuation and interlobular septal thickening were RadLex RIDs that
  could not be confirmed offline (replaced by the PS3.16 codes above).
- Not confirmed offline: RadLex RID35715 (peribronchial cuffing); check it
  against radlex.org before relying on it in an SR.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class CodedConcept:
    """A (value, scheme, meaning) triple as in a DICOM Code Sequence item."""

    value: str
    scheme: str  # "SCT" (SNOMED CT), "RADLEX", "DCM"
    meaning: str

    def __post_init__(self) -> None:
        if self.scheme not in {"SCT", "RADLEX", "DCM"}:
            raise ValueError(f"CodedConcept.scheme {self.scheme!r} is not a scheme we use")
        if not self.value or not self.meaning:
            raise ValueError("CodedConcept needs a value and a meaning")


@dataclass(frozen=True, slots=True)
class Finding:
    """One class of the vocabulary."""

    key: str
    display_name: str
    concept: CodedConcept
    danger_rank: int
    critical_extra: bool = False
    description: str = ""


def _f(
    key: str,
    name: str,
    code: tuple[str, str, str],
    rank: int,
    extra: bool = False,
    description: str = "",
) -> Finding:
    return Finding(key, name, CodedConcept(*code), rank, extra, description)


_FINDINGS: tuple[Finding, ...] = (
    _f("medical_material", "Medical material",
       ("40388003", "SCT", "Implant"), 17,
       description="Implanted or external medical device (pacemaker, port, wires, stents)."),
    _f("arterial_wall_calcification", "Arterial wall calcification",
       ("237897009", "SCT", "Vascular calcification"), 16),
    _f("cardiomegaly", "Cardiomegaly",
       ("8186001", "SCT", "Cardiomegaly"), 11),
    _f("pericardial_effusion", "Pericardial effusion",
       ("373945007", "SCT", "Pericardial effusion"), 4),
    _f("coronary_artery_wall_calcification", "Coronary artery wall calcification",
       ("445512009", "SCT", "Calcification of coronary artery"), 12),
    _f("hiatal_hernia", "Hiatal hernia",
       ("84089009", "SCT", "Hiatal hernia"), 19),
    _f("lymphadenopathy", "Lymphadenopathy",
       ("30746006", "SCT", "Lymphadenopathy"), 8),
    _f("emphysema", "Emphysema",
       ("87433001", "SCT", "Pulmonary emphysema"), 13),
    _f("atelectasis", "Atelectasis",
       ("46621007", "SCT", "Atelectasis"), 14),
    _f("lung_nodule", "Lung nodule",
       ("786838002", "SCT", "Nodule of lung"), 7),
    _f("lung_opacity", "Lung opacity",
       ("112001", "DCM", "Opacity"), 9),
    _f("pulmonary_fibrotic_sequela", "Pulmonary fibrotic sequela",
       ("51615001", "SCT", "Fibrosis of lung"), 15),
    _f("pleural_effusion", "Pleural effusion",
       ("60046008", "SCT", "Pleural effusion"), 5),
    _f("mosaic_attenuation_pattern", "Mosaic attenuation pattern",
       ("112130", "DCM", "Mosaic pattern"), 18),
    _f("peribronchial_thickening", "Peribronchial thickening",
       ("RID35715", "RADLEX", "peribronchial cuffing"), 20),
    _f("consolidation", "Consolidation",
       ("95436008", "SCT", "Lung consolidation"), 6),
    _f("bronchiectasis", "Bronchiectasis",
       ("12295008", "SCT", "Bronchiectasis"), 10),
    _f("interlobular_septal_thickening", "Interlobular septal thickening",
       ("112114", "DCM", "Septal line(s)"), 21),
    _f("pneumothorax", "Pneumothorax",
       ("36118008", "SCT", "Pneumothorax"), 1, True),
    _f("lung_mass", "Lung mass",
       ("309529002", "SCT", "Lung mass"), 2, True,
       description="Lung lesion of 30 mm or more."),
    _f("thoracic_aortic_dilatation", "Thoracic aortic dilatation",
       ("433068007", "SCT", "Aneurysm of thoracic aorta"), 3, True,
       description="Ascending aorta >= 40 mm or descending aorta >= 30 mm."),
    _f("low_vertebral_bone_density", "Low vertebral bone density",
       ("312894000", "SCT", "Osteopenia"), 22, True,
       description="Trabecular attenuation of a thoracolumbar vertebral body below ~110 HU."),
)

FINDINGS: Mapping[str, Finding] = MappingProxyType({f.key: f for f in _FINDINGS})
"""All 22 findings by key, in the vocabulary's fixed order."""

FINDING_KEYS: tuple[str, ...] = tuple(FINDINGS)


def get_finding(key: str) -> Finding:
    """The finding with that key; a KeyError names the unknown key."""
    try:
        return FINDINGS[key]
    except KeyError:
        raise KeyError(f"unknown finding key {key!r}; known: {', '.join(FINDING_KEYS)}") from None


def _check_vocabulary() -> None:
    ranks = sorted(f.danger_rank for f in _FINDINGS)
    if len(_FINDINGS) != 22 or ranks != list(range(1, 23)):
        raise RuntimeError("the findings vocabulary must have 22 classes with ranks 1..22")


_check_vocabulary()

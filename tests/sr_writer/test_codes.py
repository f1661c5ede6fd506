"""The SR's vocabulary: finding codes come from inference/findings.py, units are UCUM."""

from __future__ import annotations

import highdicom as hd

from inference.findings import FINDING_KEYS, FINDINGS
from sr_writer import codes


def test_every_finding_code_comes_from_the_vocabulary_and_maps_back() -> None:
    for key in FINDING_KEYS:
        concept = codes.finding_concept(key)
        source = FINDINGS[key].concept
        assert (concept.value, concept.scheme_designator, concept.meaning) == (
            source.value, source.scheme, source.meaning)
        assert codes.finding_key_for(concept) == key
    assert codes.finding_key_for(hd.sr.CodedConcept("121071", "DCM", "Finding")) is None


def test_finding_codes_never_collide_with_group_concepts() -> None:
    """A finding named like a group row (e.g. DCM 121071) would vanish on read-back."""
    reserved = {(c.value, c.scheme_designator) for c in (
        codes.PROBABILITY, codes.ABNORMAL, codes.CAD_SUMMARY, codes.COMMENT, codes.DIAMETER,
        codes.VOLUME)} | {("121071", "DCM")}
    for key in FINDING_KEYS:
        c = codes.finding_concept(key)
        assert (c.value, c.scheme_designator) not in reserved, key


def test_measurement_concepts() -> None:
    assert codes.measurement_concept("diameter_mm") == codes.DIAMETER
    assert codes.measurement_concept("Volume") == codes.VOLUME
    private = codes.measurement_concept("laa950", "emphysema index")
    assert (private.value, private.scheme_designator, private.meaning) == (
        "laa950", codes.PRIVATE_SCHEME, "emphysema index")
    forced = codes.measurement_concept("diameter", private=True)
    assert forced.scheme_designator == codes.PRIVATE_SCHEME


def test_ucum_units() -> None:
    assert codes.ucum_unit("1").meaning == "no units"
    assert codes.ucum_unit("mm").scheme_designator == "UCUM"
    assert codes.ucum_unit("[hnsf'U]").meaning == "Hounsfield unit"


def test_sites_and_lateralities() -> None:
    assert codes.site_is_paired(codes.finding_site("lung_nodule"))
    assert codes.site_is_paired(codes.finding_site("pneumothorax"))
    assert not codes.site_is_paired(codes.finding_site("cardiomegaly"))
    assert codes.finding_site("medical_material") is None
    assert codes.is_lung_finding("emphysema") and not codes.is_lung_finding("cardiomegaly")
    assert codes.is_lung_finding("pneumothorax")
    assert not codes.is_lung_finding("pleural_effusion")  # fluid: soft-tissue window

"""Scanner and patient variants of the phantom (issue 12): contrast phases, kVp, body size,
arms, scoliosis, right-sided arch, sternal wires, oral contrast, vertebral levels."""

from __future__ import annotations

import json

import numpy as np
import pytest

from phantom import Metal, PhantomSpec, Tissue, generate_phantom, write_dicom_study
from phantom.generate import kvp_factors
from phantom.types import ContrastPhase

TINY = dict(matrix=64, fov_mm=380.0, slice_spacing_mm=6.0, noise_sigma_hu=10.0)


def _median(ph, tissue: Tissue) -> float:  # type: ignore[no-untyped-def]
    sel = ph.labels == tissue
    assert sel.sum() > 3, f"no {tissue.name} voxels"
    return float(np.median(ph.hu[sel]))


def _bone_x(ph, k: int) -> float:  # type: ignore[no-untyped-def]
    """Mean x (mm) of the vertebral body's voxels on slice k."""
    _, xs = np.nonzero(np.isin(ph.labels[k], (Tissue.VERTEBRAL_TRABECULAR, Tissue.DISC)))
    return float(ph.origin[0] + xs.mean() * ph.spacing[0])


@pytest.fixture(scope="module")
def plain():  # type: ignore[no-untyped-def]
    return generate_phantom(PhantomSpec(seed=4, **TINY))


def test_contrast_phases_differ_where_radiology_says(plain) -> None:  # type: ignore[no-untyped-def]
    art = generate_phantom(PhantomSpec(seed=4, contrast_phase="arterial", z_offset_mm=-60.0,
                                       **TINY))
    ven = generate_phantom(PhantomSpec(seed=4, contrast_phase="venous", z_offset_mm=-60.0,
                                       **TINY))
    assert PhantomSpec(contrast=True).contrast_phase is ContrastPhase.ARTERIAL
    assert PhantomSpec(contrast_phase="venous").contrast is True
    assert PhantomSpec().contrast_phase is ContrastPhase.NON_CONTRAST
    with pytest.raises(ValueError, match="contradicts"):
        PhantomSpec(contrast=True, contrast_phase="non_contrast")
    assert _median(plain, Tissue.AORTA) < 80
    # Arterial: aorta well above the portal venous phase, liver barely enhanced, dense
    # contrast in the injected vein (SVC) as on a real CTA.
    assert _median(art, Tissue.AORTA) > 250 > _median(ven, Tissue.AORTA) > 130
    assert _median(art, Tissue.LIVER) < 85 < _median(ven, Tissue.LIVER)
    assert _median(art, Tissue.SVC) > 1500
    assert _median(ven, Tissue.PORTAL_VEIN) >= _median(ven, Tissue.AORTA) - 10
    assert _median(art, Tissue.PORTAL_VEIN) < _median(art, Tissue.AORTA) - 100


def test_low_kvp_raises_iodine_and_calcium_lowers_fat(plain) -> None:  # type: ignore[no-untyped-def]
    low = generate_phantom(PhantomSpec(seed=4, kvp=80.0, contrast=True, **TINY))
    ref = generate_phantom(PhantomSpec(seed=4, contrast=True, **TINY))
    f_i, f_ca, f_fat = kvp_factors(80.0)
    assert kvp_factors(120.0) == pytest.approx((1.0, 1.0, 1.0))
    assert 1.6 < f_i < 1.8 and 1.3 < f_ca < 1.5 and f_fat > 1.1
    enh = _median(ref, Tissue.AORTA) - _median(plain, Tissue.AORTA)
    enh_low = _median(low, Tissue.AORTA) - _median(plain, Tissue.AORTA)
    assert enh_low == pytest.approx(enh * f_i, rel=0.1)
    assert _median(low, Tissue.BONE_CORTEX) == pytest.approx(
        _median(ref, Tissue.BONE_CORTEX) * f_ca, rel=0.1)
    assert _median(low, Tissue.FAT) < _median(ref, Tissue.FAT) - 10
    assert abs(_median(low, Tissue.MUSCLE) - _median(ref, Tissue.MUSCLE)) < 10


def test_child_is_smaller_and_lesion_sizes_stay(plain) -> None:  # type: ignore[no-untyped-def]
    from phantom import DilatedAorta
    child = generate_phantom(PhantomSpec(seed=4, body_scale=0.6, **TINY))
    big = generate_phantom(PhantomSpec(seed=4, body_scale=0.6,
                                       lesions=(DilatedAorta(30.0),), **TINY))
    a, c = plain.truth, child.truth
    assert c["anatomy"]["body_scale"] == pytest.approx(0.6)
    assert c["measurements"]["thoracic_width_mm"] == pytest.approx(
        0.6 * a["measurements"]["thoracic_width_mm"], rel=0.02)
    assert c["measurements"]["aorta_ascending_diameter_mm"] < 22.0
    assert big.truth["measurements"]["aorta_ascending_diameter_mm"] == pytest.approx(30.0)
    # The ctr is a ratio: the same in a child.
    assert c["measurements"]["ctr"] == pytest.approx(a["measurements"]["ctr"], abs=0.01)
    lung_c = (child.labels == Tissue.LUNG).sum()
    lung_a = (plain.labels == Tissue.LUNG).sum()
    assert 0.15 < lung_c / lung_a < 0.4  # area scales by 0.36 on the same grid


def test_obese_body_leaves_the_field_of_view(plain) -> None:  # type: ignore[no-untyped-def]
    obese = generate_phantom(PhantomSpec(seed=4, fat_mm=75.0, **TINY))
    k = plain.shape[0] // 2
    assert obese.truth["anatomy"]["subcutaneous_fat_mm"] == pytest.approx(75.0)
    edge = obese.labels[k][:, [0, -1]]
    assert np.isin(edge, (Tissue.FAT, Tissue.MUSCLE)).any()  # skin beyond the border
    assert not np.isin(plain.labels[k][:, [0, -1]], (Tissue.FAT, Tissue.MUSCLE)).any()


def test_arms_down_adds_humeri_beside_the_chest(plain) -> None:  # type: ignore[no-untyped-def]
    arms = generate_phantom(PhantomSpec(seed=4, arms="down", **{**TINY, "fov_mm": 560.0}))
    k = arms.shape[0] // 2
    bone = arms.labels[k] == Tissue.BONE_MARROW
    xs = arms.origin[0] + np.nonzero(bone)[1] * arms.spacing[0]
    assert (xs < -190).any() and (xs > 190).any()  # a humerus on each side
    assert arms.truth["anatomy"]["arms"] == "down"


def test_scoliosis_moves_the_spine_right(plain) -> None:  # type: ignore[no-untyped-def]
    sco = generate_phantom(PhantomSpec(seed=4, scoliosis_deg=40.0, **TINY))
    shift = sco.truth["anatomy"]["scoliosis_apex_shift_mm"]
    assert shift < -15.0  # convex right = towards -x (LPS)
    apex_z = sco.truth["anatomy"]["lung_base_z_mm"] + 0.475 * (
        sco.truth["anatomy"]["lung_apex_z_mm"] - sco.truth["anatomy"]["lung_base_z_mm"])
    k = int(round((apex_z - sco.origin[2]) / sco.spacing[2]))
    assert _bone_x(sco, k) - _bone_x(plain, k) == pytest.approx(shift, abs=8.0)


def test_right_arch_puts_descending_aorta_right_of_spine() -> None:
    left = generate_phantom(PhantomSpec(seed=4, **TINY))
    right = generate_phantom(PhantomSpec(seed=4, aortic_arch="right", **TINY))
    k = int(round((left.truth["anatomy"]["lung_base_z_mm"] + 60.0 - left.origin[2])
                  / left.spacing[2]))

    def desc_x(ph) -> float:  # type: ignore[no-untyped-def]
        _, xs = np.nonzero(ph.labels[k] == Tissue.AORTA)
        return float(ph.origin[0] + xs.mean() * ph.spacing[0])

    assert desc_x(left) > 5.0 and desc_x(right) < -5.0
    assert right.truth["anatomy"]["aortic_arch"] == "right"


def test_sternal_wires_are_metal_and_found_in_truth() -> None:
    ph = generate_phantom(PhantomSpec(seed=4, lesions=(Metal("sternal_wires"),), **TINY))
    assert ph.truth["findings"]["medical_material"] == "present"
    assert (ph.labels == Tissue.METAL).sum() > 10
    assert int(ph.hu.max()) > 2500
    ys = np.nonzero(ph.labels == Tissue.METAL)[1] * ph.spacing[1] + ph.origin[1]
    assert ys.max() < -40.0  # anterior, around the sternum


def test_oral_contrast_and_header(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ph = generate_phantom(PhantomSpec(seed=4, oral_contrast_hu=900.0, kvp=100.0,
                                      contrast_phase="venous", **TINY))
    assert _median(ph, Tissue.ORAL_CONTRAST) > 900.0  # iodine reads higher at 100 kVp
    import pydicom

    from phantom import SeriesSpec
    study = write_dicom_study(ph, tmp_path, series=(SeriesSpec("thin"),))
    ds = pydicom.dcmread(study.series_named("thin").paths[0])
    assert float(ds.KVP) == 100.0 and ds.ContrastBolusRoute == "ORAL & IV"
    truth = json.loads(study.truth_path.read_text())
    assert truth["spec"]["contrast_phase"] == "venous" and truth["spec"]["kvp"] == 100.0


def test_vertebral_levels_are_counted_from_the_ribs(plain) -> None:  # type: ignore[no-untyped-def]
    levels = plain.truth["anatomy"]["vertebral_levels"]
    names = [v["name"] for v in levels]
    assert "T12" in names and "L1" in names
    t12 = levels[names.index("T12")]["z_range_mm"]
    l1 = levels[names.index("L1")]["z_range_mm"]
    assert l1[1] < t12[0]  # L1 below T12
    base = plain.truth["anatomy"]["lung_base_z_mm"]
    assert l1[0] - 10.0 < base < t12[1] + 10.0  # the posterior recess at T12-L1


def test_variants_are_deterministic() -> None:
    kw = dict(seed=9, scoliosis_deg=-25.0, arms="down", body_scale=0.8, kvp=100.0,
              contrast_phase="venous", aortic_arch="right", fat_mm=40.0,
              lesions=(Metal("sternal_wires"),), **TINY)
    a, b = generate_phantom(PhantomSpec(**kw)), generate_phantom(PhantomSpec(**kw))
    assert np.array_equal(a.hu, b.hu) and np.array_equal(a.labels, b.labels)
    assert json.dumps(a.truth, sort_keys=True) == json.dumps(b.truth, sort_keys=True)

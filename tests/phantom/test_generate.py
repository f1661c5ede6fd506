"""generate_phantom: determinism, anatomy HU, lesions where the truth says, truth bookkeeping."""

from __future__ import annotations

import json

import numpy as np
import pytest

from inference.findings import FINDING_KEYS
from phantom import (
    Cardiomegaly,
    DilatedAorta,
    Nodule,
    PericardialEffusion,
    Phantom,
    PhantomSpec,
    PhantomSpecError,
    Tissue,
    generate_phantom,
)

TINY = dict(matrix=64, fov_mm=360.0, slice_spacing_mm=6.0, noise_sigma_hu=12.0)


def _median(ph: Phantom, tissue: Tissue) -> float:
    sel = ph.labels == tissue
    assert sel.sum() > 20, f"no {tissue.name} voxels"
    return float(np.median(ph.hu[sel]))


def test_same_seed_same_volume_and_truth() -> None:
    a = generate_phantom(PhantomSpec(seed=5, lesions=(Nodule(15.0),), **TINY))
    b = generate_phantom(PhantomSpec(seed=5, lesions=(Nodule(15.0),), **TINY))
    c = generate_phantom(PhantomSpec(seed=6, lesions=(Nodule(15.0),), **TINY))
    assert np.array_equal(a.hu, b.hu) and np.array_equal(a.labels, b.labels)
    assert json.dumps(a.truth, sort_keys=True) == json.dumps(b.truth, sort_keys=True)
    assert not np.array_equal(a.hu, c.hu)


def test_volume_geometry(normal_phantom: Phantom) -> None:
    ph = normal_phantom
    assert ph.hu.dtype == np.int16 and ph.hu.shape == ph.labels.shape
    nz, ny, nx = ph.shape
    assert (ny, nx) == (128, 128)
    assert nz * ph.spacing[2] >= 260.0  # whole chest
    # Voxel 0 is the right-anterior-caudal corner; the FOV is centred on the isocentre.
    assert ph.origin[0] < 0 and ph.origin[1] < 0
    assert ph.index_to_lps(0, 0, 0) == ph.origin
    assert ph.lps_to_index(ph.index_to_lps(3, 4, 5)) == (3, 4, 5)


@pytest.mark.parametrize(
    ("tissue", "lo", "hi"),
    [
        (Tissue.AIR, -1024, -960),
        (Tissue.FAT, -130, -70),
        (Tissue.MUSCLE, 20, 70),
        (Tissue.LUNG, -900, -780),
        (Tissue.LIVER, 40, 80),
        (Tissue.MEDIASTINAL_FAT, -130, -40),
        (Tissue.MYOCARDIUM, 20, 70),
        (Tissue.VERTEBRAL_TRABECULAR, 150, 260),
        (Tissue.BONE_CORTEX, 300, 900),
        (Tissue.AIRWAY_LUMEN, -1024, -700),
    ],
)
def test_tissue_hu_ranges(normal_phantom: Phantom, tissue: Tissue, lo: float, hi: float) -> None:
    assert lo <= _median(normal_phantom, tissue) <= hi


def test_noise_level_in_air(normal_phantom: Phantom) -> None:
    ph = normal_phantom
    # Air far from the body, above the -1024 floor: the noise sigma (15 HU) shows there.
    corner = ph.hu[:, :8, :8].astype(float)
    assert 8.0 < corner.std() < 22.0


def test_table_below_patient_and_separate(normal_phantom: Phantom) -> None:
    ph = normal_phantom
    rows_table = np.nonzero((ph.labels == Tissue.TABLE).any(axis=(0, 2)))[0]
    body = np.isin(ph.labels, [Tissue.FAT, Tissue.MUSCLE])
    rows_body = np.nonzero(body.any(axis=(0, 2)))[0]
    assert rows_table.min() > rows_body.max()  # posterior (larger y) of the patient


def test_lungs_smaller_at_apex_and_base(normal_phantom: Phantom) -> None:
    ph = normal_phantom
    area = (ph.labels == Tissue.LUNG).sum(axis=(1, 2))
    ks = np.nonzero(area)[0]
    mid = area[(ks[0] + ks[-1]) // 2]
    assert area[ks[-1] - 2] < 0.3 * mid  # apex
    assert area[ks[0] + 1] < 0.5 * mid  # costophrenic recesses
    assert ks[0] > 0 and ks[-1] < ph.shape[0] - 1  # bases and apices inside the scan
    tv = normal_phantom.truth["measurements"]["lung_volume_ml"]["total"]
    assert 3000 < tv < 6500


def test_vessels_thin_towards_periphery(normal_phantom: Phantom) -> None:
    ph = normal_phantom
    hila = ph.truth["anatomy"]["hila_lps_mm"]
    k, j, i = np.nonzero(np.isin(ph.labels, [Tissue.LUNG, Tissue.LUNG_VESSEL]))
    pts = np.stack([ph.origin[0] + i * ph.spacing[0], ph.origin[1] + j * ph.spacing[1],
                    ph.origin[2] + k * ph.spacing[2]], axis=1)
    dist = np.minimum(np.linalg.norm(pts - np.array(hila["right"]), axis=1),
                      np.linalg.norm(pts - np.array(hila["left"]), axis=1))
    vessel = ph.labels[k, j, i] == Tissue.LUNG_VESSEL
    near, far = vessel[dist < 40].mean(), vessel[dist > 110].mean()
    assert near > 2.5 * far > 0


def test_findings_map_covers_vocabulary(diseased_phantom: Phantom) -> None:
    f = diseased_phantom.truth["findings"]
    assert tuple(f) == FINDING_KEYS
    assert set(f.values()) <= {"present", "absent", "not_modelled"}
    for key in ("lung_nodule", "pleural_effusion", "pneumothorax", "emphysema",
                "coronary_artery_wall_calcification", "arterial_wall_calcification",
                "medical_material", "low_vertebral_bone_density"):
        assert f[key] == "present", key
    for key in ("cardiomegaly", "lung_mass", "consolidation", "pericardial_effusion",
                "thoracic_aortic_dilatation"):
        assert f[key] == "absent", key
    assert f["hiatal_hernia"] == "absent"
    json.dumps(diseased_phantom.truth)  # serialisable


def _lesion(ph: Phantom, kind: str) -> list[dict]:
    return [e for e in ph.truth["lesions"] if e["type"] == kind]


def test_nodules_where_truth_says(diseased_phantom: Phantom) -> None:
    ph = diseased_phantom
    solid, gg = sorted(_lesion(ph, "nodule"), key=lambda e: e["kind"] != "solid")
    assert solid["side"] == "right" and solid["center_lps_mm"][0] < 0
    assert gg["side"] == "left" and gg["center_lps_mm"][0] > 0
    for e, lo, hi in ((solid, -80, 80), (gg, -700, -400)):
        k, j, i = ph.lps_to_index(tuple(e["center_lps_mm"]))
        core = ph.hu[k, j - 1:j + 2, i - 1:i + 2].astype(float)
        assert lo < core.mean() < hi, (e["kind"], core.mean())
    expected = 4.0 / 3.0 * np.pi * 6.0**3 / 1000.0
    assert solid["volume_ml"] == pytest.approx(expected, rel=0.2)


def test_effusion_and_pneumothorax_volumes(diseased_phantom: Phantom) -> None:
    ph = diseased_phantom
    m = ph.truth["measurements"]
    assert m["pleural_effusion_ml"]["left"] == pytest.approx(300.0, rel=0.02)
    assert m["pleural_effusion_ml"]["right"] == 0.0
    assert m["pneumothorax_ml"]["right"] == pytest.approx(200.0, rel=0.02)
    fluid = ph.hu[ph.labels == Tissue.PLEURAL_EFFUSION].astype(float)
    assert -10 < np.median(fluid) < 35
    # Effusion is dependent (posterior), pneumothorax non-dependent (anterior).
    eff = _lesion(ph, "pleural_effusion")[0]["center_lps_mm"]
    ptx = _lesion(ph, "pneumothorax")[0]["center_lps_mm"]
    assert eff[1] > ptx[1]


def test_emphysema_laa(diseased_phantom: Phantom, normal_phantom: Phantom) -> None:
    assert normal_phantom.truth["measurements"]["laa950_percent"] < 1.0
    laa = diseased_phantom.truth["measurements"]["laa950_percent"]
    assert 6.0 < laa < 16.0  # 15 % inserted; blur lifts cluster edges (see Emphysema)


def test_calcium_scores_and_bone(diseased_phantom: Phantom, normal_phantom: Phantom) -> None:
    m = diseased_phantom.truth["measurements"]
    assert m["coronary_agatston_like"] > 10
    assert m["aortic_calcium_ml"] > 0
    assert normal_phantom.truth["measurements"]["coronary_agatston_like"] == 0
    assert m["vertebral_trabecular_hu"] == pytest.approx(80.0, abs=15.0)
    cac = _lesion(diseased_phantom, "coronary_calcification")[0]
    k, j, i = diseased_phantom.lps_to_index(tuple(cac["center_lps_mm"]))
    assert diseased_phantom.hu[k - 1:k + 2, j - 1:j + 2, i - 1:i + 2].max() > 130


def test_metal(diseased_phantom: Phantom) -> None:
    ph = diseased_phantom
    metal = _lesion(ph, "metal")[0]
    assert metal["device"] == "port" and metal["center_lps_mm"][0] < 0  # right side
    assert ph.hu[ph.labels == Tissue.METAL].max() > 2000


def test_heart_aorta_and_pericardium_options() -> None:
    ph = generate_phantom(PhantomSpec(
        seed=2, lesions=(Cardiomegaly(0.62), DilatedAorta(50.0), PericardialEffusion(12.0)),
        **TINY))
    m = ph.truth["measurements"]
    assert m["ctr"] == pytest.approx(0.62, abs=0.01)
    assert m["aorta_ascending_diameter_mm"] == 50.0
    assert m["pericardial_effusion_ml"] > 50
    f = ph.truth["findings"]
    assert f["cardiomegaly"] == f["thoracic_aortic_dilatation"] == "present"
    assert f["pericardial_effusion"] == "present"
    normal = generate_phantom(PhantomSpec(seed=2, **TINY))
    assert (ph.labels == Tissue.AORTA).sum() > 1.4 * (normal.labels == Tissue.AORTA).sum()
    assert normal.truth["measurements"]["ctr"] < 0.5
    assert (normal.labels == Tissue.PERICARDIAL_EFFUSION).sum() == 0


def test_mass_is_lung_mass() -> None:
    ph = generate_phantom(PhantomSpec(seed=1, lesions=(Nodule(40.0),), **TINY))
    assert ph.truth["findings"]["lung_mass"] == "present"
    assert ph.truth["findings"]["lung_nodule"] == "absent"


def test_contrast_brightens_blood() -> None:
    plain = generate_phantom(PhantomSpec(seed=4, **TINY))
    enh = generate_phantom(PhantomSpec(seed=4, contrast=True, **TINY))
    assert np.median(enh.hu[enh.labels == Tissue.AORTA]) > 200
    assert np.median(plain.hu[plain.labels == Tissue.AORTA]) < 80


def test_bad_spec_is_refused() -> None:
    with pytest.raises(ValueError, match="matrix"):
        PhantomSpec(matrix=8)
    with pytest.raises(TypeError, match="lesions"):
        PhantomSpec(lesions=("nodule",))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="side"):
        Nodule(10.0, site=__import__("phantom").LungSite("middle"))  # type: ignore[arg-type]
    short = {**TINY, "n_slices": 8}  # 48 mm of chest cannot hold 1.9 l of fluid
    with pytest.raises(PhantomSpecError, match="reduce the volume"):
        generate_phantom(PhantomSpec(seed=1, lesions=(
            __import__("phantom").PleuralEffusion("right", 1900.0),), **short))


def test_more_findings_are_modelled() -> None:
    from phantom import (
        Atelectasis,
        Bronchiectasis,
        FibroticSequela,
        HiatalHernia,
        Lymphadenopathy,
        MosaicAttenuation,
        PeribronchialThickening,
        SeptalThickening,
    )

    spec = dict(matrix=96, fov_mm=360.0, slice_spacing_mm=4.0, noise_sigma_hu=10.0)
    ph = generate_phantom(PhantomSpec(seed=3, lesions=(
        Atelectasis("right", 150.0), Lymphadenopathy(("7", "4r"), 18.0), HiatalHernia(55.0),
        MosaicAttenuation(0.3), SeptalThickening(), FibroticSequela(cyst_mm=10.0), Bronchiectasis(),
        PeribronchialThickening()), **spec))
    normal = generate_phantom(PhantomSpec(seed=3, **spec))
    f = ph.truth["findings"]
    for key in ("atelectasis", "lymphadenopathy", "hiatal_hernia", "mosaic_attenuation_pattern",
                "interlobular_septal_thickening", "pulmonary_fibrotic_sequela", "bronchiectasis",
                "peribronchial_thickening"):
        assert f[key] == "present", key
        assert normal.truth["findings"][key] == "absent", key
    by = {e["type"]: e for e in ph.truth["lesions"]}
    assert by["atelectasis"]["volume_ml"] == pytest.approx(150.0, rel=0.03)
    atel = ph.hu[ph.labels == Tissue.ATELECTASIS].astype(float)
    assert 20 < np.median(atel) < 70
    # Enlarged nodes are much bigger than the normal (4-7 mm) ones.
    assert (ph.labels == Tissue.LYMPH_NODE).sum() > 3 * (normal.labels == Tissue.LYMPH_NODE).sum()
    assert by["hiatal_hernia"]["gas_ml"] > 0
    assert (ph.labels == Tissue.HIATAL_HERNIA).any()
    low = ph.hu[ph.labels == Tissue.MOSAIC_LOW].astype(float)
    assert np.median(low) < -900  # 90 HU below normal parenchyma (~ -850)
    cysts = ph.hu[ph.labels == Tissue.HONEYCOMB_CYST].astype(float)
    walls = ph.hu[ph.labels == Tissue.FIBROSIS].astype(float)
    assert np.median(cysts) < np.median(walls) - 100  # 10 mm cysts on 3.75 mm voxels
    assert (ph.labels == Tissue.SEPTAL_LINE).any()
    assert by["bronchiectasis"]["dilated_segments"] > 0
    wall = (ph.labels == Tissue.AIRWAY_WALL).sum()
    assert wall > 1.5 * (normal.labels == Tissue.AIRWAY_WALL).sum()


def test_patient_off_centre_and_partial_coverage() -> None:
    centred = generate_phantom(PhantomSpec(seed=8, **TINY))
    moved = generate_phantom(PhantomSpec(seed=8, body_offset_mm=(40.0, -20.0), **TINY))

    def lung_x(ph: Phantom) -> float:
        _, _, i = np.nonzero(ph.labels == Tissue.LUNG)
        return float(ph.origin[0] + i.mean() * ph.spacing[0])

    assert lung_x(moved) - lung_x(centred) == pytest.approx(40.0, abs=6.0)
    table_rows = [np.nonzero((p.labels == Tissue.TABLE).any(axis=(0, 2)))[0].min()
                  for p in (centred, moved)]
    assert table_rows[0] != table_rows[1]  # the table follows the patient's back
    short = generate_phantom(PhantomSpec(seed=8, n_slices=10, z_offset_mm=-60.0, **TINY))
    assert short.shape[0] == 10
    assert (short.labels == Tissue.LUNG).any()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_normal_phantom_has_no_findings(seed: int) -> None:
    ph = generate_phantom(PhantomSpec(seed=seed, **TINY))
    assert set(ph.truth["findings"].values()) == {"absent"}
    assert ph.truth["lesions"] == []

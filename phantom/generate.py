"""``generate_phantom``: labels → HU → lesions → scanner blur and correlated noise → truth.

Random streams are split by purpose (anatomy, each lesion, noise) from the
seed, so adding a lesion does not move the anatomy or the other lesions.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np
from scipy import ndimage

from inference.analyzer.calcium import calcium_kvp_factor, iodine_kvp_factor
from phantom._raster import Grid
from phantom.anatomy import AnatomyOptions, Landmarks, build_anatomy
from phantom.lesions import ANATOMY_LESIONS, INSERTERS, ORDER, Scene, lesion_options_truth
from phantom.patterns import insert_fibrosis, insert_mosaic, insert_septal
from phantom.truth import SCHEMA, findings_map, landmarks_to_json, measure, spec_to_json
from phantom.types import (
    ArmsPosition,
    Bronchiectasis,
    Cardiomegaly,
    ContrastPhase,
    DilatedAorta,
    FibroticSequela,
    LowBoneDensity,
    MosaicAttenuation,
    PeribronchialThickening,
    PericardialEffusion,
    Phantom,
    PhantomSpec,
    SeptalThickening,
    Side,
    Tissue,
)

logger = logging.getLogger(__name__)

# Typical unenhanced / arterial-phase attenuation (HU) of each label.
_HU_PLAIN: dict[Tissue, float] = {
    Tissue.AIR: -1000.0, Tissue.TABLE: 200.0, Tissue.FAT: -100.0, Tissue.MUSCLE: 45.0,
    Tissue.BONE_CORTEX: 700.0, Tissue.VERTEBRAL_TRABECULAR: 200.0, Tissue.BONE_MARROW: 250.0,
    Tissue.CARTILAGE: 120.0, Tissue.DISC: 85.0, Tissue.SPINAL_CANAL: 25.0,
    Tissue.LUNG: -850.0, Tissue.LUNG_VESSEL: 40.0, Tissue.AIRWAY_LUMEN: -1000.0,
    Tissue.AIRWAY_WALL: 30.0, Tissue.MEDIASTINAL_FAT: -95.0, Tissue.MYOCARDIUM: 45.0,
    Tissue.BLOOD: 40.0, Tissue.AORTA: 40.0, Tissue.PULMONARY_ARTERY: 40.0,
    Tissue.PERICARDIUM: 30.0, Tissue.ESOPHAGUS: 40.0, Tissue.LIVER: 58.0, Tissue.SPLEEN: 48.0,
    Tissue.STOMACH: 25.0, Tissue.BOWEL_GAS: -950.0, Tissue.SOFT_TISSUE: 30.0,
    Tissue.PERICARDIAL_EFFUSION: 15.0, Tissue.LYMPH_NODE: 40.0,
    Tissue.SVC: 40.0, Tissue.IVC: 40.0, Tissue.PORTAL_VEIN: 40.0, Tissue.ORAL_CONTRAST: 25.0,
}
# Enhanced attenuation at 120 kVp by phase. Typical values from the time-attenuation
# curves of aorta, liver and portal vein reviewed by Bae KT, "Intravenous contrast medium
# administration and scan timing at CT", Radiology 2010;256:32-61: CT-angiography timing
# puts the aorta near 300 HU (>= 250 HU is the usual diagnostic target) while the liver has
# barely started to enhance and the injected arm's brachiocephalic vein and SVC still hold
# dense, little-diluted contrast (here 2200 HU, above the 2000 HU some metal rules use,
# as on real CTAs); at the portal venous phase (~70 s) aorta, heart, portal vein and IVC
# equilibrate near 150-180 HU and the liver reaches ~100-110 HU (>= 50 HU over baseline).
_HU_ARTERIAL: dict[Tissue, float] = {
    Tissue.LUNG_VESSEL: 280.0, Tissue.MYOCARDIUM: 110.0, Tissue.BLOOD: 300.0,
    Tissue.AORTA: 320.0, Tissue.PULMONARY_ARTERY: 260.0, Tissue.LIVER: 70.0,
    Tissue.SPLEEN: 120.0, Tissue.SOFT_TISSUE: 50.0, Tissue.ESOPHAGUS: 50.0,
    Tissue.LYMPH_NODE: 60.0, Tissue.SVC: 2200.0, Tissue.IVC: 70.0, Tissue.PORTAL_VEIN: 110.0,
}
_HU_VENOUS: dict[Tissue, float] = {
    Tissue.LUNG_VESSEL: 160.0, Tissue.MYOCARDIUM: 100.0, Tissue.BLOOD: 160.0,
    Tissue.AORTA: 165.0, Tissue.PULMONARY_ARTERY: 160.0, Tissue.LIVER: 105.0,
    Tissue.SPLEEN: 115.0, Tissue.SOFT_TISSUE: 60.0, Tissue.ESOPHAGUS: 60.0,
    Tissue.LYMPH_NODE: 70.0, Tissue.SVC: 150.0, Tissue.IVC: 150.0, Tissue.PORTAL_VEIN: 175.0,
}
_HU_PHASE: dict[ContrastPhase, dict[Tissue, float]] = {
    ContrastPhase.ARTERIAL: _HU_ARTERIAL, ContrastPhase.VENOUS: _HU_VENOUS,
}
# Tissues whose attenuation is calcium (hydroxyapatite) or fat, for the kVp scaling.
_CALCIUM_TISSUES = (Tissue.BONE_CORTEX, Tissue.VERTEBRAL_TRABECULAR, Tissue.BONE_MARROW)
_FAT_TISSUES = (Tissue.FAT, Tissue.MEDIASTINAL_FAT)


def kvp_factors(kvp: float) -> tuple[float, float, float]:
    """(iodine, calcium, fat) CT-number factors at ``kvp`` relative to 120 kVp.

    Iodine and fat: straight-line fits to the polyenergetic CT numbers of an iodinated
    contrast agent (682 / 506 / 329 HU) and oil (-135 / -119 / -104 HU) at 100 / 120 / 140
    kVp in "The influence of effective energy on CT number depends on tissue
    characteristics in monoenergetic cardiac imaging", Radiol Res Pract 2012:150980
    (Table 1), extrapolated below 100 kVp (iodine x1.70 at 80 kVp, in line with the usual
    ~1.7x gain quoted for 80 kVp CTA). Calcium: hydroxyapatite reads 1/0.88 higher at
    100 kVp and 1/0.63 at 70 kVp (the down-scaling factors of Zhou, Zhang et al. 2021,
    "Coronary artery calcium scoring at lower tube voltages - dose determination and
    scoring mechanism", a two-phantom dual-source CT study), linear in kVp in between and
    extrapolated above 120 kVp with the 100-120 kVp slope. Water and soft tissue stay.
    """
    fat = 1.0 - 0.00653 * (kvp - 120.0)
    # The same published factors the analyzer corrects with (one source of truth).
    return iodine_kvp_factor(kvp), calcium_kvp_factor(kvp), fat
_INSERTERS: dict[type, Any] = {
    **INSERTERS, MosaicAttenuation: insert_mosaic, SeptalThickening: insert_septal,
    FibroticSequela: insert_fibrosis,
}
_PSF_SIGMA_MM = 0.5  # in-plane point spread of a standard kernel (FWHM ~1.2 mm)
_SLAB = 16
_HU_MIN, _HU_MAX = -1024, 32767


def _anatomy_options(spec: PhantomSpec) -> AnatomyOptions:
    kw: dict[str, Any] = {}
    for lesion in spec.lesions:
        if isinstance(lesion, Cardiomegaly):
            kw["ctr"] = lesion.ctr
        elif isinstance(lesion, DilatedAorta):
            kw["ascending_diameter_mm"] = lesion.ascending_diameter_mm
            kw["descending_diameter_mm"] = lesion.descending_diameter_mm
        elif isinstance(lesion, PericardialEffusion):
            kw["pericardial_effusion_mm"] = lesion.thickness_mm
        elif isinstance(lesion, LowBoneDensity):
            kw["trabecular_hu"] = lesion.trabecular_hu
        elif isinstance(lesion, Bronchiectasis):
            kw["bronchiectasis"] = (*kw.get("bronchiectasis", ()), lesion)
        elif isinstance(lesion, PeribronchialThickening):
            kw["bronchial_wall_factor"] = lesion.wall_factor
    # A child (body_scale < 1) is built in adult millimetres and shrunk afterwards, so the
    # sizes asked for in real millimetres are divided by the scale here.
    s = spec.body_scale
    for key in ("ascending_diameter_mm", "descending_diameter_mm", "pericardial_effusion_mm"):
        if kw.get(key) is not None:
            kw[key] = kw[key] / s
    if spec.fat_mm is not None:
        kw["fat_mm"] = spec.fat_mm / s
    return AnatomyOptions(**kw, scoliosis_deg=spec.scoliosis_deg,
                          right_arch=spec.aortic_arch is Side.RIGHT,
                          arms_down=spec.arms is ArmsPosition.DOWN, length_scale=s)


def compose_hu(grid: Grid, labels: np.ndarray, lm: Landmarks, contrast: bool | ContrastPhase,
               rng: np.random.Generator, kvp: float = 120.0,
               oral_contrast_hu: float | None = None) -> np.ndarray:
    """Float HU from labels; lung parenchyma with a gravity gradient and partial-volume trees.

    ``contrast`` is the phase (``True`` = arterial); enhancement, calcium and fat follow
    ``kvp`` (``kvp_factors``).
    """
    if contrast is True:
        phase = ContrastPhase.ARTERIAL
    elif contrast is False:
        phase = ContrastPhase.NON_CONTRAST
    else:
        phase = ContrastPhase(contrast)
    f_iodine, f_calcium, f_fat = kvp_factors(kvp)
    table = np.full(256, -1000.0, dtype=np.float32)
    for tissue, v in _HU_PLAIN.items():
        table[tissue] = v
    for tissue, v in _HU_PHASE.get(phase, {}).items():
        table[tissue] = _HU_PLAIN[tissue] + (v - _HU_PLAIN[tissue]) * f_iodine
    if oral_contrast_hu is not None:
        table[Tissue.ORAL_CONTRAST] = oral_contrast_hu * f_iodine
    for tissue in _CALCIUM_TISSUES:
        table[tissue] *= f_calcium
    for tissue in _FAT_TISSUES:
        table[tissue] *= f_fat
    table[Tissue.VERTEBRAL_TRABECULAR] = lm.trabecular_hu * f_calcium
    hu = table[labels]
    blood = table[Tissue.LUNG_VESSEL]
    wall_hu = np.float32(20.0)
    assert lm.lung_region is not None and lm.vessel_fraction is not None
    assert lm.airway_wall_fraction is not None and lm.airway_lumen_fraction is not None
    ys = grid.y[:, None] - np.float32(lm.center_xy[1])
    for k in np.nonzero(lm.lung_region.any(axis=(1, 2)))[0]:
        region = lm.lung_region[k]
        b = np.float32(lm.half_depth(lm.u(float(grid.z[k]))))
        base = np.float32(-862.0) + np.float32(25.0) * np.clip(ys / b, -1.0, 1.0)
        base = np.broadcast_to(base, region.shape)
        fw = lm.airway_wall_fraction[k].astype(np.float32) / 255.0
        fl = lm.airway_lumen_fraction[k].astype(np.float32) / 255.0
        fv = lm.vessel_fraction[k].astype(np.float32) / 255.0
        v = base + (wall_hu - base) * fw
        v = v + (np.float32(-1000.0) - v) * fl
        v = v + (blood - v) * fv * (1.0 - fl)
        hu[k][region] = v[region]
    trab = labels == Tissue.VERTEBRAL_TRABECULAR
    hu[trab] += rng.normal(0.0, 25.0, int(trab.sum())).astype(np.float32)
    return hu


def _psf_sigma(pixel_mm: float) -> tuple[float, float, float]:
    """In-plane blur in pixels: the scanner's PSF plus averaging over the pixel (box, 1/12)."""
    sigma = math.sqrt(1.0 / 12.0 + (_PSF_SIGMA_MM / pixel_mm) ** 2)
    return (0.0, sigma, sigma)


def _noise_gain(sigma: tuple[float, float, float]) -> float:
    """Factor that makes white noise, after the scanner blur, have unit standard deviation."""
    delta = np.zeros((1, 15, 15), dtype=np.float64)
    delta[0, 7, 7] = 1.0
    k = ndimage.gaussian_filter(delta, sigma, mode="constant")
    return float(1.0 / np.sqrt(np.sum(k**2)))


def _scanner(hu: np.ndarray, sigma: float, pixel_mm: float,
             rng: np.random.Generator) -> np.ndarray:
    """Blur by the scanner's in-plane point spread and add noise correlated by the same kernel.

    Works in slabs of slices to stay in cache and keep memory flat on 512 x 512 x 300.
    """
    psf = _psf_sigma(pixel_mm)
    out = np.empty(hu.shape, dtype=np.int16)
    gain = np.float32(sigma * _noise_gain(psf))
    for k0 in range(0, hu.shape[0], _SLAB):
        blk = hu[k0:k0 + _SLAB]
        if sigma > 0:
            noise = rng.standard_normal(blk.shape, dtype=np.float32)
            noise *= gain
            blk += noise
        f = ndimage.gaussian_filter(blk, psf, mode="nearest", output=np.float32)
        np.clip(f, _HU_MIN, _HU_MAX, out=f)
        np.rint(f, out=f)
        out[k0:k0 + _SLAB] = f
    return out


def generate_phantom(spec: PhantomSpec) -> Phantom:
    """A synthetic chest CT with every lesion of ``spec`` and its ground truth."""
    t0 = time.perf_counter()
    shape = (spec.num_slices, spec.matrix, spec.matrix)
    spacing = (spec.pixel_mm, spec.pixel_mm, spec.slice_spacing_mm)
    rng_anat = np.random.default_rng([spec.seed, 1])
    s = spec.body_scale
    # Build in the anatomy's own (adult) millimetres, then shrink every length by s: the
    # labels keep their shape, the grid and landmarks get the real millimetres.
    grid, labels, lm = build_anatomy(
        shape, tuple(v / s for v in spacing),  # type: ignore[arg-type]
        (spec.body_offset_mm[0] / s, spec.body_offset_mm[1] / s), spec.z_offset_mm / s,
        _anatomy_options(spec), rng_anat)
    if s != 1.0:
        grid = Grid(shape, spacing, (grid.origin[0] * s, grid.origin[1] * s,
                                     grid.origin[2] * s))
        lm.rescale(s)
    if spec.oral_contrast_hu is not None:
        labels[labels == Tissue.STOMACH] = Tissue.ORAL_CONTRAST
    t_anat = time.perf_counter()
    hu = compose_hu(grid, labels, lm, spec.contrast_phase or spec.contrast,
                    np.random.default_rng([spec.seed, 2]), spec.kvp, spec.oral_contrast_hu)
    scene = Scene(grid, labels, hu, lm, spec.contrast, calcium_factor=kvp_factors(spec.kvp)[1])
    entries: list[dict[str, Any] | None] = [None] * len(spec.lesions)
    order = sorted(
        (i for i, les in enumerate(spec.lesions) if type(les) in _INSERTERS),
        key=lambda i: ORDER.index(type(spec.lesions[i])),
    )
    for i in order:
        lesion = spec.lesions[i]
        entries[i] = _INSERTERS[type(lesion)](scene, lesion,
                                              np.random.default_rng([spec.seed, 100 + i]))
    for i, lesion in enumerate(spec.lesions):
        if isinstance(lesion, ANATOMY_LESIONS):
            entries[i] = lesion_options_truth(lesion, scene)
    t_les = time.perf_counter()
    final = _scanner(hu, spec.noise_sigma_hu, spec.pixel_mm,
                     np.random.default_rng([spec.seed, 3]))
    del hu, scene
    t_noise = time.perf_counter()
    done = [e for e in entries if e is not None]
    meas = measure(final, labels, grid, lm, done)
    for e in done:
        e.pop("_mask", None)
    truth: dict[str, Any] = {
        "schema": SCHEMA,
        "spec": spec_to_json(spec),
        "geometry": {
            "shape_zyx": list(shape),
            "spacing_xyz_mm": list(spacing),
            "origin_lps_mm": [round(float(v), 4) for v in grid.origin],
            "image_orientation_patient": [1, 0, 0, 0, 1, 0],
            "z_range_mm": [round(float(grid.z[0]), 3), round(float(grid.z[-1]), 3)],
            "patient_position": "HFS",
        },
        "lesions": done,
        "findings": findings_map(done, meas),
        "measurements": meas,
        "anatomy": landmarks_to_json(lm),
        "tissue_labels": {t.name.lower(): int(t) for t in Tissue},
    }
    t1 = time.perf_counter()
    logger.info(
        "phantom seed=%d shape=%s lesions=%d: anatomy %.2fs, lesions %.2fs, noise %.2fs, "
        "truth %.2fs", spec.seed, shape, len(done), t_anat - t0, t_les - t_anat,
        t_noise - t_les, t1 - t_noise,
    )
    lm.vessel_fraction = lm.airway_wall_fraction = lm.airway_lumen_fraction = None
    return Phantom(hu=final, labels=labels, spacing=spacing,
                   origin=(float(grid.origin[0]), float(grid.origin[1]), float(grid.origin[2])),
                   spec=spec, truth=truth)

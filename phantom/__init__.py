"""Synthetic chest CT phantom with known ground truth, written as a real DICOM study.

Other packages' tests use it::

    from phantom import Nodule, PleuralEffusion, write_small_study
    study = write_small_study(tmp_path, [Nodule(12.0), PleuralEffusion("left", 300.0)])
    study.series_named("thin").paths        # 2.5 mm axial CT Image Storage files
    json.loads(study.truth_path.read_text())  # findings (22 keys), lesions, measurements

``generate_phantom(PhantomSpec(...))`` gives the volume (``hu`` int16 [z, y, x],
``labels`` as ``Tissue``, LPS ``origin``/``spacing``) and ``truth``;
``write_dicom_study`` writes any of ``DEFAULT_SERIES`` / ``CLINICAL_SERIES`` or
your own ``SeriesSpec`` list in any ``SUPPORTED_TRANSFER_SYNTAXES``.
Lesions can also be named as text (``lesion_from_text("nodule:diameter_mm=14")``)
and drawn at random for evaluation cohorts (``random_lesions(rng)``).
"""


from phantom.dicom_writer import (
    CLINICAL_SERIES,
    DEFAULT_SERIES,
    SUPPORTED_TRANSFER_SYNTAXES,
    localizer_image,
    read_hu,
    resolve_transfer_syntax,
    write_dicom_study,
)
from phantom.errors import PhantomError, PhantomSpecError, PhantomWriteError
from phantom.generate import generate_phantom
from phantom.presets import lesion_from_text, lesions_from_text, random_lesions
from phantom.quick import small_spec, write_small_study
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
    PatientInfo,
    PeribronchialThickening,
    PericardialEffusion,
    Phantom,
    PhantomSpec,
    PleuralEffusion,
    Pneumothorax,
    SeptalThickening,
    SeriesKind,
    SeriesSpec,
    Side,
    Tissue,
    WrittenSeries,
    WrittenStudy,
)

__all__ = [
    "CLINICAL_SERIES", "DEFAULT_SERIES", "SUPPORTED_TRANSFER_SYNTAXES", "AorticCalcification",
    "AorticSegment", "Atelectasis", "Bronchiectasis", "Cardiomegaly", "Consolidation",
    "CoronaryArtery", "CoronaryCalcification", "DilatedAorta", "Distribution", "Emphysema",
    "FibroticSequela", "GroundGlass", "HiatalHernia", "Lesion", "LowBoneDensity", "LungSite",
    "LymphStation", "Lymphadenopathy", "Metal", "MetalKind", "MosaicAttenuation", "Nodule",
    "NoduleKind", "PatientInfo", "PeribronchialThickening", "PericardialEffusion", "Phantom",
    "PhantomError", "PhantomSpec", "PhantomSpecError", "PhantomWriteError", "PleuralEffusion",
    "Pneumothorax", "SeptalThickening", "SeriesKind", "SeriesSpec", "Side", "Tissue",
    "WrittenSeries", "WrittenStudy", "generate_phantom", "lesion_from_text", "lesions_from_text",
    "localizer_image", "random_lesions", "read_hu", "resolve_transfer_syntax", "small_spec",
    "write_dicom_study", "write_small_study",
]

"""What the node accepts: the storage SOP classes a CT study brings, in any transfer syntax.

A CT study holds more than axial images: localizers (CT Image Storage with
ImageType LOCALIZER), enhanced and legacy-converted multi-frame CT, dose
reports (X-Ray Radiation Dose SR, PS3.16 TID 10011), secondary captures of
dose screens, key objects, presentation states, raw data. They are all
accepted and spooled so a sender never sees a failed study; series
selection ignores what is not an image series.
"""

from __future__ import annotations

from pydicom import uid as sc
from pynetdicom import ALL_TRANSFER_SYNTAXES

CT_STUDY_STORAGE_CLASSES: tuple[str, ...] = (
    sc.CTImageStorage,
    sc.EnhancedCTImageStorage,
    sc.LegacyConvertedEnhancedCTImageStorage,
    sc.SecondaryCaptureImageStorage,
    sc.MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
    sc.MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    sc.MultiFrameSingleBitSecondaryCaptureImageStorage,
    sc.MultiFrameTrueColorSecondaryCaptureImageStorage,
    sc.XRayRadiationDoseSRStorage,
    sc.EnhancedXRayRadiationDoseSRStorage,
    sc.PatientRadiationDoseSRStorage,
    sc.BasicTextSRStorage,
    sc.EnhancedSRStorage,
    sc.ComprehensiveSRStorage,
    sc.Comprehensive3DSRStorage,
    sc.ExtensibleSRStorage,
    sc.KeyObjectSelectionDocumentStorage,
    sc.GrayscaleSoftcopyPresentationStateStorage,
    sc.SegmentationStorage,
    sc.SpatialRegistrationStorage,
    sc.EncapsulatedPDFStorage,
    sc.RawDataStorage,
    sc.CTPerformedProcedureProtocolStorage,
)

#: Every transfer syntax pynetdicom knows: instances are stored as received,
#: decoding (JPEG, JPEG-LS, JPEG 2000, RLE, deflate) happens in series_selector.
ACCEPTED_TRANSFER_SYNTAXES: tuple[str, ...] = tuple(ALL_TRANSFER_SYNTAXES)

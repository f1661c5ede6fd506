"""The CT-RATE label set (18 findings) and its place in our 22-finding vocabulary.

CT-CLIP, its ClassFine head and fVLM score the 18 abnormalities of CT-RATE
(Hamamci et al., 2024) under the names of the dataset's label columns, in this
order (the order of the published evaluation scripts and of ClassFine's 18
outputs). Our vocabulary keeps those 18 as its first 18 keys and adds 4
critical extras no CT-RATE model was trained for; those stay unassessed (None)
in these models' outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from inference.findings import FINDING_KEYS, FINDINGS

CTRATE_NAMES: tuple[str, ...] = (
    "Medical material", "Arterial wall calcification", "Cardiomegaly", "Pericardial effusion",
    "Coronary artery wall calcification", "Hiatal hernia", "Lymphadenopathy", "Emphysema",
    "Atelectasis", "Lung nodule", "Lung opacity", "Pulmonary fibrotic sequela",
    "Pleural effusion", "Mosaic attenuation pattern", "Peribronchial thickening",
    "Consolidation", "Bronchiectasis", "Interlobular septal thickening",
)
"""CT-RATE's 18 label names in the published order."""

CTRATE_TO_KEY: Mapping[str, str] = MappingProxyType(
    {name: next(k for k in FINDING_KEYS if FINDINGS[k].display_name == name)
     for name in CTRATE_NAMES})
"""CT-RATE label name -> our finding key (the display names are the CT-RATE names)."""

CTRATE_KEYS: tuple[str, ...] = tuple(CTRATE_TO_KEY[n] for n in CTRATE_NAMES)
"""Our keys of the 18 CT-RATE findings, in CT-RATE order."""

NOT_IN_CTRATE: tuple[str, ...] = tuple(k for k in FINDING_KEYS if k not in CTRATE_KEYS)
"""The critical extras (pneumothorax, lung mass, aortic dilatation, low bone density)."""

NOT_IN_CTRATE_NOTE = "not among the 18 CT-RATE findings this model was trained on"

"""Reader of PASCAL VOC box annotations as the TCIA Lung-PET-CT-Dx collection ships them.

One XML file per annotated slice, named ``<SOPInstanceUID>.xml``, each with one
or more ``object`` (``name`` = class: A adenocarcinoma, B small cell, E large
cell, G squamous cell carcinoma; ``bndbox`` xmin/ymin/xmax/ymax in pixels)
(Li et al., Lung-PET-CT-Dx, TCIA 2020, doi:10.7937/TCIA.2020.NNC20461).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from evaluation.errors import AnnotationError
from evaluation.types import BoxMark


def read_voc_file(path: Path) -> tuple[BoxMark, ...]:
    """The boxes of one VOC file; the slice is named by the file's stem."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise AnnotationError(f"{path.name}: not well-formed XML ({exc})") from None
    if root.tag != "annotation":
        raise AnnotationError(f"{path.name}: not a PASCAL VOC annotation (root {root.tag})")
    boxes = []
    for obj in root.findall("object"):
        bb = obj.find("bndbox")
        if bb is None:
            continue
        try:
            xmin, ymin, xmax, ymax = (int(float(bb.findtext(k, ""))) for k in
                                      ("xmin", "ymin", "xmax", "ymax"))
        except ValueError:
            raise AnnotationError(f"{path.name}: bndbox values are not numbers") from None
        boxes.append(BoxMark(path.stem, (obj.findtext("name") or "").strip(),
                             xmin, ymin, xmax, ymax))
    return tuple(boxes)


def read_voc_dir(folder: Path) -> tuple[BoxMark, ...]:
    """Every box of every ``*.xml`` in ``folder`` (sorted by file name, for determinism)."""
    out: list[BoxMark] = []
    for path in sorted(folder.glob("*.xml")):
        out.extend(read_voc_file(path))
    return tuple(out)

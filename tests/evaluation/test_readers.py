"""LIDC-IDRI XML and Lung-PET-CT-Dx VOC readers, and the lesion truths built from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evaluation.errors import AnnotationError
from evaluation.lidc import is_lidc_xml, read_lidc_xml
from evaluation.truths import SliceGeometry, box_truths, lidc_truths, point_marks_lps
from evaluation.voc import read_voc_dir, read_voc_file
from tests.conftest import shared_case

NS = 'xmlns="http://www.nih.gov"'


def _roi(uid: str, z: float, pts: list[tuple[int, int]], inclusion: str = "TRUE") -> str:
    edges = "".join(f"<edgeMap><xCoord>{x}</xCoord><yCoord>{y}</yCoord></edgeMap>"
                    for x, y in pts)
    return (f"<roi><imageZposition>{z}</imageZposition><imageSOP_UID>{uid}</imageSOP_UID>"
            f"<inclusion>{inclusion}</inclusion>{edges}</roi>")


def _square(x0: int, y0: int, side: int) -> list[tuple[int, int]]:
    """The boundary pixels of a square, in order around it."""
    top = [(x, y0) for x in range(x0, x0 + side)]
    right = [(x0 + side, y) for y in range(y0, y0 + side)]
    bottom = [(x, y0 + side) for x in range(x0 + side, x0, -1)]
    left = [(x0, y) for y in range(y0 + side, y0, -1)]
    return top + right + bottom + left


def _session(reader: str, body: str) -> str:
    return (f"<readingSession><servicingRadiologistID>{reader}</servicingRadiologistID>"
            f"{body}</readingSession>")


def _nodule(nid: str, rois: str, malignancy: int | None = 4) -> str:
    ch = "" if malignancy is None else (
        f"<characteristics><subtlety>5</subtlety><malignancy>{malignancy}</malignancy>"
        "</characteristics>")
    return f"<unblindedReadNodule><noduleID>{nid}</noduleID>{ch}{rois}</unblindedReadNodule>"


@pytest.fixture
def geoms() -> dict[str, SliceGeometry]:
    """Three axial slices, 1 mm pixels, 2 mm apart, origin (-100, -100)."""
    return {f"1.2.{k}": SliceGeometry(np.array([-100.0, -100.0, 2.0 * k]),
                                      np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]),
                                      (1.0, 1.0)) for k in range(3)}


@pytest.fixture
def lidc_file(tmp_path: Path) -> Path:
    """Reader A and B outline the same 20-pixel square nodule, C a far 10-pixel one;
    A marks a small nodule, B a non-nodule; B's outline has a hole."""
    a = _session("A", _nodule("n1", _roi("1.2.0", 0.0, _square(50, 50, 20))
                              + _roi("1.2.1", 2.0, _square(52, 52, 16)))
                 + _nodule("s1", _roi("1.2.2", 4.0, [(150, 150)]), malignancy=None))
    b = _session("B", _nodule("m7", _roi("1.2.1", 2.0, _square(51, 51, 18))
                              + _roi("1.2.1", 2.0, _square(58, 58, 4), "FALSE"), 5)
                 + "<nonNodule><nonNoduleID>x</nonNoduleID><imageZposition>2.0</imageZposition>"
                 "<imageSOP_UID>1.2.1</imageSOP_UID><locus><xCoord>10</xCoord>"
                 "<yCoord>20</yCoord></locus></nonNodule>")
    c = _session("C", _nodule("q", _roi("1.2.2", 4.0, _square(150, 20, 10)), 2))
    path = tmp_path / "001.xml"
    path.write_text(f'<?xml version="1.0"?><LidcReadMessage {NS}><ResponseHeader>'
                    "<SeriesInstanceUid>9.9</SeriesInstanceUid></ResponseHeader>"
                    f"{a}{b}{c}</LidcReadMessage>", encoding="utf-8")
    return path


def test_lidc_reader_separates_outlines_points_and_characteristics(lidc_file: Path) -> None:
    reading = read_lidc_xml(lidc_file)
    assert reading.series_uid == "9.9" and reading.readers == ("A", "B", "C")
    assert sorted(n.nodule_id for n in reading.nodules) == ["m7", "n1", "q"]
    kinds = sorted((p.kind, p.reader, p.column, p.row) for p in reading.points)
    assert kinds == [("non_nodule", "B", 10, 20), ("small_nodule", "A", 150, 150)]
    m7 = next(n for n in reading.nodules if n.nodule_id == "m7")
    assert [o.inclusion for o in m7.outlines] == [True, False]
    assert m7.characteristic("malignancy") == 5 and m7.characteristic("texture") is None
    assert is_lidc_xml(lidc_file)


def test_lidc_truths_merge_by_radii_and_measure_longest_chord(
        lidc_file: Path, geoms: dict[str, SliceGeometry]) -> None:
    reading = read_lidc_xml(lidc_file)
    truths = lidc_truths(reading.nodules, geoms)
    assert [t.n_readers for t in truths] == [2, 1]
    big, small = truths
    # A's longest chord: the 20-pixel square's diagonal (1 mm pixels); B's: 18-pixel one.
    assert big.reader_diameters_mm == pytest.approx((20 * 2 ** 0.5, 18 * 2 ** 0.5))
    assert big.diameter_mm == pytest.approx(19 * 2 ** 0.5)
    # Centres of the squares: pixel 60 -> -40 mm in both x and y.
    assert big.centre_lps[:2] == pytest.approx((-40.0, -40.0), abs=0.6)
    assert big.malignancy == pytest.approx(4.5)
    assert small.centre_lps == pytest.approx((55.0, -75.0, 4.0), abs=0.6)
    marks = point_marks_lps(reading.points, geoms)
    assert sorted(marks) == [(-90.0, -80.0, 2.0), (50.0, 50.0, 4.0)]


def test_a_mark_on_a_missing_slice_is_an_error(lidc_file: Path,
                                               geoms: dict[str, SliceGeometry]) -> None:
    reading = read_lidc_xml(lidc_file)
    del geoms["1.2.0"]
    with pytest.raises(AnnotationError, match="not in the series"):
        lidc_truths(reading.nodules, geoms)


def test_not_lidc_xml_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "x.xml"
    p.write_text("<annotation/>", encoding="utf-8")
    assert not is_lidc_xml(p)
    with pytest.raises(AnnotationError):
        read_lidc_xml(p)


def test_voc_boxes_on_neighbouring_slices_are_one_lesion(
        tmp_path: Path, geoms: dict[str, SliceGeometry]) -> None:
    for k, (x0, x1) in enumerate([(40, 70), (42, 80), (45, 60)]):
        (tmp_path / f"1.2.{k}.xml").write_text(
            f"<annotation><object><name>A</name><bndbox><xmin>{x0}</xmin><ymin>40</ymin>"
            f"<xmax>{x1}</xmax><ymax>60</ymax></bndbox></object></annotation>",
            encoding="utf-8")
    boxes = read_voc_dir(tmp_path)
    assert [b.sop_uid for b in boxes] == ["1.2.0", "1.2.1", "1.2.2"]
    (lesion,) = box_truths(boxes, geoms)
    assert lesion.diameter_mm == pytest.approx(38.0)  # the widest box's larger side
    assert lesion.extent_min_lps[2] == 0.0 and lesion.extent_max_lps[2] == 4.0
    bad = tmp_path / "bad.xml"
    bad.write_text("<annotation><object><bndbox><xmin>a</xmin></bndbox></object></annotation>",
                   encoding="utf-8")
    with pytest.raises(AnnotationError):
        read_voc_file(bad)


@pytest.mark.real_data
def test_real_lidc_files_give_consensus_lesions() -> None:
    """LIDC-IDRI 0001 and 0003 as parsed: the lesions all four readers outlined."""
    from evaluation.real import case_truth, discover_cases
    from series_selector import index_path

    root = shared_case("lidc_idri_0001").parent
    cases = {c.name: c for c in discover_cases(root)}
    assert {"lidc_idri_0001", "lidc_idri_0003", "lungpetctdx_A0001"} <= set(cases)
    t1 = case_truth(cases["lidc_idri_0001"], index_path(cases["lidc_idri_0001"].root))
    four = [t for t in t1.lesions if t.n_readers == 4]
    assert len(four) == 1 and four[0].diameter_mm >= 30.0  # a mass by the readers' sizes
    assert len(t1.irrelevant_lps) > 0  # the small-nodule and non-nodule marks
    t3 = case_truth(cases["lidc_idri_0003"], index_path(cases["lidc_idri_0003"].root))
    sizes = sorted(t.diameter_mm for t in t3.lesions if t.n_readers == 4)
    assert len(sizes) == 3 and sizes[-1] >= 30.0 and sizes[0] < 20.0
    box = case_truth(cases["lungpetctdx_A0001"], index_path(cases["lungpetctdx_A0001"].root))
    (tumour,) = box.lesions  # the boxes of consecutive slices make one tumour
    assert tumour.extent_max_lps[2] - tumour.extent_min_lps[2] >= 2 * tumour.slice_spacing_mm
    assert tumour.extent_min_lps[2] <= tumour.centre_lps[2] <= tumour.extent_max_lps[2]

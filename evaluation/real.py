"""The analyzer on labelled real cases: every folder with readers' marks under a root.

A case is a folder holding an LIDC-IDRI reading file (``*.xml`` with root
``LidcReadMessage``) beside its DICOM series, or a folder with an
``annotations/`` folder of PASCAL VOC boxes (Lung-PET-CT-Dx) beside one or
more series of the annotated acquisition. The series the pipeline would pick
(``series_selector.select_series``) is the scan that counts; the other
accepted reconstructions of the same acquisition are analysed too and shown
apart (kernel and thickness change what the analyzer sees), not counted twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ctnode.settings import AnalyzerSettings, SelectionSettings
from evaluation.errors import EvaluationError
from evaluation.lidc import is_lidc_xml, read_lidc_xml
from evaluation.matching import hits
from evaluation.truths import (
    box_truths,
    lidc_truths,
    point_marks_lps,
    slice_geometries,
)
from evaluation.types import CaseTruth, Detection, LesionOutcome, LesionTruth, RealCaseResult
from evaluation.voc import read_voc_dir
from inference.analyzer import analyze, map_findings
from inference.analyzer.nodules import extended_lungs, find_lesions
from inference.analyzer.types import Analysis
from series_selector import index_path, load_volume, select_series
from series_selector.errors import SelectionError
from series_selector.types import DicomIndex, HUVolume, SelectionReport

Analyser = Callable[[HUVolume, AnalyzerSettings], Analysis]
"""The analyzer entry point, ``analyze`` unless a caller caches it."""

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LabelledCase:
    """A folder with readers' marks and the series they refer to."""

    name: str
    root: Path
    kind: str  # "lidc" | "voc"
    marks: Path  # the LIDC XML file or the VOC folder


def discover_cases(root: Path) -> tuple[LabelledCase, ...]:
    """Every labelled case at or below ``root`` (two levels deep), sorted by name."""
    found: dict[Path, LabelledCase] = {}
    folders = [root, *sorted(p for p in root.iterdir() if p.is_dir())] if root.is_dir() else []
    for folder in folders:
        ann = folder / "annotations"
        if ann.is_dir() and any(ann.glob("*.xml")):
            found[folder] = LabelledCase(folder.name, folder, "voc", ann)
            continue
        for xml in sorted(folder.glob("*.xml")):
            if is_lidc_xml(xml):
                found[folder] = LabelledCase(folder.name, folder, "lidc", xml)
                break
    return tuple(sorted(found.values(), key=lambda c: c.name))


def case_truth(case: LabelledCase, index: DicomIndex) -> CaseTruth:
    """The case's reference lesions, from its marks and the slices' own geometry."""
    geoms = slice_geometries(index)
    if case.kind == "lidc":
        reading = read_lidc_xml(case.marks)
        return CaseTruth(case.name, str(case.root), lidc_truths(reading.nodules, geoms),
                         point_marks_lps(reading.points, geoms), len(reading.readers), "lidc")
    boxes = read_voc_dir(case.marks)
    return CaseTruth(case.name, str(case.root), box_truths(boxes, geoms), (), 1, "voc")


def detections_of(analysis: Analysis, settings: AnalyzerSettings) -> tuple[Detection, ...]:
    """Every lesion candidate of an analysis in patient space (re-run of the nodule stage).

    ``find_lesions`` is deterministic, so this is the same list ``analyze``
    scored; the analysis keeps only the measures of its best candidates.
    """
    grid, anatomy = analysis.grid, analysis.anatomy
    ext = extended_lungs(anatomy, grid.spacing_zyx)
    out = []
    for les in find_lesions(grid, anatomy, settings, ext):
        if les.score <= 0.0:
            continue
        out.append(Detection(grid.to_lps(*les.centre), float(les.score),
                             float(les.long_axis_mm), float(les.short_axis_mm)))
    return tuple(out)


def _series_dirs(case: LabelledCase) -> tuple[Path, ...]:
    """Each DICOM series folder of a case (one per reconstruction)."""
    subs = sorted(p for p in case.root.iterdir() if p.is_dir() and p.name != "annotations")
    return tuple(subs) or (case.root,)


def run_real_case(case: LabelledCase, settings: AnalyzerSettings, selection: SelectionSettings,
                  alternates: bool = True, analyse: Analyser = analyze) -> list[RealCaseResult]:
    """The selected series first, then (``alternates``) the other accepted reconstructions."""
    index = index_path(case.root)
    truth = case_truth(case, index)
    results: list[RealCaseResult] = []
    chosen = _chosen_uid(index, selection)
    for folder in _series_dirs(case):
        sub_index = index_path(folder)
        try:
            report = select_series(sub_index, selection)
            volume = load_volume(sub_index, report)
        except (SelectionError, EvaluationError) as exc:
            logger.info("%s/%s: no analysable series (%s)", case.name, folder.name, exc)
            continue
        primary = report.chosen_series_uid == chosen
        if primary or alternates:
            results.append(_analyse(case, truth, volume, report, settings, primary, analyse))
    results.sort(key=lambda r: (not r.notes.get("primary") == "yes", r.name))
    return results


def _chosen_uid(index: DicomIndex, selection: SelectionSettings) -> str | None:
    try:
        return select_series(index, selection).chosen_series_uid
    except SelectionError:
        return None


def _analyse(case: LabelledCase, truth: CaseTruth, volume: HUVolume, report: SelectionReport,
             settings: AnalyzerSettings, primary: bool, analyse: Analyser) -> RealCaseResult:
    chosen = report.chosen
    kernel = chosen.convolution_kernel if chosen else ""
    thick = chosen.slice_thickness_mm if chosen else None
    name = case.name if primary else f"{case.name} ({kernel or 'other'} kernel)"
    t0 = time.perf_counter()
    try:
        analysis = analyse(volume, settings)
    except Exception as exc:  # noqa: BLE001 - a failed case is counted, not dropped
        logger.warning("%s: analysis failed: %s", name, exc)
        return RealCaseResult(name, volume.series_uid, kernel, thick, truth, (),
                              tuple(LesionOutcome(t, None) for t in truth.lesions), {},
                              {"primary": "yes" if primary else "no"},
                              seconds=time.perf_counter() - t0, error=str(exc))
    findings = map_findings(analysis, settings)
    detections = detections_of(analysis, settings)
    outcomes = tuple(LesionOutcome(t, _best_hit(t, detections)) for t in truth.lesions)
    notes = {f.key: f.note for f in findings if f.probability is None}
    notes["primary"] = "yes" if primary else "no"
    return RealCaseResult(
        name, volume.series_uid, kernel, thick, truth, detections, outcomes,
        {f.key: f.probability for f in findings}, notes,
        analysis.conditions.to_json(), time.perf_counter() - t0)


def _best_hit(truth: LesionTruth, detections: Sequence[Detection]) -> Detection | None:
    on = [d for d in detections if hits(d, truth)]
    return max(on, key=lambda d: d.score) if on else None


def evaluate_real(root: Path, settings: AnalyzerSettings, selection: SelectionSettings,
                  alternates: bool = True, analyse: Analyser = analyze) -> list[RealCaseResult]:
    """Every labelled case under ``root``; EvaluationError when there is none.

    ``analyse`` is the analyzer entry point (a caching wrapper in the tests)."""
    cases = discover_cases(root)
    if not cases:
        raise EvaluationError(f"no labelled case (LIDC XML or VOC annotations) under {root}")
    out: list[RealCaseResult] = []
    for case in cases:
        logger.info("real case %s (%s)", case.name, case.kind)
        out.extend(run_real_case(case, settings, selection, alternates, analyse))
    return out

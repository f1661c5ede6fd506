"""select_series: index -> stacks -> rules -> ranking -> SelectionReport.

Every stack gets a decision with all rule results; the report's explanation is
one sentence a PACS administrator can act on, naming the chosen series and why
each other one lost or was rejected.
"""

from __future__ import annotations

import logging

from ctnode.settings import SelectionSettings
from series_selector import anatomy
from series_selector.errors import VolumeError
from series_selector.geometry import stack_geometry
from series_selector.grouping import Stack, ensure_single_study, group_stacks
from series_selector.pixels import decode_slices
from series_selector.ranking import Candidate, rank, why_preferred
from series_selector.rules import GATE_RULES, StackFacts, apply_rules
from series_selector.types import (
    DicomIndex,
    RuleResult,
    SelectionReport,
    SeriesDecision,
    Verdict,
    is_stand_in_uid,
)

logger = logging.getLogger(__name__)

_EXPLAIN_ONLY_SAMPLES = 8  # slices examined for lungs in a stack rejected on other grounds


def build_facts(index: DicomIndex, settings: SelectionSettings) -> list[StackFacts]:
    """Every stack of the index with its geometry (shared with ``load_volume``)."""
    return [
        StackFacts(stack, stack_geometry(stack, settings.spacing_gap_factor,
                                         settings.spacing_tolerance))
        for stack in group_stacks(index)
    ]


def select_series(index: DicomIndex, settings: SelectionSettings) -> SelectionReport:
    """Decide which series of a single study to analyse.

    Raises ``NoDicomError`` (no instances) and ``MultipleStudiesError``; when no
    series qualifies the report is returned with ``chosen_series_uid`` None and
    an explanation saying why each one failed.
    """
    study_uid = ensure_single_study(index)
    all_results: list[tuple[StackFacts, list[RuleResult]]] = []
    for facts in build_facts(index, settings):
        results = apply_rules(facts, settings)
        if all(r.verdict is not Verdict.FAIL for r in results[: len(GATE_RULES)]):
            already_failed = any(r.verdict is Verdict.FAIL for r in results)
            results.append(_anatomy_rule(facts, settings, explain_only=already_failed))
        all_results.append((facts, results))
    accepted = [Candidate(f, tuple(r)) for f, r in all_results
                if all(x.verdict is not Verdict.FAIL for x in r)]
    ranked = rank(accepted, settings)
    decisions = _decisions(all_results, ranked, settings)
    chosen = ranked[0] if ranked else None
    explanation = _explain(decisions, ranked, settings)
    n_files = len(index.instances) + len(index.unreadable) + index.dicomdir_files
    report = SelectionReport(
        study_uid="" if is_stand_in_uid(study_uid) else study_uid,
        series=tuple(decisions),
        chosen_series_uid=chosen.facts.stack.series_uid if chosen else None,
        chosen_stack_id=chosen.facts.stack.stack_id if chosen else "",
        n_files=n_files,
        n_unreadable=len(index.unreadable),
        unreadable_reasons=tuple(sorted({u.reason for u in index.unreadable}))[:20],
        explanation=explanation,
    )
    logger.info("study %s: chose series %s (%d stacks, %d accepted)", study_uid,
                report.chosen_series_uid, len(decisions), len(ranked))
    return report


def _anatomy_rule(facts: StackFacts, settings: SelectionSettings,
                  explain_only: bool = False) -> RuleResult:
    """Lung-field check on a few decoded slices; decoding failure is itself a reason.

    A stack already rejected by a header rule is still checked, because "no lung
    fields" is often the real reason a user needs; fewer slices suffice for that.
    """
    g = facts.geometry
    if g is None:
        return RuleResult(anatomy.RULE, Verdict.FAIL, "no_geometry",
                          "cannot be checked for lung fields without slice positions")
    ordered = g.sorted_slices(facts.stack)
    k = settings.anatomy_sample_slices
    idx = anatomy.sample_indices(len(ordered), min(k, _EXPLAIN_ONLY_SAMPLES) if explain_only else k)
    try:
        decoded = decode_slices([ordered[i] for i in idx])
    except VolumeError as exc:
        return RuleResult("decodable", Verdict.FAIL, "undecodable", f"cannot be decoded: {exc}")
    spacing = ordered[0].pixel_spacing or (1.0, 1.0)
    result = anatomy.judge(
        anatomy.survey([d.hu for d in decoded], [float(g.distances[i]) for i in idx],
                       (spacing[0], spacing[1]), g.coverage_mm, settings,
                       cranial_sign=1 if float(g.normal[2]) >= 0 else -1),
        settings,
    )
    return result


def _name(series_number: int | None, description: str, series_uid: str, stack_id: str) -> str:
    """How people name a series: "series 3 'Chest 1.0' (stack2)"."""
    if series_number is None and not description:
        head = "series " + ("(no UID)" if is_stand_in_uid(series_uid) else series_uid)
    else:
        head = "series" if series_number is None else f"series {series_number}"
    desc = f" '{description}'" if description else ""
    part = f" ({stack_id})" if stack_id else ""
    return f"{head}{desc}{part}"


def _label(stack: Stack) -> str:
    first = stack.first
    return _name(first.series_number, first.series_description, stack.series_uid, stack.stack_id)


def _decisions(all_results: list[tuple[StackFacts, list[RuleResult]]], ranked: list[Candidate],
               settings: SelectionSettings) -> list[SeriesDecision]:
    order = {id(c.facts): i + 1 for i, c in enumerate(ranked)}
    decisions = []
    for facts, results in all_results:
        rank_no = order.get(id(facts))
        results = list(results)
        if rank_no is not None and rank_no > 1:
            winner = ranked[0]
            results.append(RuleResult(
                "preference", Verdict.PASS, "not_preferred",
                f"usable, ranked {rank_no}: {_label(winner.facts.stack)} preferred because "
                f"{why_preferred(winner, ranked[rank_no - 1], settings)}"))
        elif rank_no == 1 and len(ranked) > 1:
            results.append(RuleResult(
                "preference", Verdict.PASS, "preferred",
                f"chosen over {len(ranked) - 1} other usable stack(s): "
                f"{why_preferred(ranked[0], ranked[1], settings)}"))
        first = facts.stack.first
        decisions.append(SeriesDecision(
            series_uid=facts.stack.series_uid,
            description=first.series_description,
            n_instances=facts.stack.n_instances,
            modality=first.modality,
            slice_thickness_mm=facts.thickness_mm,
            coverage_mm=facts.coverage_mm,
            convolution_kernel=first.convolution_kernel,
            accepted=rank_no is not None,
            results=tuple(results),
            rank=rank_no,
            series_number=first.series_number,
            stack_id=facts.stack.stack_id,
            n_slices=facts.n_slices,
        ))
    return decisions


def _joined(phrases: list[str]) -> str:
    if len(phrases) <= 1:
        return "".join(phrases)
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def _explain(decisions: list[SeriesDecision], ranked: list[Candidate],
             settings: SelectionSettings) -> str:
    rejected = []
    for d in decisions:
        if d.accepted:
            continue
        fails = [r.reason for r in d.results if r.verdict is Verdict.FAIL]
        rejected.append(f"{_describe(d)} {_joined(fails)}")
    if not ranked:
        return "No usable series: " + "; ".join(rejected) + "."
    chosen = ranked[0]
    c = chosen.facts
    warn = [r.reason for r in chosen.results if r.verdict is Verdict.WARN]
    text = (f"Chose {_label(c.stack)} (kernel {c.stack.first.convolution_kernel or '?'}, "
            f"{_num(c.thickness_mm)} mm slices, {c.n_slices} slices, "
            f"{c.coverage_mm or 0:.0f} mm coverage)")
    if warn:
        text += "; note: it " + _joined(warn)
    text += "."
    others = [f"{_cap(_label(o.facts.stack))} is usable but {_label(c.stack)} was preferred "
              f"because {why_preferred(chosen, o, settings)}" for o in ranked[1:]]
    if others:
        text += " " + "; ".join(others) + "."
    if rejected:
        text += " Rejected: " + "; ".join(rejected) + "."
    return text


def _describe(d: SeriesDecision) -> str:
    return _name(d.series_number, d.description, d.series_uid, d.stack_id)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _num(v: float | None) -> str:
    return "?" if v is None else f"{v:g}"

"""The constants table of the analyzer: every module-level constant, its value, its source.

``python -m evaluation.constants`` prints the Markdown table kept in
``docs/models.md``. A constant's source is the docstring right below it, or
the comment on its line, or, for a group of constants written one after the
other, the docstring below the last of the group; settings thresholds are
taken from ``AnalyzerSettings`` with their field description and the sources
``mapping``'s module doc gives. A constant without a source is listed as
"(no source stated)" so that a test can refuse it.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

ANALYZER = Path(__file__).resolve().parents[1] / "inference" / "analyzer"
NO_SOURCE = "(no source stated)"
SKIP_MODULES = ("__init__.py", "types.py", "evaluation.py")


@dataclass(frozen=True, slots=True)
class Constant:
    module: str
    name: str
    value: str
    source: str


def _first_sentences(text: str, limit: int = 400) -> str:
    flat = re.sub(r"\s+", " ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 3].rsplit(" ", 1)[0] + "..."


def _numeric(value: ast.expr) -> bool:
    """A number or a tuple of numbers (names of things and rule tables are not constants)."""
    try:
        v = ast.literal_eval(value)
    except ValueError:
        return False
    if isinstance(v, tuple):
        return bool(v) and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v)
    return isinstance(v, int | float) and not isinstance(v, bool)


def module_constants(path: Path) -> list[Constant]:
    """UPPER_CASE module-level assignments of one module, with their sources."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    tree = ast.parse(text)
    body = tree.body
    out: list[Constant] = []
    pending: list[tuple[str, str, str]] = []
    for i, node in enumerate(body):
        target = None
        if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                and isinstance(node.targets[0], ast.Name):
            target, value = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) \
                and node.value is not None:
            target, value = node.target.id, node.value
        if target is None or not re.fullmatch(r"[A-Z][A-Z0-9_]*", target) \
                or not _numeric(value):
            if pending:
                out.extend(Constant(path.stem, n, v, c or NO_SOURCE) for n, v, c in pending)
                pending = []
            continue
        seg = ast.get_source_segment(text, value) or ""
        if len(seg) > 60:
            seg = "(table, see module)"
        line = lines[node.lineno - 1]
        comment = line.split("#", 1)[1].strip() if "#" in line and "noqa" not in line else ""
        pending.append((target, seg, comment))
        nxt = body[i + 1] if i + 1 < len(body) else None
        if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) \
                and isinstance(nxt.value.value, str):
            doc = _first_sentences(nxt.value.value)
            out.extend(Constant(path.stem, n, v, c or doc) for n, v, c in pending)
            pending = []
    out.extend(Constant(path.stem, n, v, c or NO_SOURCE) for n, v, c in pending)
    return out


def analyzer_constants() -> list[Constant]:
    """Every analyzer module's constants, module by module."""
    out: list[Constant] = []
    for path in sorted(ANALYZER.glob("*.py")):
        if path.name not in SKIP_MODULES:
            out.extend(module_constants(path))
    return out


SETTINGS_SOURCES = {
    "emphysema_laa950_pct": "Gevenois et al., AJRCCM 1996; upper limit of normal in "
    "never-smokers ~5-6 %, Mets et al., Eur Radiol 2012; COPDGene uses >= 5 %",
    "opacity_ml": "phantom physics: twice the volume of the 12 mm ball a ground-glass "
    "region must hold (parenchyma.GGO_CORE_RADIUS_MM, GGO_MIN_ML; mapping module doc)",
    "consolidation_ml": "a ~27 mm sphere, segmental scale: smaller dense foci are read as "
    "nodules (Hansell et al., Fleischner glossary 2008; mapping module doc)",
    "nodule_min_mm": "Fleischner 2017 (Bankier et al.): smallest size reported",
    "mass_min_mm": "Fleischner glossary (Hansell et al., Radiology 2008): a mass is > 3 cm",
    "effusion_ml": "CT shows effusions from ~10 ml; mapping module doc",
    "pneumothorax_ml": "a 2 mm rim over one lung's anterior surface is ~10-20 ml",
    "ascending_aorta_mm": "Hiratzka et al., ACC/AHA 2010 thoracic aortic disease guideline",
    "descending_aorta_mm": "Hiratzka et al., ACC/AHA 2010 thoracic aortic disease guideline",
    "vertebral_hu": "Pickhardt et al., Ann Intern Med 2013 (L1 trabecular HU)",
    "cardiothoracic_ratio": "Danzer's ratio (chest radiograph); see heart.py for the CT measure",
    "lung_threshold_hu": "Hu et al., IEEE TMI 2001",
}


def settings_constants() -> list[Constant]:
    """The analyzer thresholds a site may change (``AnalyzerSettings``)."""
    from ctnode.settings import AnalyzerSettings

    out = []
    for name, f in AnalyzerSettings.model_fields.items():
        src = "; ".join(x for x in (f.description, SETTINGS_SOURCES.get(name, "")) if x)
        out.append(Constant("settings", name, repr(f.default), src or NO_SOURCE))
    return out


def table() -> str:
    """The Markdown table of ``docs/models.md``."""
    rows = ["| module | constant | value | source |", "|---|---|---|---|"]
    for c in [*settings_constants(), *analyzer_constants()]:
        src = c.source.replace("|", "/")
        rows.append(f"| {c.module} | `{c.name}` | `{c.value}` | {src} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())

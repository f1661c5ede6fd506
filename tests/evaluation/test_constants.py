"""Every analyzer constant is in the constants table of docs/models.md, with a source."""

from __future__ import annotations

from pathlib import Path

from evaluation.constants import NO_SOURCE, analyzer_constants, settings_constants

DOCS = Path(__file__).resolve().parents[2] / "docs" / "models.md"


def test_lung_and_lesion_constants_state_their_source() -> None:
    mine = [c for c in analyzer_constants() if c.module in ("nodules", "parenchyma", "mapping")]
    assert len(mine) >= 15
    assert [c.name for c in mine if c.source == NO_SOURCE] == []
    assert all(len(c.source) > 20 for c in mine)


def test_the_docs_table_lists_every_constant() -> None:
    """Regenerate with ``python -m evaluation.constants`` when a constant changes."""
    text = DOCS.read_text(encoding="utf-8")
    missing = [f"{c.module}.{c.name}" for c in [*settings_constants(), *analyzer_constants()]
               if f"| {c.module} | `{c.name}` | `{c.value}` |" not in text]
    assert missing == []


def test_every_analyzer_constant_states_its_source() -> None:
    """Issue 13: no constant without a source (literature, phantom physics or a stated fit)."""
    assert [f"{c.module}.{c.name}" for c in analyzer_constants() if c.source == NO_SOURCE] == []

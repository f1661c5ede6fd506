"""Pixels of the Secondary Capture: key axial slices with evidence, and a summary panel.

Everything is drawn at a fixed 512-pixel width (readable on a PACS tile) in RGB
with a TrueType font. Key slices keep the source's in-plane geometry (no flip):
the side markers are computed from the volume's direction cosines, so they are
right whatever the orientation of the source. The functions are pure (same input,
same pixels), so tests can re-render and compare with what was stored.
"""

from __future__ import annotations

import logging
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from inference.findings import FINDINGS
from inference.types import Evidence, FindingResult, StudyResult
from series_selector.types import HUVolume
from sr_writer import codes
from sr_writer.content import rounded
from sr_writer.errors import OutputError
from sr_writer.geometry import mask_on_key_slice
from sr_writer.plan import NotAssessed, ReportedLesion, ReportPlan, image_conditions_text

logger = logging.getLogger(__name__)

WIDTH = 512
IMAGE_HEIGHT = 512
CAPTION_HEIGHT = 136
HEIGHT = IMAGE_HEIGHT + CAPTION_HEIGHT

_LUNG_WINDOW = (-600.0, 1500.0)  # centre, width (HU): the usual lung window
_SOFT_TISSUE_WINDOW = (40.0, 400.0)  # mediastinal window
_OUTLINE = (255, 215, 0)  # yellow: evidence outline
_SCALE_BAR_MM = (10, 20, 50, 100)  # the longest that fits in a fifth of the image width
_TEXT = (235, 235, 235)
_WARN = (255, 170, 60)
_GOOD = (120, 220, 120)
_MUTED = (170, 170, 170)
_BACKGROUND = (16, 20, 28)

_LETTERS = {(0, 1): "L", (0, -1): "R", (1, 1): "P", (1, -1): "A", (2, 1): "H", (2, -1): "F"}


@dataclass(frozen=True, slots=True)
class Fonts:
    """The fonts used for SC text, and whether they are the real TrueType ones."""

    regular: ImageFont.FreeTypeFont | ImageFont.ImageFont
    bold: ImageFont.FreeTypeFont | ImageFont.ImageFont
    small: ImageFont.FreeTypeFont | ImageFont.ImageFont
    title: ImageFont.FreeTypeFont | ImageFont.ImageFont
    truetype: bool


def load_fonts(font_dir: Path) -> Fonts:
    """DejaVu Sans from ``font_dir``; PIL's built-in font (with a warning) if it is missing."""
    regular, bold = font_dir / "DejaVuSans.ttf", font_dir / "DejaVuSans-Bold.ttf"
    if regular.is_file() and bold.is_file():
        return Fonts(
            regular=ImageFont.truetype(str(regular), 16),
            bold=ImageFont.truetype(str(bold), 17),
            small=ImageFont.truetype(str(regular), 13),
            title=ImageFont.truetype(str(bold), 22),
            truetype=True,
        )
    logger.warning("DejaVu fonts not found in %s (install fonts-dejavu-core): "
                   "Secondary Capture text uses PIL's built-in font", font_dir)
    return Fonts(
        regular=ImageFont.load_default(16), bold=ImageFont.load_default(17),
        small=ImageFont.load_default(13), title=ImageFont.load_default(22), truetype=False,
    )


def orientation_letter(vector: Sequence[float] | np.ndarray) -> str:
    """The patient direction (L/R/A/P/H/F) an LPS vector points to most."""
    v = np.asarray(vector, dtype=float)
    axis = int(np.argmax(np.abs(v)))
    return _LETTERS[(axis, 1 if v[axis] >= 0 else -1)]


def image_orientation(volume: HUVolume) -> tuple[str, str]:
    """PatientOrientation (0020,0020) of an axial slice: row then column direction."""
    d = np.asarray(volume.direction, dtype=float).reshape(3, 3)
    return orientation_letter(d[:, 0]), orientation_letter(d[:, 1])


def lps_to_index(volume: HUVolume, point: Sequence[float]) -> tuple[float, float, float]:
    """Continuous voxel index (z, y, x) of an LPS point: the inverse of ``index_to_lps``."""
    d = np.asarray(volume.direction, dtype=float).reshape(3, 3)
    ijk = np.linalg.solve(d, np.asarray(point, dtype=float) - np.asarray(volume.origin))
    ijk = ijk / np.asarray(volume.spacing, dtype=float)
    return float(ijk[2]), float(ijk[1]), float(ijk[0])


def _window(slice_hu: np.ndarray, centre: float, width: float) -> np.ndarray:
    lo = centre - width / 2.0
    scaled = (slice_hu.astype(np.float32) - lo) / width * 255.0
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


def _mask_on_slice(evidence: Evidence, shape: tuple[int, int]) -> np.ndarray | None:
    cropped = mask_on_key_slice(evidence)
    if cropped is None:
        return None
    mask, y0, x0 = cropped
    full = np.zeros(shape, dtype=bool)
    full[y0:y0 + mask.shape[0], x0:x0 + mask.shape[1]] = mask
    return full if full.any() else None


@dataclass(frozen=True, slots=True)
class _Fit:
    """How a slice maps into the 512 x 512 image area (aspect kept, centred)."""

    scale_x: float  # output pixels per input column
    scale_y: float
    off_x: int
    off_y: int
    width: int
    height: int


def _fit(volume: HUVolume) -> _Fit:
    _, rows, cols = volume.shape
    sx, sy, _ = volume.spacing
    mm_per_px = max(cols * sx, rows * sy) / WIDTH
    width = max(1, round(cols * sx / mm_per_px))
    height = max(1, round(rows * sy / mm_per_px))
    return _Fit(width / cols, height / rows, (WIDTH - width) // 2,
                (IMAGE_HEIGHT - height) // 2, width, height)


def _probability_text(p: float | None) -> str:
    return "not assessed" if p is None else f"p = {p:.2f}"


def _evidence_text(evidence: Evidence) -> str:
    parts = []
    if evidence.diameter_mm is not None:
        parts.append(f"{rounded(evidence.diameter_mm, 'mm'):g} mm")
    if evidence.volume_ml is not None:
        parts.append(f"{rounded(evidence.volume_ml, 'ml'):g} ml")
    return ", ".join(parts)


def _arrow(draw: ImageDraw.ImageDraw, tip: tuple[float, float], gap: float) -> None:
    """An arrow from the upper left pointing at ``tip``, stopping ``gap`` pixels short."""
    direction = np.asarray([1.0, 1.0]) / np.sqrt(2.0)
    end = np.asarray(tip) - direction * gap
    start = end - direction * 48
    draw.line((*start, *end), fill=_OUTLINE, width=3)
    left = end - 12 * direction + 6 * np.asarray([direction[1], -direction[0]])
    right = end - 12 * direction - 6 * np.asarray([direction[1], -direction[0]])
    draw.polygon([tuple(end), tuple(left), tuple(right)], fill=_OUTLINE)


def _scale_bar(draw: ImageDraw.ImageDraw, fit: _Fit, mm_per_px: float,
               fonts: Fonts) -> None:
    """A labelled bar of 10, 20, 50 or 100 mm at the bottom left of the image area."""
    length_mm = max((m for m in _SCALE_BAR_MM if m / mm_per_px <= WIDTH / 5),
                    default=_SCALE_BAR_MM[0])
    px = length_mm / mm_per_px
    x0, y = 14, IMAGE_HEIGHT - 18
    draw.line((x0, y, x0 + px, y), fill=_TEXT, width=3)
    for x in (x0, x0 + px):
        draw.line((x, y - 6, x, y + 1), fill=_TEXT, width=2)
    draw.text((x0 + px / 2, y - 8), f"{length_mm} mm", font=fonts.small, fill=_TEXT,
              anchor="md", stroke_width=2, stroke_fill=(0, 0, 0))


def render_key_slice(volume: HUVolume, lesion: ReportedLesion, fonts: Fonts) -> np.ndarray:
    """One key axial slice (512 x 648 RGB): lesion outlined or pointed at, markers, caption.

    The outline is drawn just outside the lesion's mask (its margin stays
    visible); without a mask an arrow points at the centre. A scale bar and
    the side markers stay on the image; the caption wraps, never cuts a number.
    """
    finding, evidence = lesion.finding, lesion.evidence
    z = evidence.slice_index
    if not 0 <= z < volume.shape[0]:
        raise OutputError(f"evidence slice {z} of {finding.key} is outside the volume")
    centre, width = _LUNG_WINDOW if codes.is_lung_finding(finding.key) else _SOFT_TISSUE_WINDOW
    gray = _window(volume.voxels[z], centre, width)
    fit = _fit(volume)
    small = np.asarray(
        Image.fromarray(gray).resize((fit.width, fit.height), Image.Resampling.BILINEAR))
    rgb = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    area = rgb[fit.off_y:fit.off_y + fit.height, fit.off_x:fit.off_x + fit.width]
    area[...] = small[..., None]

    mask = _mask_on_slice(evidence, volume.shape[1:])
    if mask is not None:
        big = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(
            (fit.width, fit.height), Image.Resampling.NEAREST)) > 0
        ring = ndimage.binary_dilation(big, iterations=3) & ~ndimage.binary_dilation(
            big, iterations=1)
        area[ring] = _OUTLINE
    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)

    if mask is None:
        zc, yc, xc = lps_to_index(volume, evidence.center_lps)
        cx = fit.off_x + (xc + 0.5) * fit.scale_x
        cy = fit.off_y + (yc + 0.5) * fit.scale_y
        radius_px = (evidence.diameter_mm or 10.0) / 2.0 / volume.spacing[0] * fit.scale_x
        _arrow(draw, (cx, cy), radius_px + 4)

    row_dir, col_dir = image_orientation(volume)
    opposite = {"L": "R", "R": "L", "A": "P", "P": "A", "H": "F", "F": "H"}
    mid_y = IMAGE_HEIGHT // 2
    for text, xy, anchor in (
        (row_dir, (WIDTH - 8, mid_y), "rm"), (opposite[row_dir], (8, mid_y), "lm"),
        (col_dir, (WIDTH // 2, IMAGE_HEIGHT - 6), "md"), (opposite[col_dir], (WIDTH // 2, 6), "ma"),
    ):
        draw.text(xy, text, font=fonts.title, fill=_WARN, anchor=anchor,
                  stroke_width=2, stroke_fill=(0, 0, 0))
    _scale_bar(draw, fit, float(volume.spacing[0]) / fit.scale_x, fonts)

    z_lps = volume.index_to_lps(z, 0, 0)[2]
    measure = _evidence_text(evidence)
    headline = f"{lesion.label}: {_probability_text(lesion.probability)}" + (
        f", {measure}" if measure else "")
    lines = [(part, fonts.bold, _TEXT) for part in _wrap(headline, fonts.bold, WIDTH - 20)]
    lines += [(part, fonts.regular, _MUTED) for part in _wrap(
        f"Slice {z + 1}/{volume.shape[0]} (z = {z_lps:.1f} mm), "
        f"{'lung' if codes.is_lung_finding(finding.key) else 'soft-tissue'} window",
        fonts.regular, WIDTH - 20)]
    lines.append(("AI result, decision support, not for diagnosis alone.", fonts.regular, _WARN))
    draw.rectangle((0, IMAGE_HEIGHT, WIDTH, HEIGHT), fill=_BACKGROUND)
    y = IMAGE_HEIGHT + 8
    step = (CAPTION_HEIGHT - 12) // max(4, len(lines))
    for text, font, colour in lines:
        draw.text((10, y), text, font=font, fill=colour)
        y += step
    return np.asarray(image, dtype=np.uint8)


def _fit_text(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> str:
    """Shorten a line with an ellipsis when it does not fit (said, not silently cut)."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def _wrap(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
          width: int) -> list[str]:
    out: list[str] = []
    for chars in range(90, 10, -2):
        out = textwrap.wrap(text, chars)
        if all(font.getlength(line) <= width for line in out):
            return out
    return out


_FOOTER_TOP = HEIGHT - 28


def _line_height(font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> int:
    return int(getattr(font, "size", 14)) + 4


class _Panel:
    """A text page drawn top-down; text that does not fit ends in a visible ellipsis."""

    def __init__(self, fonts: Fonts) -> None:
        self.image = Image.new("RGB", (WIDTH, HEIGHT), _BACKGROUND)
        self.draw = ImageDraw.Draw(self.image)
        self.fonts = fonts
        self.y = 14

    def lines_of(self, text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
                 max_lines: int | None = None) -> list[str]:
        parts = _wrap(text, font, WIDTH - 28)
        if max_lines is not None and len(parts) > max_lines:
            parts = parts[:max_lines]
            parts[-1] = _fit_text(parts[-1] + " …", font, WIDTH - 28)
        return parts

    def height_of(self, text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
                  max_lines: int | None = None, gap: int = 6) -> int:
        return len(self.lines_of(text, font, max_lines)) * _line_height(font) + gap

    def line(self, text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
             colour: tuple[int, int, int] = _TEXT, gap: int = 6,
             max_lines: int | None = None) -> None:
        for part in self.lines_of(text, font, max_lines):
            self.draw.text((14, self.y), part, font=font, fill=colour)
            self.y += _line_height(font)
        self.y += gap

    def rule(self) -> None:
        self.draw.line((14, self.y, WIDTH - 14, self.y), fill=_MUTED, width=1)
        self.y += 10

    def footer(self, text: str) -> None:
        self.draw.text((14, HEIGHT - 22), _fit_text(text, self.fonts.small, WIDTH - 28),
                       font=self.fonts.small, fill=_MUTED)

    def pixels(self) -> np.ndarray:
        return np.asarray(self.image, dtype=np.uint8)


def _finding_line(finding: FindingResult, present: bool) -> str:
    """"Lung mass: 0.81 (52.6 mm, 61 ml)": the display name, never an internal key.

    An absent finding shows its probability only: a candidate's size next to
    it would read as a lesion.
    """
    parts = [f"{finding.display_name}: {finding.probability:.2f}"]
    if not present:
        return parts[0]
    details = [_evidence_text(e) for e in finding.evidence[:1] if _evidence_text(e)]
    if not details:
        details = [f"{_plain(m.description or m.name)} "
                   f"{rounded(m.value, m.unit):g}" + ("" if m.unit in ("1", "{count}")
                                                     else f" {_unit(m.unit)}")
                   for m in finding.measurements[:1]]
    if details:
        parts.append(f"({'; '.join(details)})")
    return " ".join(parts)


def _plain(text: str) -> str:
    """A measurement's description without its parenthesised method details."""
    return codes.short_meaning(re.sub(r"\s*\([^)]*\)", "", text)) or codes.short_meaning(text)


def _unit(unit: str) -> str:
    return {"[hnsf'U]": "HU", "{Agatston}": "Agatston"}.get(unit, unit)


def not_assessed_text(entries: Sequence[NotAssessed]) -> str:
    """One line naming every finding not assessed (the SR gives each reason)."""
    return (f"Not assessed ({len(entries)}): "
            + ", ".join(e.display_name for e in entries) + ". Reasons in the SR.")


def render_summary(
    result: StudyResult, plan: ReportPlan, fonts: Fonts, *, software_version: str,
    model_lines: Sequence[str],
) -> np.ndarray:
    """The summary panel (512 x 648 RGB): overall result, findings, models, disclaimer.

    Findings are listed most probable first while they fit; the panel then
    says how many more the SR holds. Long selection and model texts end in an
    ellipsis (the SR has them in full).
    """
    panel = _Panel(fonts)
    models_text = "Models: " + ("; ".join(model_lines) if model_lines else "none reported")
    selection_text = (f"Series: {result.selection.explanation}"
                      if result.selection is not None and result.selection.explanation else "")
    if not result.ok:
        panel.line("ctnode AI: NOT RUN for this study", fonts.title, _WARN)
        panel.line("AI result, decision support, not for diagnosis alone.", fonts.regular, _WARN)
        panel.rule()
        code = f" [{result.error_code}]" if result.error_code else ""
        panel.line(f"Processing failed{code}:", fonts.bold)
        panel.line(result.error or "", fonts.regular, max_lines=6)
        panel.line("No AI result exists for this study: read it without AI support.",
                   fonts.bold, _WARN)
        if selection_text:
            panel.line(selection_text, fonts.small, _MUTED, max_lines=6)
        panel.line(models_text, fonts.small, _MUTED, max_lines=3)
        panel.footer(f"ctnode {software_version}. The failure SR of this study says the same.")
        return panel.pixels()

    panel.line("ctnode AI result: chest CT", fonts.title)
    panel.line("AI result, decision support, not for diagnosis alone.", fonts.regular, _WARN)
    panel.rule()
    if result.probability is not None:
        verdict = {1: "PATHOLOGY SUSPECTED", 0: "no pathology detected"}.get(
            result.decision if result.decision is not None else -1, "no decision")
        colour = _WARN if result.decision == 1 else _GOOD
        panel.line(f"Probability of pathology: {result.probability:.2f}  ({verdict})",
                   fonts.bold, colour)
    else:
        panel.line("Probability of pathology: not available", fonts.bold, _MUTED)
    finding_threshold = plan.threshold
    absent = sorted(plan.absent,
                    key=lambda f: (-(f.probability or 0.0), FINDINGS[f.key].danger_rank))
    assessed = [*plan.present, *absent]
    present = {f.key for f in plan.present}
    panel.line(f"Findings at or above {finding_threshold:.2f}: {len(present)} "
               f"of {len(assessed)} assessed", fonts.regular)

    tail: list[tuple[str, ImageFont.FreeTypeFont | ImageFont.ImageFont,
                     tuple[int, int, int], int | None]] = []
    conditions = image_conditions_text(result)
    if conditions:
        tail.append((conditions, fonts.small, _MUTED, 2))
    if plan.not_assessed:
        tail.append((not_assessed_text(plan.not_assessed), fonts.small, _MUTED, 4))
    tail.append((f"Key images in this series: {len(plan.key_images)}"
                 + (f" ({plan.key_images_left_out} more lesions in the SR)"
                    if plan.key_images_left_out else ""), fonts.small, _MUTED, None))
    bottom = [(selection_text, fonts.small, _MUTED, 4)] if selection_text else []
    bottom.append((models_text, fonts.small, _MUTED, 3))
    reserved = (sum(panel.height_of(t, f, m) for t, f, _, m in tail + bottom) + 10
                + _line_height(fonts.small) + 6)  # rule, and the "... more" line
    shown = 0
    for finding in assessed:
        text = ("\u25cf " if finding.key in present else "\u25cb ") + _finding_line(
            finding, finding.key in present)
        if panel.y + panel.height_of(text, fonts.regular, 2, 0) + reserved > _FOOTER_TOP:
            break
        panel.line(text, fonts.regular, _WARN if finding.key in present else _TEXT, gap=0,
                   max_lines=2)
        shown += 1
    if shown < len(assessed):
        panel.line(f"... and {len(assessed) - shown} more assessed findings (see the SR)",
                   fonts.small, _MUTED, gap=0)
    panel.y += 6
    for text, font, colour, max_lines in tail:
        panel.line(text, font, colour, max_lines=max_lines)
    panel.rule()
    for text, font, colour, max_lines in bottom:
        panel.line(text, font, colour, max_lines=max_lines)
    panel.footer(f"ctnode {software_version}. The full result is in the SR of this study.")
    return panel.pixels()

"""Secondary Capture key images: validator, pixels as rendered, overlay, orientation, fonts."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import CTImageStorage, SecondaryCaptureImageStorage

from ctnode.settings import OutputSettings
from inference.findings import FINDING_KEYS
from inference.types import FindingResult, Measurement, ModelStatus
from sr_writer import render_images, write_result_objects
from sr_writer.render import (
    HEIGHT,
    IMAGE_HEIGHT,
    WIDTH,
    image_orientation,
    load_fonts,
    lps_to_index,
)
from tests.sr_writer.synthetic import (
    NODULE,
    SyntheticStudy,
    failure,
    success_with_lesions,
)
from tests.sr_writer.validators import dciodvfy

YELLOW = np.array([255, 215, 0], dtype=np.uint8)


@pytest.fixture(scope="module")
def written(study: SyntheticStudy, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("sc")
    return list(write_result_objects(success_with_lesions(study), out, OutputSettings()).sc_paths)


def test_sc_objects_validate(written: list[Path]) -> None:
    assert len(written) == 3  # summary + nodule + effusion
    for path in written:
        report = dciodvfy(path)
        assert report.iod == "SCImage"
        assert report.errors == (), (path.name, report.errors)
        assert report.warnings == (), (path.name, report.warnings)


def test_sc_pixels_match_rendering(study: SyntheticStudy, written: list[Path]) -> None:
    expected = render_images(success_with_lesions(study), OutputSettings())
    assert len(expected) == len(written)
    for path, pixels in zip(written, expected, strict=True):
        ds = pydicom.dcmread(path)
        assert ds.PhotometricInterpretation == "RGB" and ds.SamplesPerPixel == 3
        assert (ds.Rows, ds.Columns) == (HEIGHT, WIDTH)
        np.testing.assert_array_equal(ds.pixel_array, pixels)


def test_sc_attributes(study: SyntheticStudy, written: list[Path]) -> None:
    datasets = [pydicom.dcmread(p, stop_before_pixels=True) for p in written]
    assert [int(ds.InstanceNumber) for ds in datasets] == [1, 2, 3]
    assert len({ds.SeriesInstanceUID for ds in datasets}) == 1
    for ds in datasets:
        assert ds.SOPClassUID == SecondaryCaptureImageStorage
        assert ds.BurnedInAnnotation == "YES"
        assert ds.BodyPartExamined == "CHEST"
        assert ds.StudyInstanceUID == study.study_uid
        assert ds.SeriesNumber == OutputSettings().sc_series_number
    summary, nodule, _ = datasets
    assert not summary.PatientOrientation  # a text panel has no anatomy
    assert list(nodule.PatientOrientation) == ["L", "P"]
    source = nodule.SourceImageSequence[0]
    assert source.ReferencedSOPClassUID == CTImageStorage
    assert source.ReferencedSOPInstanceUID == study.volume.slice_sop_instance_uids[NODULE[0]]


def test_evidence_is_drawn_where_the_nodule_is(written: list[Path]) -> None:
    pixels = pydicom.dcmread(written[1]).pixel_array
    scale = WIDTH / 96  # the 96 x 96 phantom fills the 512-pixel image area
    _, yc, xc = NODULE
    cy, cx = (yc + 0.5) * scale, (xc + 0.5) * scale
    yellow = np.all(pixels == YELLOW, axis=-1)
    ys, xs = np.nonzero(yellow[:512])
    assert ys.size > 20
    near = np.hypot(ys - cy, xs - cx) < 30
    # the outline is around the nodule (the only other yellow is none: markers are orange)
    assert near.mean() > 0.95
    centre = pixels[round(cy), round(cx)].astype(int)
    assert centre[0] == centre[1] == centre[2]  # an outline, no fill: the lesion stays grey




def test_key_images_are_limited_and_have_a_scale_bar(study: SyntheticStudy) -> None:
    result = success_with_lesions(study)
    images = render_images(result, OutputSettings(sc_max_key_images=1))
    assert len(images) == 2  # summary + the most probable lesion
    bar = images[1][IMAGE_HEIGHT - 18, 14:60]
    assert (bar == np.array([235, 235, 235], dtype=np.uint8)).all()  # the 20 or 50 mm bar


def test_failure_panel_only(study: SyntheticStudy, tmp_path: Path) -> None:
    written = write_result_objects(failure(study), tmp_path, OutputSettings(),
                                   source_paths=study.paths[:2])
    assert len(written.sc_paths) == 1
    assert dciodvfy(written.sc_paths[0]).errors == ()
    off = write_result_objects(failure(study), tmp_path / "off",
                               OutputSettings(write_failure_sc=False),
                               source_paths=study.paths[:2])
    assert off.sr_path is not None and off.sc_paths == ()


def test_orientation_follows_direction_cosines(study: SyntheticStudy) -> None:
    assert image_orientation(study.volume) == ("L", "P")
    flipped = dataclasses.replace(
        study.volume, direction=(-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0))
    assert image_orientation(flipped) == ("R", "A")
    point = flipped.index_to_lps(5, 10, 20)
    assert lps_to_index(flipped, point) == pytest.approx((5, 10, 20))


def test_fonts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert load_fonts(OutputSettings().font_dir).truetype  # fonts-dejavu-core is installed
    caplog.set_level(logging.WARNING, logger="sr_writer")
    fallback = load_fonts(tmp_path)
    assert not fallback.truetype
    assert any("built-in font" in m for m in caplog.messages)


def test_summary_text_never_runs_into_the_footer(study: SyntheticStudy) -> None:
    """22 assessed findings with long names, long selection text, many models: still fits."""
    base = success_with_lesions(study)
    many = tuple(
        FindingResult(key, 0.99 - i * 0.01,
                      (Measurement("a_rather_long_measurement_name", 123.456, "[hnsf'U]"),))
        for i, key in enumerate(FINDING_KEYS))
    selection = dataclasses.replace(base.selection, explanation="series rejected: " * 60)
    models = tuple(ModelStatus(f"model_{i}", "1.2.3", i % 2 == 0, ()) for i in range(12))
    crowded = dataclasses.replace(base, findings=many, selection=selection, models=models)
    summary = render_images(crowded, OutputSettings())[0]
    band = summary[HEIGHT - 40:HEIGHT - 24]  # between the last text and the footer line
    assert (band == band[0, 0]).all()
    assert (summary[:HEIGHT - 40] != band[0, 0]).any()

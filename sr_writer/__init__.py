"""DICOM outputs of the node: TID 1500 Structured Report, Secondary Capture key images, JSON.

Layers: ``codes`` (vocabulary) -> ``plan`` (what is said: findings, lesions, key
images) / ``geometry`` (2D regions on source images) -> ``content`` (TID parts) /
``render`` (pixels) -> ``report`` (SR) / ``secondary_capture`` (SC) -> ``write`` (files).
Every object is written with highdicom and passes ``dciodvfy`` in the tests.
"""

import logging

from sr_writer.errors import MissingSourceError, OutputError, SourceMismatchError
from sr_writer.readback import read_back, read_back_findings
from sr_writer.report import DISCLAIMER, build_structured_report
from sr_writer.secondary_capture import build_secondary_capture, render_images
from sr_writer.types import LesionReadBack, ReportReadBack, WrittenObjects
from sr_writer.write import write_result_objects

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "DISCLAIMER",
    "LesionReadBack",
    "MissingSourceError",
    "OutputError",
    "ReportReadBack",
    "SourceMismatchError",
    "WrittenObjects",
    "build_secondary_capture",
    "build_structured_report",
    "read_back",
    "read_back_findings",
    "render_images",
    "write_result_objects",
]

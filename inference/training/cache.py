"""The feature cache of the ML loop: every model's output per study, on disk.

Layout (``ctnode features DIR --out CACHE``)::

    CACHE/studies/<study key>/<model>/<feature version>.npz
    CACHE/sources.json      source fingerprint -> study key (skip known inputs fast)

The study key is the Study Instance UID (for a NIfTI file: its name without
suffix). One ``.npz`` per model and feature version holds the model's raw output
before any head: finding probabilities (NaN = not assessed), scalar features,
the embedding, and a JSON ``meta`` (versions, seconds, series UID). Written
atomically, read with ``allow_pickle=False``. Nothing in it identifies the
patient beyond UIDs; source folder names are stored only as a SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inference.findings import get_finding
from inference.types import FindingResult, ModelOutput, ModelStatus

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    """A file-system-safe name for a UID or version (UIDs are digits and dots already)."""
    cleaned = _SAFE.sub("_", text).strip("._")
    if not cleaned:
        raise ValueError(f"{text!r} gives no usable file name")
    return cleaned[:180]


@dataclass(frozen=True, slots=True)
class CachedOutput:
    """One model's cached output for one study."""

    study: str
    model: str
    version: str
    feature_version: str
    output: ModelOutput
    meta: dict[str, Any]


class FeatureCache:
    """Read and write the cache folder (see module doc)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.studies_dir = self.root / "studies"

    def path(self, study: str, model: str, feature_version: str) -> Path:
        return (self.studies_dir / safe_name(study) / safe_name(model)
                / f"{safe_name(feature_version)}.npz")

    def has(self, study: str, model: str, feature_version: str) -> bool:
        return self.path(study, model, feature_version).is_file()

    def save(self, study: str, output: ModelOutput, feature_version: str,
             series_uid: str = "") -> Path:
        """Store one model's raw output, atomically."""
        path = self.path(study, output.model.name, feature_version)
        path.parent.mkdir(parents=True, exist_ok=True)
        names = sorted(output.features)
        meta = {"study": study, "series_uid": series_uid, "model": output.model.name,
                "version": output.model.version, "feature_version": feature_version,
                "model_findings": list(output.model.findings),
                "seconds": output.seconds, "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        arrays = {
            "finding_keys": np.array([f.key for f in output.findings], dtype=str),
            "finding_probs": np.array([math.nan if f.probability is None else f.probability
                                       for f in output.findings], dtype=float),
            "feature_names": np.array(names, dtype=str),
            "feature_values": np.array([output.features[n] for n in names], dtype=float),
            "embedding": (np.zeros(0, np.float32) if output.embedding is None
                          else np.asarray(output.embedding, np.float32)),
            "meta": np.array(json.dumps(meta)),
        }
        tmp = path.with_name(f".{path.stem}.tmp.npz")
        np.savez(tmp, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, path)
        return path

    def load(self, path: Path) -> CachedOutput:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            findings = tuple(
                FindingResult(str(k), None if math.isnan(p) else float(p),
                              note="" if not math.isnan(p) else "not assessed (cached)")
                for k, p in zip(data["finding_keys"], data["finding_probs"], strict=True)
                if _known(str(k)))
            features = {str(n): float(v) for n, v in
                        zip(data["feature_names"], data["feature_values"], strict=True)}
            embedding = np.array(data["embedding"]) if data["embedding"].size else None
        status = ModelStatus(meta["model"], meta["version"], True,
                             tuple(meta.get("model_findings", ())))
        output = ModelOutput(status, findings, features, float(meta.get("seconds", 0.0)),
                             embedding=embedding)
        return CachedOutput(meta["study"], meta["model"], meta["version"],
                            meta["feature_version"], output, meta)

    def get(self, study: str, model: str, feature_version: str) -> CachedOutput | None:
        path = self.path(study, model, feature_version)
        return self.load(path) if path.is_file() else None

    def entries(self) -> Iterator[CachedOutput]:
        """Every cached output, study by study (sorted: deterministic training sets)."""
        if not self.studies_dir.is_dir():
            return
        for path in sorted(self.studies_dir.glob("*/*/*.npz")):
            if not path.name.startswith("."):
                yield self.load(path)

    # -- which input is which study: lets a rerun skip finished inputs without reading them
    def _sources_path(self) -> Path:
        return self.root / "sources.json"

    def sources(self) -> dict[str, str]:
        path = self._sources_path()
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    def remember_source(self, fingerprint: str, study: str) -> None:
        sources = self.sources()
        sources[fingerprint] = study
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self._sources_path().with_name(".sources.json.tmp")
        tmp.write_text(json.dumps(sources, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self._sources_path())


def _known(key: str) -> bool:
    try:
        get_finding(key)
    except (KeyError, ValueError):
        return False
    return True


def source_fingerprint(path: Path) -> str:
    """SHA-256 of an input's resolved path, size and mtime (changes when the input does)."""
    st = path.stat()
    text = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()

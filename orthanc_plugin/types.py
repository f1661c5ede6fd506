"""Types that cross the plugin's border: its configuration and what a stable study holds.

Standard library only: this module is imported inside Orthanc's embedded Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class PluginConfig:
    """The ``CtNode`` section of ``orthanc.json``, parsed once at start-up.

    ``own_manufacturer`` must equal the node's ``output.manufacturer`` setting:
    series carrying it (and not of a trigger modality) are our own SR/SC and
    never start a job. ``startup_sweep_changes``: at start-up, studies named in
    this many most recent Orthanc changes are checked again (0: off), so a
    study whose STABLE_STUDY was lost in a crash is still queued.
    """

    queue_path: Path
    own_manufacturer: str
    trigger_modalities: tuple[str, ...] = ("CT",)
    enabled: bool = True
    startup_sweep_changes: int = 10000

    def __post_init__(self) -> None:
        if not isinstance(self.queue_path, Path):
            raise TypeError("PluginConfig.queue_path must be a pathlib.Path")
        if not self.own_manufacturer:
            raise ValueError("PluginConfig.own_manufacturer must not be empty")
        if not self.trigger_modalities or not all(
            isinstance(m, str) and m for m in self.trigger_modalities
        ):
            raise ValueError("PluginConfig.trigger_modalities must list modality codes")
        if not isinstance(self.startup_sweep_changes, int) or self.startup_sweep_changes < 0:
            raise ValueError("PluginConfig.startup_sweep_changes must be an int >= 0")


@dataclass(frozen=True, slots=True)
class StudyScan:
    """What the plugin learnt about one stable study from Orthanc's index.

    ``content_hash`` covers the instances of the series we analyse (our own
    output excluded), so our results arriving in the study do not change it,
    while instances added later by the modality do.
    ``skip_reason`` is empty when a job should be queued.
    """

    orthanc_study_id: str
    study_uid: str
    n_instances: int
    content_hash: str
    analysed_series: tuple[str, ...]
    own_series: tuple[str, ...]
    skip_reason: str = ""
    instance_ids: tuple[str, ...] = ()

    @property
    def should_enqueue(self) -> bool:
        return not self.skip_reason

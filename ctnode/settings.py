"""The one settings object of the node.

Every tunable lives here, grouped by the package that uses it. Values come from
(highest priority first) environment variables ``CTNODE_<SECTION>__<FIELD>``
(for example ``CTNODE_API__PORT=8080``), a JSON file named by
``CTNODE_CONFIG_FILE``, and the defaults below. Nothing else in the code base
reads ``os.environ``: packages receive the section they need as a parameter.

Thresholds that encode clinical knowledge say where they come from.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class _Section(BaseModel):
    """Base of every settings section: unknown keys and bad assignments are refused."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ApiSettings(_Section):
    """REST API (``api/``) and upload limits."""

    host: str = Field("127.0.0.1", description="Bind address of the REST API.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port of the REST API.")
    api_key: SecretStr | None = Field(
        None,
        description="When set, every request except GET /health and the docs must send it "
        "in the X-API-Key header.",
    )
    max_upload_mb: float = Field(2048.0, gt=0, description="Largest accepted upload (MB).")
    max_concurrent_jobs: int = Field(
        2,
        ge=1,
        description="Studies analysed at the same time; further requests wait. One study "
        "keeps one to two cores busy (analyzer.threads), and its serial stages leave room "
        "for another, so 2 suits a 2-4 core node; give bigger machines about one per two "
        "cores. Each study holds about 1.5 GB (512x512x150) to 3 GB (512x512x300) while "
        "analysed; learned models on the CPU (the astra encoder) use every core alone.",
    )
    max_archive_members: int = Field(20000, gt=0, description="Most files in one ZIP.")
    max_uncompressed_mb: float = Field(
        8192.0, gt=0, description="Largest total uncompressed size of one ZIP (MB)."
    )
    max_compression_ratio: float = Field(
        200.0,
        gt=1,
        description="Largest uncompressed/compressed ratio of one ZIP member; above it the "
        "upload is treated as a ZIP bomb. CT pixel data compresses about 2-10x; "
        "uniform padding up to ~50x.",
    )
    # issue 15 (hardening): admission and body limits, checked before the body is read.
    max_waiting_requests: int = Field(
        4,
        ge=0,
        description="Predict requests admitted beyond the max_concurrent_jobs being analysed "
        "(they upload, then wait their turn). Further requests are answered at once with 503 "
        "and Retry-After instead of queueing without bound: the last waiting request waits "
        "about (1 + max_waiting_requests / max_concurrent_jobs) times one study's processing "
        "time.",
    )
    body_read_timeout_s: float = Field(
        30.0,
        gt=0,
        description="Longest wait for the next part of a request body; a client that sends "
        "nothing for this long gets 408 and its connection is closed.",
    )


class SelectionSettings(_Section):
    """Series selection thresholds (``series_selector/``)."""

    max_slice_thickness_mm: float = Field(
        5.0,
        gt=0,
        description="Series thicker than this are rejected: at more than 5 mm, partial volume "
        "hides nodules under about 5-6 mm and blurs lung texture (emphysema, ground glass).",
    )
    preferred_max_thickness_mm: float = Field(
        2.5,
        gt=0,
        description="Series at or below this thickness are preferred; the ACR-STR lung cancer "
        "screening CT specification asks for <= 2.5 mm (ideally <= 1 mm) reconstructions.",
    )
    min_slices: int = Field(
        20,
        gt=0,
        description="Fewest slices in an analysable series. At the largest accepted step "
        "(5 mm) 20 slices span only 95 mm, so coverage is the binding limit; this rule "
        "names stray or partial stacks plainly.",
    )
    min_coverage_mm: float = Field(
        120.0,
        gt=0,
        description="Shortest z-coverage accepted as a chest CT. The adult lungs span about "
        "200-300 mm craniocaudally; 120 mm still holds most of both lungs.",
    )
    axial_tolerance_deg: float = Field(
        10.0,
        ge=0,
        description="Largest angle between the slice normal and the patient head-feet axis for "
        "a series to count as axial; oblique reformats and coronal/sagittal MPRs are beyond it.",
    )
    spacing_gap_factor: float = Field(
        1.5,
        gt=1,
        description="A step between slices larger than this times the median step is a gap "
        "(a missing slice): one missing slice doubles the step, so 1.5 separates a gap from "
        "rounding of positions.",
    )
    min_lung_fraction_of_slices: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Fraction of the z-range that must show lung fields (air inside the body) "
        "for the series to count as a chest CT. A chest CT runs from above the apices to the "
        "adrenals; lungs fill most of that range, whereas on an abdominal CT only the lung "
        "bases show, on a small part of it.",
    )
    min_lung_area_cm2: float = Field(
        15.0,
        gt=0,
        description="Least area of lung (-950..-500 HU inside the body) on a slice for that "
        "slice to count as showing lung fields. A mid-chest slice holds 150-300 cm2 of lung; "
        "15 cm2 still counts the apices, while gas in the bowel (mostly below -950 HU) does not.",
    )
    prefer_kernel: str = Field(
        "soft",
        pattern="^(soft|sharp)$",
        description="Preferred reconstruction kernel when several series qualify.",
    )
    prefer_contrast: str = Field(
        "any",
        pattern="^(any|non_contrast|contrast)$",
        description="Preferred contrast phase when several series qualify.",
    )
    max_slice_spacing_mm: float = Field(
        5.0,
        gt=0,
        description="Series whose step between slice centres exceeds this are rejected: "
        "lung nodules of 5-6 mm (the Fleischner/Lung-RADS size of interest) can fall "
        "entirely between wider-spaced slices.",
    )
    max_gantry_tilt_deg: float = Field(
        30.0,
        ge=0,
        description="Largest gantry tilt that is corrected by shifting each slice in-plane "
        "(shear resampling); CT gantries tilt at most about +/-30 degrees.",
    )
    spacing_tolerance: float = Field(
        0.1,
        gt=0,
        lt=1,
        description="Relative deviation of a slice step from the median step still counted as "
        "uniform; larger (but below the gap factor) is reported as irregular.",
    )
    min_lung_extent_mm: float = Field(
        100.0,
        gt=0,
        description="A series whose lung fields span at least this many mm craniocaudally "
        "counts as showing the chest even when lungs cover less than "
        "min_lung_fraction_of_slices of its range (chest-abdomen-pelvis scans). Adult lungs "
        "span about 200-300 mm; the lung bases seen on an abdominal CT usually span under "
        "80 mm below the diaphragm dome.",
    )
    anatomy_sample_slices: int = Field(
        16,
        ge=3,
        description="Slices decoded, evenly spaced along z, for the lung-field check of a "
        "candidate series (pixels of the other slices are not read at selection).",
    )
    anatomy_pixel_mm: float = Field(
        3.0,
        gt=0,
        description="In-plane pixel size (mm) the lung-field check downsamples to; lungs are "
        "tens of cm2, so 3 mm pixels keep the area estimate within a few percent.",
    )


class AnalyzerSettings(_Section):
    """Quantitative chest CT analyzer (``inference/analyzer/``, model ``chest_quant``).

    Each threshold is the centre of a logistic curve (probability 0.5 there); the
    literature behind each is cited in ``inference/analyzer/mapping.py``.
    """

    work_spacing_mm: float = Field(
        2.0, gt=0, description="In-plane spacing of the downsampled copy used for anatomy."
    )
    work_slice_mm: float = Field(
        2.5, gt=0, description="Slice spacing of the downsampled copy used for anatomy."
    )
    threads: int = Field(
        2, ge=1, le=2,
        description="Threads for one study's analysis. After the shared anatomy, the lung "
        "stages (pneumothorax, density, opacity, nodules, pleura) and the mediastinal and bone "
        "stages (metal, spine, heart, aorta, calcium) are independent and run side by side; "
        "scipy.ndimage releases the GIL, so 2 threads take about 40 % off one study's time. "
        "1 runs them one after the other (same results).",
    )
    lung_threshold_hu: float = Field(
        -400.0, description="Air-containing lung below this HU (Hu et al. 2001 use ~-500)."
    )
    min_lung_volume_ml: float = Field(
        300.0, gt=0, description="Less aerated lung than this means the volume is not a chest CT."
    )
    emphysema_laa950_pct: float = Field(
        6.0, gt=0, description="LAA%-950 at which emphysema has probability 0.5."
    )
    opacity_ml: float = Field(  # issue 13: a focal region, not a diffuse fraction
        1.81, gt=0,
        description="Largest ground-glass region (-700..-300 HU holding a 12 mm ball) "
        "at p=0.5 (ml).",
    )
    consolidation_ml: float = Field(
        10.0, gt=0,
        description="Largest vessel-suppressed consolidation (-300..+50 HU) region at p=0.5 (ml).",
    )
    nodule_min_mm: float = Field(4.0, gt=0, description="Smallest nodule diameter reported.")
    mass_min_mm: float = Field(30.0, gt=0, description="Diameter from which a lesion is a mass.")
    effusion_ml: float = Field(
        20.0, gt=0, description="Pleural fluid volume at which effusion has probability 0.5."
    )
    pneumothorax_ml: float = Field(
        10.0, gt=0, description="Free pleural air volume at which pneumothorax has p=0.5."
    )
    ascending_aorta_mm: float = Field(
        40.0, gt=0, description="Ascending aortic diameter at which dilatation has p=0.5."
    )
    descending_aorta_mm: float = Field(
        30.0, gt=0, description="Descending aortic diameter at which dilatation has p=0.5."
    )
    vertebral_hu: float = Field(
        110.0, description="Trabecular vertebral HU below which low bone density has p>0.5."
    )
    cardiothoracic_ratio: float = Field(
        0.5, gt=0, description="Axial cardiothoracic ratio at which cardiomegaly has p=0.5."
    )


class InferenceSettings(_Section):
    """Models, stacker and decision (``inference/``)."""

    decision_threshold: float = Field(
        0.5, ge=0, le=1, description="Probability at or above which `pathology` is 1."
    )
    top_k: int = Field(3, ge=1, le=22, description="How many findings `top_pathologies` lists.")
    finding_threshold: float = Field(
        0.5,
        ge=0,
        le=1,
        description="A finding at or above this probability is reported as present.",
    )
    enabled_models: list[str] = Field(
        default_factory=lambda: ["chest_quant", "ctclip", "ctclip_classfine", "fvlm",
                                 "mednext", "diffusion_anomaly"],
        description="Models run by the ensemble, by name. A learned model without installed "
        "weights is listed in /health as not installed and does not vote (issue 17: the "
        "seed's five learned families are enabled by default for that reason).",
    )
    # issue 16: model isolation, device and the operating point of trained heads
    model_time_limit_s: float = Field(
        600.0, gt=0,
        description="Longest one model may take on one study; past it the model is reported "
        "'timeout' and the study completes with the others. The astra encoder takes about "
        "50 s on 2 CPU cores, chest_quant a few seconds.",
    )
    model_memory_mb: float = Field(
        12288.0, gt=0,
        description="Memory cap of one model (MB). In a model's own process it is the "
        "process's data limit (RLIMIT_DATA) on CPU, or its share of the GPU's memory on CUDA; "
        "a model that reaches it is reported 'out_of_memory'. The astra encoder peaks at "
        "about 2.1 GB on CPU.",
    )
    model_device: str = Field(
        "auto", pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$",
        description="Where learned models run: auto (CUDA when present, else CPU), cpu, "
        "cuda or cuda:N.",
    )
    model_isolation: str = Field(
        "auto", pattern="^(auto|process|thread)$",
        description="process: each model runs in its own worker process (a hang is killed at "
        "the time limit, the memory cap holds); thread: in the node's process (a raise is "
        "caught, a timeout is reported but the computation cannot be stopped); auto: process "
        "for learned models (the astra encoder), thread for chest_quant.",
    )
    target_sensitivity: float = Field(
        0.9, gt=0, le=1,
        description="Sensitivity that `ctnode train` aims for when it picks each trained "
        "head's and the stacker's decision threshold on the validation folds.",
    )
    analyzer: AnalyzerSettings = Field(
        default_factory=AnalyzerSettings,
        description="Thresholds of the quantitative chest CT analyzer (chest_quant).",
    )


class WeightsSettings(_Section):
    """Where installed model weights live (``weights/``)."""

    directory: Path = Field(
        Path("var/weights"), description="Folder holding installed weight files."
    )


class OutputSettings(_Section):
    """DICOM outputs (``sr_writer/``)."""

    org_uid_root: str = Field(
        "1.2.826.0.1.3680043.10.1561",
        pattern=r"^[0-2](\.(0|[1-9][0-9]*))+$",
        description="UID root under which the node makes new UIDs.",
    )
    manufacturer: str = Field("ctnode project", description="Manufacturer of our objects.")
    model_name: str = Field("ctnode chest CT AI node", description="Device model name.")
    device_serial_number: str = Field("0001", description="Serial number of this node.")
    institution_name: str | None = Field(None, description="Institution of this node.")
    sr_series_number: int = Field(9901, ge=1, description="Series number of the SR.")
    sc_series_number: int = Field(9902, ge=1, description="Series number of the SC images.")
    write_failure_sr: bool = Field(
        True, description="Write a short SR saying the AI did not run when processing fails."
    )
    write_failure_sc: bool = Field(
        True,
        description="Also write a Secondary Capture panel saying the AI did not run when "
        "processing fails (only where a failure SR is written).",
    )
    sc_max_key_images: int = Field(
        6, ge=0, le=32,
        description="Most key-slice Secondary Capture images per result (evidence of the most "
        "probable findings first); the summary panel says how many were left out.",
    )
    font_dir: Path = Field(
        Path("/usr/share/fonts/truetype/dejavu"),
        description="Folder holding DejaVuSans.ttf and DejaVuSans-Bold.ttf (Debian "
        "fonts-dejavu-core) for the Secondary Capture text; without them PIL's built-in "
        "font is used and a warning is logged.",
    )


class NodeSettings(_Section):
    """Local state of the node: work folders, queue and spool."""

    work_dir: Path = Field(Path("var"), description="Root of the node's local state.")
    temp_dir: Path | None = Field(
        None, description="Temporary files (uploads, extraction, DICOM receive buffers). The "
        "servers (serve, scp, node) default to <work_dir>/tmp and remove their own leftovers "
        "there at start-up; one-shot commands default to the system's."
    )

    def server_temp_dir(self) -> Path:
        """The servers' temporary folder: ``temp_dir`` or ``<work_dir>/tmp`` (issue 15)."""
        return self.temp_dir if self.temp_dir is not None else self.work_dir / "tmp"


class LimitsSettings(_Section):
    """Memory and size limits per input, for every door (issue 15, docs/security.md)."""

    study_memory_mb: float = Field(
        4096.0,
        gt=0,
        description="Memory budget of one study's analysis (MB). The pipeline estimates the "
        "peak from the headers (voxels x bytes per voxel, measured in benchmarks/probes.py) "
        "before decoding any pixel and refuses a larger study with error_code "
        "'study_too_large'.",
    )
    max_instance_mb: float = Field(
        512.0,
        gt=0,
        description="Largest single DICOM instance (MB), as stored and, for the deflated "
        "transfer syntax, once inflated. The SCP answers a larger C-STORE with 0xA700 and "
        "keeps at most this much of it on disk while receiving; readers skip larger files. "
        "An enhanced CT of a whole chest (600 frames of 512x512) is about 300 MB; decoding "
        "one instance briefly needs about 3-4 times its size (pydicom holds the encoded and "
        "the decoded pixels), so 512 MB keeps one instance well inside study_memory_mb.",
    )


class BatchSettings(_Section):
    """The batch client (``api/batch/``, ``ctnode batch``): issue 9."""

    api_url: str = Field(
        "http://127.0.0.1:8000", description="Base URL of the node's REST API the client calls."
    )
    concurrency: int = Field(
        2,
        ge=1,
        le=64,
        description="Most files in flight at once. The server analyses studies on its CPUs; "
        "more in flight than it has workers only queues them there.",
    )
    timeout_s: float = Field(
        900.0, gt=0, description="Per-request time limit (upload + analysis + answer), seconds."
    )
    retries: int = Field(
        2, ge=0, le=10, description="Extra attempts after a network error, timeout or HTTP 5xx."
    )
    backoff_s: float = Field(
        1.0,
        ge=0,
        description="First retry waits this long; each later one twice as long (with jitter).",
    )
    checkpoint_s: float = Field(
        2.0,
        ge=0,
        description="Rewrite the output file at most this often while running (it is always "
        "rewritten at the end and on Ctrl-C).",
    )


class DicomDestination(_Section):
    """One DICOM application entity that receives our SR and SC by C-STORE."""

    ae_title: str = Field(
        ..., min_length=1, max_length=16, pattern=r"^[^\\]*[^ \\][^\\]*$",
        description="Called AE title of the destination (1-16 characters, no backslash).",
    )
    host: str = Field(..., min_length=1, description="Host name or IP address.")
    port: int = Field(..., ge=1, le=65535, description="TCP port.")


class ScpSettings(_Section):
    """The embedded DICOM node (``scp_node/``, ``ctnode scp``): issue 8."""

    ae_title: str = Field(
        "CTNODE", min_length=1, max_length=16, pattern=r"^[^\\]*[^ \\][^\\]*$",
        description="Our AE title, as SCP and as the calling AE of deliveries.",
    )
    bind_address: str = Field(
        "127.0.0.1", description="Address the SCP listens on; 0.0.0.0 for every interface."
    )
    port: int = Field(11112, ge=1, le=65535, description="TCP port of the SCP.")
    max_associations: int = Field(
        10, ge=1, description="Most simultaneous associations; more are rejected (transient)."
    )
    max_pdu_size: int = Field(
        262144, ge=0, description="Largest PDU we receive (bytes); 0 means no limit."
    )
    acse_timeout_s: float = Field(30.0, gt=0, description="Association negotiation timeout.")
    dimse_timeout_s: float = Field(60.0, gt=0, description="Wait for a DIMSE message.")
    network_timeout_s: float = Field(120.0, gt=0, description="Idle association timeout.")
    allowed_calling_ae_titles: list[str] = Field(
        default_factory=list,
        description="Calling AE titles allowed to associate; empty allows any. Others are "
        "rejected with 'calling AE title not recognised'.",
    )
    allowed_source_addresses: list[str] = Field(
        default_factory=list,
        description="IP addresses or networks (CIDR) allowed to associate; empty allows any.",
    )
    require_called_ae_title: bool = Field(
        False, description="Reject associations not addressed to our AE title."
    )
    stable_seconds: float = Field(
        30.0, gt=0,
        description="A study is complete when no instance of it arrived for this long.",
    )
    spool_dir: Path | None = Field(
        None, description="Received instances, spool/<study>/<series>/<sop>.dcm; "
        "default <node.work_dir>/spool."
    )
    results_dir: Path | None = Field(
        None, description="SR and SC written per job; default <node.work_dir>/scp_results."
    )
    min_free_mb: float = Field(
        512.0, ge=0,
        description="Below this much free space on the spool's disk, C-STORE answers "
        "0xA700 (Out of Resources) instead of storing.",
    )
    spool_retention_hours: float = Field(
        24.0, ge=0,
        description="Keep a study's spool, and the SR/SC folder of each finished job, this "
        "long after the job finished (0: remove them as soon as the results are "
        "delivered). Failed jobs keep both for `ctnode jobs retry`.",
    )
    workers: int = Field(1, ge=1, le=64, description="Jobs analysed at once.")
    job_lease_s: float = Field(
        120.0, gt=0,
        description="A job whose worker stopped renewing for this long is taken over "
        "(restart recovery time).",
    )
    job_poll_s: float = Field(1.0, gt=0, description="Idle workers look for jobs this often.")
    destinations: list[DicomDestination] = Field(
        default_factory=list, description="Where SR and SC are sent by C-STORE."
    )
    stow_url: str | None = Field(
        None, description="Optional DICOMweb base URL; results are also sent by STOW-RS "
        "to <stow_url>/studies."
    )
    delivery_timeout_s: float = Field(60.0, gt=0, description="Per-destination time limit.")
    delivery_max_attempts: int = Field(
        8, ge=1, description="Tries of a job (analysis and delivery) before it is failed."
    )
    delivery_backoff_s: float = Field(
        15.0, ge=0, description="Wait after the first failed try; doubled after each one."
    )
    delivery_backoff_max_s: float = Field(900.0, ge=0, description="Longest wait between tries.")


class OrthancSettings(_Section):
    """The Orthanc door (``orthanc_plugin/``, ``ctnode worker``): issue 7.

    The plugin inside Orthanc reads its own part from orthanc.json (``CtNode``
    section); ``queue_path`` and ``output.manufacturer`` must agree with it.
    Credentials come only from the environment (``CTNODE_ORTHANC__USERNAME``,
    ``CTNODE_ORTHANC__PASSWORD``), never from a committed file.
    """

    url: str = Field(
        "http://127.0.0.1:8042", pattern=r"^https?://",
        description="Base URL of the Orthanc REST API the worker reads from and writes to.",
    )
    username: str = Field("ctnode", description="Orthanc REST user (RegisteredUsers).")
    password: SecretStr | None = Field(None, description="Password of that user.")
    queue_path: Path | None = Field(
        None, description="SQLite job queue shared with the plugin (CtNode.QueuePath); "
        "default <node.work_dir>/jobs.sqlite3."
    )
    results_dir: Path | None = Field(
        None, description="SR and SC written per job (kept until delivered); "
        "default <node.work_dir>/orthanc_results."
    )
    destinations: list[str] = Field(
        default_factory=list,
        description="Orthanc modality names (DicomModalities in orthanc.json) that receive "
        "the SR and SC; empty keeps them in Orthanc only.",
    )
    trigger_modalities: list[str] = Field(
        default_factory=lambda: ["CT"],
        description="Series of these modalities are analysed (CtNode.TriggerModalities).",
    )
    workers: int = Field(1, ge=1, le=64, description="Jobs analysed at once by one process.")
    job_lease_s: float = Field(
        120.0, gt=0,
        description="A job whose worker stopped renewing for this long is taken over.",
    )
    job_poll_s: float = Field(1.0, gt=0, description="Idle workers look for jobs this often.")
    http_timeout_s: float = Field(120.0, gt=0, description="Time limit of one REST call.")
    delivery_timeout_s: float = Field(
        120.0, gt=0, description="Time limit of one C-STORE forward (/modalities/{id}/store)."
    )
    max_attempts: int = Field(
        8, ge=1, description="Tries of a job (analysis and delivery) before it is failed."
    )
    backoff_s: float = Field(
        10.0, ge=0, description="Wait after the first failed try; doubled after each one."
    )
    backoff_max_s: float = Field(600.0, ge=0, description="Longest wait between tries.")
    results_retention_h: float = Field(
        24.0, ge=0,
        description="Keep a job's written SR/SC and delivery records this long after it "
        "finished (they also stay in Orthanc); while kept, a job re-run after a crash "
        "never re-sends to a destination already served. 0 removes them at once.",
    )


class ViewerSettings(_Section):
    """The web viewer (``ctnode/viewer.py``, ``ctnode viewer``): issue 14.

    Serves the built OHIF app and proxies Orthanc's DICOMweb read-only on the
    same origin. Credentials come only from the environment.
    """

    host: str = Field(
        "127.0.0.1", description="Bind address; any non-loopback address needs a login."
    )
    port: int = Field(8043, ge=1, le=65535, description="TCP port of the viewer.")
    ohif_dir: Path = Field(
        Path(".viewer/ohif/dist"),
        description="The built OHIF app (dist/ of the npm package @ohif/app, installed by "
        "`bash bootstrap.sh test` or `bash bootstrap.sh viewer`).",
    )
    dicomweb_url: str | None = Field(
        None, description="DICOMweb root to proxy; default <orthanc.url>/dicom-web."
    )
    username: str | None = Field(None, description="HTTP Basic login of the viewer.")
    password: SecretStr | None = Field(None, description="Password of that login.")


class JobsSettings(_Section):
    """The job queue behind the asynchronous doors (``jobs/``): issue 18.

    ``sqlite`` (default) keeps jobs in ``<node.work_dir>/jobs.sqlite3`` and
    needs no server. ``celery`` keeps them in Redis and runs them on Celery
    workers (``ctnode worker``) on as many machines as needed; docs/scale-out.md.
    """

    backend: str = Field(
        "sqlite", pattern="^(sqlite|celery)$",
        description="Job queue: 'sqlite' (one machine) or 'celery' (Redis broker, many "
        "workers on many machines).",
    )
    broker_url: SecretStr = Field(
        SecretStr("redis://127.0.0.1:6379/0"),
        description="Redis URL of the Celery broker, result store and job records "
        "(redis://[:password@]host:port/db); a password in it is never logged.",
    )
    key_prefix: str = Field(
        "ctnode", pattern=r"^[A-Za-z0-9_.-]+$",
        description="Prefix of the Redis keys holding job records (several nodes may "
        "share one Redis with different prefixes and queue names).",
    )
    cpu_queue: str = Field(
        "ctnode.cpu", pattern=r"^[A-Za-z0-9_.-]+$",
        description="Celery queue of studies that need only CPUs (selection, analyzer, "
        "SR/SC, delivery).",
    )
    gpu_queue: str = Field(
        "ctnode.gpu", pattern=r"^[A-Za-z0-9_.-]+$",
        description="Celery queue of studies that run a model needing a GPU.",
    )
    gpu_models: list[str] = Field(
        default_factory=list,
        description="Models (by name) that need a GPU: while one of them is in "
        "inference.enabled_models, studies go to gpu_queue, else to cpu_queue.",
    )
    worker_queues: list[str] = Field(
        default_factory=lambda: ["ctnode.cpu"], min_length=1,
        description="Queues this machine's `ctnode worker` serves: a CPU machine "
        "['ctnode.cpu'], a GPU machine ['ctnode.gpu'] (or both).",
    )
    concurrency: int = Field(
        1, ge=1, le=64,
        description="Worker processes of one `ctnode worker` (studies at once). One study "
        "keeps about one core busy; see docs/scale-out.md for the measured curve.",
    )
    prefetch_multiplier: int = Field(
        1, ge=1, le=16,
        description="Messages a worker process reserves ahead. 1: a worker busy with a long "
        "study never holds another that an idle worker could take.",
    )
    visibility_timeout_s: float = Field(
        3600.0, gt=0,
        description="A message taken by a worker that vanished (machine lost, SIGKILL) goes "
        "back to the queue after this long. Must exceed the longest retry wait "
        "(scp.delivery_backoff_max_s, orthanc.backoff_max_s): Celery holds a waiting retry "
        "unacknowledged. A lost worker process on a living machine is requeued at once.",
    )
    restore_interval_s: float = Field(
        10.0, gt=0,
        description="How often each worker looks for messages whose visibility timeout "
        "expired.",
    )
    redis_timeout_s: float = Field(
        10.0, gt=0, description="Time limit of one Redis call on job records (seconds)."
    )
    result_expires_s: float = Field(
        86400.0, gt=0,
        description="Celery task results (shown by Flower) are kept this long; job "
        "records stay until removed.",
    )


class Settings(BaseSettings):
    """All settings of the node, in one object."""

    model_config = SettingsConfigDict(
        env_prefix="CTNODE_", env_nested_delimiter="__", extra="forbid"
    )

    log_level: str = Field("INFO", description="Log level of the node's loggers.")
    log_json: bool = Field(False, description="Write logs as one JSON object per line.")
    api: ApiSettings = Field(default_factory=ApiSettings)
    selection: SelectionSettings = Field(default_factory=SelectionSettings)
    inference: InferenceSettings = Field(default_factory=InferenceSettings)
    weights: WeightsSettings = Field(default_factory=WeightsSettings)
    output: OutputSettings = Field(default_factory=OutputSettings)
    node: NodeSettings = Field(default_factory=NodeSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    scp: ScpSettings = Field(default_factory=ScpSettings)
    orthanc: OrthancSettings = Field(default_factory=OrthancSettings)
    viewer: ViewerSettings = Field(default_factory=ViewerSettings)  # issue 14
    jobs: JobsSettings = Field(default_factory=JobsSettings)  # issue 18

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _JsonFileSource(settings_cls))


class _JsonFileSource(PydanticBaseSettingsSource):
    """Reads the JSON file named by ``CTNODE_CONFIG_FILE`` (lowest priority)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        import os

        path = os.environ.get("CTNODE_CONFIG_FILE")
        if not path:
            return {}
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"CTNODE_CONFIG_FILE {path} must hold a JSON object")
        return data


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once. Doors call this; packages take sections."""
    return Settings()

"""``ctnode phantom``: write a synthetic chest CT study with known ground truth.

A door onto ``phantom``: it parses options, generates, writes and prints where.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from phantom import (
    PatientInfo,
    PhantomError,
    PhantomSpec,
    SeriesKind,
    SeriesSpec,
    generate_phantom,
    write_dicom_study,
)
from phantom.presets import PRESETS, lesions_from_text

_LESION_HELP = (
    "Comma-separated lesions, each NAME or NAME:field=value:...; names: "
    + ", ".join(sorted(PRESETS))
    + ". Example: nodule:diameter_mm=14:side=left,effusion:volume_ml=500"
)


def phantom(
    out: Annotated[Path, typer.Argument(help="Folder to write the study into (created).")],
    lesions: Annotated[str, typer.Option("--lesions", "-l", help=_LESION_HELP)] = "",
    seed: Annotated[int, typer.Option(min=0, help="Random seed: anatomy, lesions, noise, UIDs.")]
    = 0,
    size: Annotated[int, typer.Option(min=32, max=1024, help="In-plane matrix (pixels).")] = 256,
    slices: Annotated[int | None, typer.Option(
        min=1, max=2000, help="Number of native slices (default: cover the whole chest).")]
    = None,
    spacing: Annotated[float, typer.Option(min=0.3, max=10.0,
                                           help="Native slice spacing = thin thickness (mm).")]
    = 1.25,
    fov: Annotated[float, typer.Option(min=300.0, max=600.0, help="Field of view (mm).")]
    = 380.0,
    noise: Annotated[float, typer.Option(min=0.0, max=200.0, help="Noise sigma (HU).")] = 15.0,
    contrast: Annotated[bool, typer.Option("--contrast/--no-contrast",
                                           help="Intravenous contrast (arterial phase).")]
    = False,
    series: Annotated[str, typer.Option(
        help="Series to write, comma-separated: localizer, thin (lung kernel), thin_soft, "
        "thick, coronal, multiframe (Legacy Converted Enhanced CT), dose (secondary capture); "
        "or 'clinical' for localizer,thin,thin_soft,thick,coronal,dose.")]
    = "localizer,thin,thick",
    thick_mm: Annotated[float, typer.Option(min=0.5, max=20.0,
                                            help="Thickness of the thick series (mm).")] = 5.0,
    transfer_syntax: Annotated[str, typer.Option(
        "--transfer-syntax", "-t",
        help="UID or alias: explicit, implicit, deflated, rle, jpegls, jpegls-near, j2k, "
        "j2k-lossy, jpeg-lossless, jpeg-lossless-p14.")] = "explicit",
    patient_name: Annotated[str, typer.Option(help="PatientName (any script; "
                                              "non-ASCII is written as ISO_IR 192).")]
    = "PHANTOM^CHEST",
    patient_id: Annotated[str, typer.Option(help="PatientID (default PHANTOM<seed>).")] = "",
    signed: Annotated[bool, typer.Option("--signed/--unsigned",
                                         help="Signed pixels with intercept 0, or unsigned "
                                         "with intercept -1024.")] = False,
) -> None:
    """Write a synthetic chest CT study (localizer, thin and thick series) and truth.json."""
    try:
        lesion_list = lesions_from_text(lesions)
        spec = PhantomSpec(matrix=size, fov_mm=fov, slice_spacing_mm=spacing, n_slices=slices,
                           noise_sigma_hu=noise, seed=seed, lesions=lesion_list,
                           contrast=contrast)
        if series.strip().lower() == "clinical":
            series = "localizer,thin,thin_soft,thick,coronal,dose"
        wanted = [s.strip().lower() for s in series.split(",") if s.strip()]
        available = {
            "localizer": SeriesSpec("localizer", SeriesKind.LOCALIZER, series_number=1),
            "thin": SeriesSpec("thin", SeriesKind.AXIAL, None, kernel="LUNG", series_number=2),
            "thin_soft": SeriesSpec("thin_soft", SeriesKind.AXIAL, None, kernel="STANDARD",
                                    series_number=3),
            "thick": SeriesSpec("thick", SeriesKind.AXIAL, thick_mm, kernel="STANDARD",
                                series_number=4),
            "coronal": SeriesSpec("coronal", SeriesKind.CORONAL, 3.0, series_number=5),
            "multiframe": SeriesSpec("multiframe", SeriesKind.MULTIFRAME, None,
                                     kernel="STANDARD", series_number=6),
            "dose": SeriesSpec("dose", SeriesKind.DOSE_SCREEN, series_number=501),
        }
        unknown = [w for w in wanted if w not in available]
        if unknown or not wanted:
            raise typer.BadParameter(f"unknown series {unknown}; use "
                                     f"{', '.join(available)} or clinical",
                                     param_hint="--series")
        t0 = time.perf_counter()
        ph = generate_phantom(spec)
        t1 = time.perf_counter()
        written = write_dicom_study(ph, out, series=[available[w] for w in wanted],
                                    patient=PatientInfo(name=patient_name,
                                                        patient_id=patient_id),
                                    transfer_syntax=transfer_syntax, signed_pixels=signed)
        t2 = time.perf_counter()
    except (PhantomError, ValueError, TypeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    typer.echo(f"study {written.study_uid} in {written.root}")
    for s in written.series:
        typer.echo(f"  {s.name:<10} {len(s.paths):>4} instances  {s.thickness_mm:g} mm  "
                   f"{s.description}  ({s.series_uid})")
    present = [k for k, v in ph.truth["findings"].items() if v == "present"]
    typer.echo(f"truth: {written.truth_path}  findings present: {', '.join(present) or 'none'}")
    typer.echo(f"generated {ph.shape[2]}x{ph.shape[1]}x{ph.shape[0]} in {t1 - t0:.1f} s, "
               f"written in {t2 - t1:.1f} s ({written.transfer_syntax_uid})")


def register(app: typer.Typer) -> None:
    app.command("phantom")(phantom)

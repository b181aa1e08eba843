"""The ``lrreid`` console command.

Each pipeline room adds its subcommands in its own module below (data, train, sr, search);
this module only assembles them and turns user errors into one-line messages.
"""
from __future__ import annotations

import importlib
import logging
import sys

import typer

from lrreid.errors import LrreidError

app = typer.Typer(
    name="lrreid",
    help="Low-resolution person re-identification: data, SR + re-ID training, evaluation, search.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Modules that register subcommands on ``app``; a module missing here simply adds nothing.
_COMMAND_MODULES = (
    "lrreid.cli.data_commands",
    "lrreid.cli.train_commands",
    "lrreid.cli.sr_commands",
    "lrreid.cli.search_commands",
)


@app.callback()
def _root() -> None:
    """Low-resolution person re-identification: data, SR + re-ID training, evaluation, search."""


@app.command()
def version() -> None:
    """Print the lrreid version."""
    from lrreid import __version__

    typer.echo(__version__)


def _load_commands() -> None:
    for name in _COMMAND_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    _load_commands()
    try:
        app(args=argv, prog_name="lrreid")
    except LrreidError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)

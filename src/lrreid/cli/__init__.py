"""The ``lrreid`` console command.

Each pipeline room adds its subcommands in its own ``<room>_commands.py`` module in this package;
this module only assembles them and turns user errors into one-line messages.
"""
from __future__ import annotations

import importlib
import logging
import sys
from contextlib import contextmanager

import typer
from typer.core import TyperCommand, TyperGroup

from lrreid.errors import LrreidError


class _PlainFlagsMixin:
    """Help without typer's ``<bool>`` type tag on flags (``--check``, ``--fast/--fp32``, ``--help``)."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""  # the help's type column shows the metavar when there is one
        return params


class LrreidCommand(_PlainFlagsMixin, TyperCommand):
    """Every ``lrreid`` subcommand (see ``_App.command``)."""


class LrreidGroup(_PlainFlagsMixin, TyperGroup):
    """The ``lrreid`` command itself."""


class _App(typer.Typer):
    def command(self, *args, cls=None, **kwargs):
        return super().command(*args, cls=cls or LrreidCommand, **kwargs)


app = _App(
    cls=LrreidGroup,
    name="lrreid",
    help="Low-resolution person re-identification: data, SR + re-ID training, evaluation, search.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

@app.callback()
def _root() -> None:
    """Low-resolution person re-identification: data, SR + re-ID training, evaluation, search."""


@app.command()
def version() -> None:
    """Print the lrreid version."""
    from lrreid import __version__

    typer.echo(__version__)


@contextmanager
def loading_status(message: str):
    """Say what is loading while it loads: a spinner on a terminal, else one log line on stderr.

    Loading a trained run takes seconds to tens of seconds (it rebuilds the method); without a
    word the command looks hung.  Nothing goes to stdout, so ``--json`` output stays clean.
    """
    from rich.console import Console

    console = Console(stderr=True)
    if console.is_terminal:
        with console.status(f"{message} ..."):
            yield
    else:
        logging.getLogger("lrreid").info("%s ...", message)
        yield


def _load_commands() -> None:
    """Import every ``*_commands`` module of this package; each adds its subcommands to ``app``."""
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        if info.name.endswith("_commands"):
            importlib.import_module(f"{__name__}.{info.name}")


def configure_logging() -> None:
    """lrreid's own INFO lines; other libraries' warnings and errors only.

    The ONNX exporter alone logs hundreds of INFO lines (onnxscript's optimizer passes) that bury
    the progress; a library's warnings and errors still show.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("lrreid").setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> None:
    from lrreid.utils.memory import configure_allocator

    try:
        configure_allocator()  # how freed activations are reused or given back (lrreid.utils.memory)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    configure_logging()
    _load_commands()
    try:
        app(args=argv, prog_name="lrreid")
    except LrreidError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


def run(argv: list[str]) -> int:
    """Run ``lrreid`` with ``argv`` in this process and return its exit status instead of exiting.

    Example: ``assert run(["prepare", "viper", "VIPeR", "out/mlr_viper"]) == 0``
    """
    try:
        main(list(argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0

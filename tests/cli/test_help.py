"""``lrreid <command> --help`` for every command: plain text a user can read, every option described."""
from __future__ import annotations

import pytest
import typer

from lrreid.cli import _load_commands, app, main


def _commands() -> dict:
    _load_commands()
    group = typer.main.get_command(app)
    return dict(group.commands)


COMMANDS = sorted(_commands())


def _help(capsys, monkeypatch, *argv: str) -> str:
    monkeypatch.setenv("COLUMNS", "80")  # a common terminal: long unbreakable words get cut with "…"
    monkeypatch.setenv("TERMINAL_WIDTH", "80")
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code in (0, None)
    return capsys.readouterr().out


def test_every_command_is_walked():
    assert {"prepare", "datasets", "train", "evaluate", "demo", "index", "search", "export", "sr-benchmark"} <= set(COMMANDS)


@pytest.mark.parametrize("name", ["", *COMMANDS])
def test_help_has_no_raw_markup_or_cut_text(name, capsys, monkeypatch):
    text = _help(capsys, monkeypatch, *([name] if name else []))
    assert "Usage:" in text
    for raw in ("`", "<bool>", "…"):  # docstring markup, typer's type tag on flags, a truncated cell
        assert raw not in text, f"lrreid {name} --help shows {raw!r}:\n{text}"


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_and_argument_has_a_description(name):
    command = _commands()[name]
    undescribed = [p.name for p in command.params if not (getattr(p, "help", None) or "").strip()]
    assert not undescribed, f"lrreid {name}: no help text for {undescribed}"


@pytest.mark.parametrize("name", COMMANDS)
def test_summary_in_the_command_list_is_one_line(name):
    """The first paragraph is what ``lrreid --help`` lists; a line break in it shows there as a break."""
    first = (_commands()[name].help or "").strip().split("\n\n")[0]
    assert first and "\n" not in first, f"lrreid {name}: first paragraph spans lines: {first!r}"


def test_other_libraries_log_warnings_not_info(capsys, monkeypatch):
    """The ONNX exporter's INFO chatter (586 lines for one export) stays out; its warnings and lrreid's INFO show."""
    import logging

    from lrreid.cli import configure_logging

    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # as in a fresh `lrreid` process
    monkeypatch.setattr(root, "level", root.level)
    lrreid_logger = logging.getLogger("lrreid")
    monkeypatch.setattr(lrreid_logger, "level", lrreid_logger.level)
    configure_logging()
    logging.getLogger("onnxscript.optimizer").info("Skipping constant folding for node 'x'")
    logging.getLogger("onnxscript.optimizer").warning("a real problem")
    logging.getLogger("lrreid.export").info("exported reid.onnx")
    err = capsys.readouterr().err
    assert "constant folding" not in err
    assert "a real problem" in err and "exported reid.onnx" in err

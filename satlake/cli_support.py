"""What every command of the ``satlake`` CLI shares, below the domains' command modules: the error a person
sees without a traceback, the settings a command runs with (``--stack`` switches the mode), and the report
it prints through."""

from __future__ import annotations

import argparse
import os

from satlake.reporting import Report
from satlake.settings import Mode, Settings


class CliError(Exception):
    """An error for the person at the terminal: printed without a traceback."""


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from the environment, in stack mode when the command was given ``--stack``."""
    if getattr(args, "stack", False):
        return Settings.from_env({**os.environ, "SATLAKE_MODE": Mode.STACK.value})
    return Settings.from_env()


def report_for(args: argparse.Namespace) -> Report:
    """The report the CLI made for this command (on the terminal even while logs are captured), or one on
    the process's stdout when a command function is called directly."""
    report = getattr(args, "report", None)
    return report if isinstance(report, Report) else Report()


_PRODUCE = "satlake_produce_subcommands"


def set_produce_subcommands(commands: argparse._SubParsersAction, produce: argparse._SubParsersAction) -> None:
    """Remember the subcommands of ``satlake produce`` on the top-level subparsers (cli.py, before the domains
    register theirs)."""
    setattr(commands, _PRODUCE, produce)


def produce_subcommands(commands: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """The subcommands of ``satlake produce``: a domain adds what it can produce (``produce packets``)."""
    return getattr(commands, _PRODUCE)

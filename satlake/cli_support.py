"""What every command of the ``satlake`` CLI shares, below the domains' command modules: the error a person
sees without a traceback, and the settings a command runs with (``--stack`` switches the mode)."""

from __future__ import annotations

import argparse
import os

from satlake.settings import Mode, Settings


class CliError(Exception):
    """An error for the person at the terminal: printed without a traceback."""


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from the environment, in stack mode when the command was given ``--stack``."""
    if getattr(args, "stack", False):
        return Settings.from_env({**os.environ, "SATLAKE_MODE": Mode.STACK.value})
    return Settings.from_env()

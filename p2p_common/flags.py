"""Command-line options that every subcommand takes, given before its name or after it."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def accept_after_command(add_flags: Callable[[argparse.ArgumentParser], None], command: argparse.ArgumentParser) -> None:
    """Let the options that add_flags gave the main parser be given after command's name too
    (`p2p-peer serve --log-level debug`, as `p2p-peer --log-level debug serve`).

    Here they have no defaults: argparse applies a subcommand's defaults after the main parser's
    values, so a default here would undo the same option given before the command's name."""
    first = len(command._actions)  # argparse lists a parser's actions only in this attribute
    add_flags(command)
    for action in command._actions[first:]:
        action.default = argparse.SUPPRESS

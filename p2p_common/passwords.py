"""Passwords handed to a command other than on its command line, where `ps` and the shell's history
would show them: a file's first line (Docker and systemd secrets), a line of piped standard input, or
a prompt on the terminal. One reader for both commands, so a file or pipe that works for
`p2p-tracker user add` works for `p2p-peer` too (CRLF line ends included)."""

from __future__ import annotations

import getpass
import sys

from p2p_common.errors import P2PError


def first_line(text: str) -> str:
    """The text up to its first line end, whether that is LF or CRLF (a file saved on Windows)."""
    return text.split("\n", 1)[0].rstrip("\r")


def read_password_file(path: str) -> str:
    """The first line of the file at path; a P2PError that names the file when it cannot be read or is empty."""
    try:
        with open(path, encoding="utf-8") as f:
            password = first_line(f.readline())
    except OSError as exc:
        raise P2PError(f"cannot read the password file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise P2PError(f"the password file {path} is not UTF-8 text") from None
    if not password:
        raise P2PError(f"the password file {path} is empty: the password is its first line")
    return password


def ask_password(prompt: str) -> str:
    """Ask on the terminal without echo, as ssh does; "" when standard input is not a terminal or closes."""
    if not sys.stdin.isatty():
        return ""
    try:
        return getpass.getpass(prompt)
    except EOFError:
        return ""

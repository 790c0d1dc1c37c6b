"""Placeholder replaced by the peer CLI."""


def main() -> int:
    return 0

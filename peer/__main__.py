"""Run the peer CLI as `python -m peer`."""

from peer.cli import run

run()

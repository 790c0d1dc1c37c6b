"""Run the peer CLI as `python -m peer`."""

import sys

from peer.cli import main

sys.exit(main())

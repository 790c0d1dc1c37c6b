#!/usr/bin/env bash
# The main job: set up ./.venv, then run a tracker and peers on this machine sharing real files.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/bootstrap.sh
source "$ROOT/scripts/bootstrap.sh" test
exec python "$ROOT/scripts/demo.py" "$@"

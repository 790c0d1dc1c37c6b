#!/usr/bin/env bash
# The test command: set up ./.venv, lint (ruff, buf, hadolint) and run the whole test suite.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/bootstrap.sh
source "$ROOT/scripts/bootstrap.sh" test
cd "$ROOT"
echo "== ruff"
ruff check .
echo "== pytest"
exec python -m pytest "$@"

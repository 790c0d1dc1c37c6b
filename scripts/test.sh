#!/usr/bin/env bash
# The test command: set up ./.venv, lint (ruff, mypy; buf and hadolint run as tests) and run the whole test suite.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/bootstrap.sh
source "$ROOT/scripts/bootstrap.sh" test
cd "$ROOT"
echo "== ruff"
ruff check .
echo "== mypy"
mypy
echo "== pytest"
exec python -m pytest "$@"

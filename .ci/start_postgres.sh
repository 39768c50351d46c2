#!/usr/bin/env bash
# Make sure a private PostgreSQL server is running for the tests and print its URL.
#
# Idempotent: the first call installs PostgreSQL if its binaries are missing (Debian/Ubuntu,
# needs root), creates a throw-away cluster in $HYPERAGENTS_PG_DIR (default /tmp/hyperagents-pg)
# listening on 127.0.0.1 only (free port, trust auth, unix socket in the same folder), starts it
# and creates the database "hyperagents_test"; later calls reuse the running server.
#
# The last line on stdout is the URL, e.g.:
#   export HYPERAGENTS_TEST_POSTGRES_URL="$(.ci/start_postgres.sh | tail -n 1)"
# `start_postgres.sh --stop` stops the server of $HYPERAGENTS_PG_DIR and removes that folder
# (scripts/test.sh does so when it ends, with a folder of its own).
set -euo pipefail

PG_DIR="${HYPERAGENTS_PG_DIR:-/tmp/hyperagents-pg}"
DATA_DIR="$PG_DIR/data"
PORT_FILE="$PG_DIR/port"
LOG_FILE="$PG_DIR/server.log"
DB_NAME="${HYPERAGENTS_PG_DB:-hyperagents_test}"
DB_USER=postgres

log() { echo "start_postgres: $*" >&2; }

find_bindir() {
    local candidate
    if command -v pg_config >/dev/null 2>&1; then
        candidate="$(pg_config --bindir 2>/dev/null || true)"
        if [[ -x "$candidate/initdb" && -x "$candidate/pg_ctl" ]]; then
            echo "$candidate"
            return 0
        fi
    fi
    # Debian keeps the server binaries out of PATH: take the newest installed version.
    for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x "$candidate/initdb" && -x "$candidate/pg_ctl" ]]; then
            echo "$candidate"
            return 0
        fi
    done
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
        return 0
    fi
    return 1
}

if [[ "${1:-}" == --stop ]]; then
    if [[ -f "$DATA_DIR/PG_VERSION" ]]; then
        BIN="$(find_bindir)"
        OWNER="$(stat -c %U "$DATA_DIR")"
        if [[ "$(id -u)" == 0 && "$OWNER" != root ]]; then
            runuser -u "$OWNER" -- "$BIN/pg_ctl" -D "$DATA_DIR" stop -m fast >/dev/null 2>&1 || true
        else
            "$BIN/pg_ctl" -D "$DATA_DIR" stop -m fast >/dev/null 2>&1 || true
        fi
        log "stopped the server in $DATA_DIR"
    fi
    rm -rf "$PG_DIR"
    exit 0
fi

BIN="$(find_bindir || true)"
if [[ -z "$BIN" ]]; then
    if [[ "$(id -u)" != 0 ]]; then
        log "PostgreSQL is not installed and this script is not root: install 'postgresql'"
        exit 1
    fi
    log "installing PostgreSQL with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
    BIN="$(find_bindir || true)"
    if [[ -z "$BIN" ]]; then
        log "PostgreSQL binaries not found after installing"
        exit 1
    fi
fi

# initdb refuses to run as root: run the server as the "postgres" user (created by the
# package; created here if missing).
if [[ "$(id -u)" == 0 ]]; then
    RUN_AS=postgres
    if ! id "$RUN_AS" >/dev/null 2>&1; then
        useradd --system --user-group --home-dir "$PG_DIR" --shell /usr/sbin/nologin "$RUN_AS"
    fi
    as_owner() { runuser -u "$RUN_AS" -- "$@"; }
else
    as_owner() { "$@"; }
fi

mkdir -p "$PG_DIR"
if [[ "$(id -u)" == 0 ]]; then
    chown "$RUN_AS": "$PG_DIR"
fi
chmod 700 "$PG_DIR"

is_ready() { "$BIN/pg_isready" -q -h 127.0.0.1 -p "$1" -U "$DB_USER" -t 2 >/dev/null 2>&1; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

PORT=""
if [[ -f "$PORT_FILE" ]]; then
    PORT="$(cat "$PORT_FILE")"
fi

if [[ -n "$PORT" ]] && as_owner "$BIN/pg_ctl" -D "$DATA_DIR" status >/dev/null 2>&1 && is_ready "$PORT"; then
    log "reusing the server already running on port $PORT"
else
    if [[ ! -f "$DATA_DIR/PG_VERSION" ]]; then
        log "creating a cluster in $DATA_DIR"
        rm -rf "$DATA_DIR"
        as_owner "$BIN/initdb" -D "$DATA_DIR" -U "$DB_USER" --auth=trust -E UTF8 \
            --locale=C.UTF-8 --no-sync >"$PG_DIR/initdb.log" 2>&1 || {
            cat "$PG_DIR/initdb.log" >&2
            exit 1
        }
    fi
    # A stale server of this cluster (e.g. with an old port) is stopped first.
    as_owner "$BIN/pg_ctl" -D "$DATA_DIR" stop -m fast >/dev/null 2>&1 || true
    PORT=""
    for candidate in $(seq 54329 54429); do
        if ! port_in_use "$candidate"; then
            PORT="$candidate"
            break
        fi
    done
    if [[ -z "$PORT" ]]; then
        log "no free port in 54329-54429"
        exit 1
    fi
    log "starting the server on 127.0.0.1:$PORT"
    # fsync off: the cluster is disposable test infrastructure; it speeds the tests a lot.
    if ! as_owner "$BIN/pg_ctl" -D "$DATA_DIR" -l "$LOG_FILE" -w -t 60 start -o \
        "-c listen_addresses=127.0.0.1 -p $PORT -k $PG_DIR -c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=200" \
        >/dev/null; then
        log "the server did not start; its log:"
        tail -n 30 "$LOG_FILE" >&2 || true
        exit 1
    fi
    echo "$PORT" >"$PORT_FILE"
fi

for _ in $(seq 1 60); do
    if is_ready "$PORT"; then
        break
    fi
    sleep 0.5
done
if ! is_ready "$PORT"; then
    log "the server on port $PORT is not accepting connections"
    exit 1
fi

PSQL=("$BIN/psql" -h 127.0.0.1 -p "$PORT" -U "$DB_USER" -d postgres -v ON_ERROR_STOP=1 -qtA)
if [[ "$("${PSQL[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != 1 ]]; then
    log "creating database $DB_NAME"
    "${PSQL[@]}" -c "CREATE DATABASE \"$DB_NAME\"" >/dev/null
fi

echo "postgresql://$DB_USER@127.0.0.1:$PORT/$DB_NAME"

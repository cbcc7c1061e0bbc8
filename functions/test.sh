#!/usr/bin/env bash
# Runs the platform's tests against real services: starts them with localstack/up (idempotent),
# drops the throw-away databases of earlier runs, then tests the functions crates.
# Extra arguments go to `cargo test` (e.g. `functions/test.sh -- --nocapture`).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

localstack/up
# cargo-lambda (PyPI) for the end-to-end test that runs the analyzer binary under
# `cargo lambda watch`; installed once into .local/venv-lambda.
scripts/lambda-tools

# Each integration test creates a database named test_<uuid>; clean up the previous run's.
set -a
# shellcheck disable=SC1091
. localstack/local.env
set +a
PSQL=("$PG_BIN/psql" -h "$ROOT/.local/pgsock" -p "${PG_PORT:-55432}" -U postgres -d postgres -qtA)
if [ "$(id -u)" -eq 0 ]; then PSQL=(runuser -u postgres -- "${PSQL[@]}"); fi
"${PSQL[@]}" -c "SELECT datname FROM pg_database WHERE datname LIKE 'test\_%'" | while read -r db; do
    [ -n "$db" ] && "${PSQL[@]}" -c "DROP DATABASE IF EXISTS \"$db\"" >/dev/null
done

# `--services-only`: start the services and clean up, run no test (the top-level test command
# runs every crate's tests itself).
if [ "${1:-}" = "--services-only" ]; then
    exit 0
fi

# One cargo invocation: test binaries run one after another, so the Postgres outage test
# (local-gateway's `outage` binary) never overlaps another suite.
cargo test --locked -p common -p security -p db -p auth-api -p admin-api -p local-gateway \
    -p storage -p tasks-api -p analyzer -p janitor -p e2e "$@"

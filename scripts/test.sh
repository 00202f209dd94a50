#!/usr/bin/env bash
# Run lint, type checks and the whole suite. Every database test runs on SQLite and on PostgreSQL.
# With CI=true the PostgreSQL pass is required: an unreachable server fails the run.
set -euo pipefail
BIN=${VENV:-.venv}/bin
if [ "${CI:-}" = "true" ] && ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start 2>/dev/null || true
  sleep 2
fi
"$BIN/ruff" check newsletter tests bench
"$BIN/mypy"
"$BIN/python" -m pytest "$@"

#!/usr/bin/env bash
# Run lint, type checks and the whole suite. Every database test runs on SQLite and on PostgreSQL.
# With NEWSLETTER_TEST_REQUIRE_ALL=1 (.ci/run sets it; CI=true implies it) every real part is
# required: an unreachable PostgreSQL, a missing Chromium, Playwright or cryptography, or any
# other skipped test fails the run. Without it, tests whose part is missing are skipped.
set -euo pipefail
BIN=${VENV:-.venv}/bin
if [ "${CI:-}" = "true" ]; then export NEWSLETTER_TEST_REQUIRE_ALL=1; fi
if [ "${NEWSLETTER_TEST_REQUIRE_ALL:-}" = "1" ] && ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null
then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start 2>/dev/null || true
  sleep 2
fi
"$BIN/ruff" check newsletter tests bench
"$BIN/mypy"
# Two processes, one per core; a test file stays in one process (its module fixtures, e.g. one
# Chromium, are set up once). Files go out in collection order, where tests/conftest.py puts
# those with the most tests marked slow first (xdist would otherwise start with the files of
# most tests, leaving the few long ones for the end, on one core). NEWSLETTER_TEST_WORKERS=0
# runs everything in this process.
# The 25 slowest tests are listed at the end, to watch the 15-minute budget of `make test`.
"$BIN/python" -m pytest -n "${NEWSLETTER_TEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder \
  --durations=25 "$@"

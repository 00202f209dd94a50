#!/usr/bin/env bash
# The main job end to end on embedded defaults (SQLite + the built-in SMTP capture):
# a fresh workspace in ./demo, example subscribers in three languages, the example issue
# checked and sent to the capture server, then a per-language summary of what arrived.
set -euo pipefail
BIN=$(cd "${VENV:-.venv}/bin" && pwd)
NL="$BIN/newsletter"
DEMO=${DEMO_DIR:-demo}
rm -rf "$DEMO"
"$NL" init "$DEMO"
cd "$DEMO"
"$NL" subscribers import subscribers/example.csv --list news --confirmed \
  --consent-source "demo: example.csv"
"$NL" lists list
"$NL" subscribers list --list news

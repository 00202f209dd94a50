#!/usr/bin/env bash
# The main job end to end on embedded defaults (SQLite + the built-in SMTP capture):
# a fresh workspace in ./demo, example subscribers in three languages, the example issue
# checked and sent to the capture server, a per-language summary of what arrived, and the
# public archive built from what was sent.
set -euo pipefail
BIN=$(cd "${VENV:-.venv}/bin" && pwd)
NL="$BIN/newsletter"
DEMO=${DEMO_DIR:-demo}
ISSUE=2026-11-coalition-update
PORT=${DEMO_SMTP_PORT:-8025}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

rm -rf "$DEMO"
step "1. a new workspace in ./$DEMO (SQLite database, example lists, issue and subscribers)"
"$NL" init "$DEMO"
cd "$DEMO"
export NEWSLETTER_SMTP_PORT=$PORT NEWSLETTER_CAPTURE_PORT=$PORT

step "2. import subscribers/example.csv (English, French, Spanish)"
"$NL" subscribers import subscribers/example.csv --list news --confirmed \
  --consent-source "demo: example.csv"
"$NL" lists show news

step "3. check the issue in every language"
"$NL" issue check "$ISSUE"

step "4. start the built-in SMTP capture on 127.0.0.1:$PORT"
"$NL" capture serve --quiet > capture.log 2>&1 &
CAPTURE=$!
trap 'kill $CAPTURE 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done

step "5. send the issue: one copy per subscriber, in their language"
"$NL" send "$ISSUE" --yes
"$NL" issue status "$ISSUE"

step "6. what arrived at the capture (./$DEMO/maildir)"
"$NL" capture summary

step "7. the public archive of sent issues (./$DEMO/site)"
"$NL" archive build
echo
echo "Done. Try: cd $DEMO && newsletter serve   (subscribe, preferences and unsubscribe pages)"
echo "           cd $DEMO && newsletter archive serve"

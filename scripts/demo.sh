#!/usr/bin/env bash
# The main job end to end on embedded defaults (SQLite + the built-in SMTP capture):
# a fresh workspace in ./demo, example subscribers in three languages, the example issue
# checked, published and sent to the capture server, a per-language summary of what arrived,
# the public archive, and a check that the pictures of a captured message load from
# `newsletter serve` (the public side, archive under /archive/).
set -euo pipefail
BIN=$(cd "${VENV:-.venv}/bin" && pwd)
NL="$BIN/newsletter"
DEMO=${DEMO_DIR:-demo}
ISSUE=2026-11-coalition-update
STATEMENT=act-now
PORT=${DEMO_SMTP_PORT:-8025}
WEB_PORT=${DEMO_WEB_PORT:-8000}

source "$(dirname "$0")/lib.sh"

rm -rf "$DEMO"
step "1. a new workspace in ./$DEMO (SQLite database, example lists, issue and subscribers)"
"$NL" init "$DEMO"
cd "$DEMO"
export NEWSLETTER_SMTP_PORT=$PORT NEWSLETTER_CAPTURE_PORT=$PORT NEWSLETTER_WEB_PORT=$WEB_PORT
export NEWSLETTER_BASE_URL=http://127.0.0.1:$WEB_PORT

step "2. import subscribers/example.csv (English, French, Spanish)"
"$NL" subscribers import subscribers/example.csv --list news --confirmed \
  --consent-source "demo: example.csv"
"$NL" lists show news

step "3. check the issue and the sign-on statement in every language"
"$NL" issue check "$ISSUE"
"$NL" statement check "$STATEMENT"

step "4. start the built-in SMTP capture on 127.0.0.1:$PORT and the public side on :$WEB_PORT"
"$NL" capture serve --quiet > capture.log 2>&1 &
CAPTURE=$!
"$NL" serve --log-level warning > serve.log 2>&1 &
SERVE=$!
trap 'kill $CAPTURE $SERVE 2>/dev/null || true' EXIT
wait_port "$PORT"
wait_port "$WEB_PORT"

step "5. send the issue: publish its web version and pictures, check they answer, then mail"
"$NL" send "$ISSUE" --yes
"$NL" issue status "$ISSUE"

step "6. what arrived at the capture (./$DEMO/maildir)"
"$NL" capture summary

step "7. the public archive (./$DEMO/site, served at $NEWSLETTER_BASE_URL/archive/)"
"$NL" archive build
for lang in en fr es; do
  page="site/$lang/statements/$STATEMENT/index.html"
  [ -f "$page" ] || { echo "the archive has no $page" >&2; exit 1; }
  echo "statement page: ./$DEMO/$page  ($NEWSLETTER_BASE_URL/archive/$lang/statements/$STATEMENT/)"
done

step "8. the pictures of a captured message, fetched as a mail client would"
"$BIN/python" - <<'PY'
import mailbox
import sys
import urllib.request
from email.header import decode_header, make_header

from newsletter.delivery.livecheck import image_urls

message = next(iter(mailbox.Maildir("maildir", create=False)))
html = next(p for p in message.walk() if p.get_content_type() == "text/html")
urls = image_urls(html.get_payload(decode=True).decode(html.get_content_charset() or "utf-8"))
for url in urls:
    with urllib.request.urlopen(url, timeout=5) as reply:
        kind, size = reply.headers.get_content_type(), len(reply.read())
    if not kind.startswith("image/") or not size:
        sys.exit(f"{url}: {kind}, {size} bytes: the picture does not load")
    print(f"{url}: {kind}, {size} bytes")
if not urls:
    sys.exit("the captured message has no picture")
to = str(make_header(decode_header(message["To"])))
print(f"The {len(urls)} picture(s) of the message to {to} load.")
PY
echo
echo "Done. Try: cd $DEMO && newsletter serve   (subscribe, preferences, unsubscribe, /archive/)"

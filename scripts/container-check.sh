#!/usr/bin/env bash
# Builds docs/deploy/Containerfile and runs its roles against the local PostgreSQL, the way
# docs/operations.md tells an operator to: `migrate` once, `web` serving the workspace,
# `worker` with no workspace sending a detached issue, `bounces` answering SMTP.
# The host keeps the workspace (import, send --detach) and the SMTP capture the worker sends
# to. Needs a running Docker (or `CONTAINER=podman`) daemon and `make install`; not part of
# `make test`. Every container uses the host's network, so 127.0.0.1 is the host.
#   bash scripts/container-check.sh
set -euo pipefail
ENGINE=${CONTAINER:-docker}
BIN=$(cd "${VENV:-.venv}/bin" && pwd)
NL="$BIN/newsletter"
IMAGE=${IMAGE:-newsletter-check}
DB=newsletter_container_check
PGURL=${PGURL:-postgresql://postgres@127.0.0.1:5432}
ISSUE=2026-11-coalition-update
SMTP_PORT=8125 WEB_PORT=8000 BOUNCE_PORT=2525
WORK=$(mktemp -d)
NAMES=()

source "$(dirname "$0")/lib.sh"
cleanup() {
  for name in "${NAMES[@]}"; do "$ENGINE" rm -f "$name" >/dev/null 2>&1 || true; done
  [ -n "${CAPTURE:-}" ] && kill "$CAPTURE" 2>/dev/null || true
  psql "$PGURL/postgres" -qc "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
run() {  # run NAME ROLE...: a detached container of the image on the host's network
  local name=$1; shift
  NAMES+=("$name")
  "$ENGINE" run -d --name "$name" --network host --env-file "$WORK/newsletter.env" \
    -v "$WORK/ws:/srv/newsletter" "$IMAGE" "$@" >/dev/null
}

step "1. build the image from docs/deploy/Containerfile"
"$ENGINE" build -q -f docs/deploy/Containerfile -t "$IMAGE" .

step "2. a fresh database, the env file, a workspace on the host"
psql "$PGURL/postgres" -qc "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
cat > "$WORK/newsletter.env" <<EOF
NEWSLETTER_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/$DB
NEWSLETTER_SECRET_KEY=container-check-secret-0123456789
NEWSLETTER_BASE_URL=http://127.0.0.1:$WEB_PORT
NEWSLETTER_FROM_ADDRESS=news@example.org
NEWSLETTER_SMTP_HOST=127.0.0.1
NEWSLETTER_SMTP_PORT=$SMTP_PORT
NEWSLETTER_LOG_FORMAT=json
EOF
"$NL" init "$WORK/ws" >/dev/null
chmod -R a+rwX "$WORK/ws"
set -a; . "$WORK/newsletter.env"; set +a
export NEWSLETTER_CAPTURE_PORT=$SMTP_PORT NEWSLETTER_WORKSPACE=$WORK/ws

step "3. migrate (the container), then the lists and the subscribers on the host"
"$ENGINE" run --rm --network host --env-file "$WORK/newsletter.env" "$IMAGE" migrate
"$NL" lists sync
"$NL" subscribers import "$WORK/ws/subscribers/example.csv" --list news --confirmed \
  --consent-source "container check"

step "4. web, worker and bounces containers; the SMTP capture on the host"
(cd "$WORK/ws" && exec "$NL" capture serve --quiet > "$WORK/capture.log" 2>&1) &
CAPTURE=$!
run nl-check-web web
run nl-check-worker worker
run nl-check-bounces bounces
wait_port "$SMTP_PORT" 300; wait_port "$WEB_PORT" 300; wait_port "$BOUNCE_PORT" 300
curl -fsS "http://127.0.0.1:$WEB_PORT/subscribe/news" -o /dev/null
echo "web: /subscribe/news answers 200 from the container"
printf 'QUIT\r\n' | timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$BOUNCE_PORT; cat <&3 & cat >&3; wait" \
  | head -1 | grep -q '^220' && echo "bounces: the container's SMTP server greets with 220"

step "5. send --detach on the host; the worker container sends it"
"$NL" send "$ISSUE" --yes --detach
expected=$("$BIN/python" - <<'PY'
from newsletter.config import load_settings
from newsletter.db.engine import make_engine
from sqlalchemy import text
engine = make_engine(load_settings().database_url)
with engine.connect() as conn:
    print(conn.execute(text("SELECT count(*) FROM deliveries")).scalar_one())
PY
)
for _ in $(seq 600); do
  arrived=$(find "$WORK/ws/maildir/new" -type f 2>/dev/null | wc -l)
  [ "$arrived" -ge "$expected" ] && break
  sleep 0.1
done
"$NL" issue status "$ISSUE"
echo "arrived at the capture: $arrived of $expected"
[ "$arrived" -eq "$expected" ] || { "$ENGINE" logs nl-check-worker | tail -20; exit 1; }
"$ENGINE" logs nl-check-worker 2>&1 | head -3
echo "container check: passed"

#!/usr/bin/env bash
# Debian packages the tests and benchmarks need, installed only when missing:
#   postfix  -> smtp-sink / smtp-source (loopback SMTP yardstick)
#   chromium -> real browser for page tests (driven by Playwright, never downloaded)
#   wrk      -> HTTP load generator (only with the argument "bench")
#   spamassassin -> local spam-filter rules run on a composed message
# and npm's axe-core (accessibility checks in Chromium) into .cache/axe/, not into the repo.
set -euo pipefail
need=()
[ -x /usr/sbin/smtp-sink ] || need+=(postfix)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/spamassassin ] || need+=(spamassassin)
if [ "${1:-}" = bench ] && ! command -v wrk >/dev/null; then need+=(wrk); fi
AXE_DIR="$(cd "$(dirname "$0")/.." && pwd)/.cache/axe"
if [ ! -f "$AXE_DIR/node_modules/axe-core/axe.min.js" ] && command -v npm >/dev/null; then
  npm install --no-save --no-audit --no-fund --silent --prefix "$AXE_DIR" axe-core@4
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
echo "installing Debian packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections || true
$SUDO apt-get update -q >/dev/null
$SUDO apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null

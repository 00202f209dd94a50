#!/bin/sh
# The container's entry point: the first argument chooses the role.
#   web      newsletter serve on 0.0.0.0:8000 (the workspace is mounted at /srv/newsletter)
#   worker   newsletter worker (no workspace needed; with `newsletter worker`)
#   bounces  newsletter bounces serve on 0.0.0.0:2525 (map port 25 to it)
#   migrate  newsletter db upgrade, then exit (run once per release, before the others)
#   anything else is passed to `newsletter` as it is: `maintenance --roll-up-after 180d`
set -eu
role="${1:-web}"
[ "$#" -gt 0 ] && shift
case "$role" in
  web)     exec newsletter -w /srv/newsletter serve --host 0.0.0.0 --port 8000 "$@" ;;
  worker)  exec newsletter worker "$@" ;;
  bounces) exec newsletter bounces serve --host 0.0.0.0 --port 2525 "$@" ;;
  migrate) exec newsletter db upgrade "$@" ;;
  *)       exec newsletter "$role" "$@" ;;
esac

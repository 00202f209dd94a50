# Shell helpers shared by scripts/demo.sh and scripts/container-check.sh (sourced, not run).

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

wait_port() {  # wait_port PORT [TRIES]: until something answers on 127.0.0.1:PORT (0.1 s apart)
  for _ in $(seq "${2:-100}"); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing answers on port $1" >&2
  return 1
}

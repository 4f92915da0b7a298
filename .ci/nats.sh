#!/usr/bin/env bash
# Makes sure the NATS on 127.0.0.1:4222 is the project's: JetStream enabled and
# at least the minimum version. CI runs on machines where something may already
# listen there (Debian's nats-server 2.9 as a system service, or a server a
# previous run left): an older one is stopped and the pinned binary from
# .ci/tools.sh is started in its place, with JetStream storing under
# $NATS_STORE_DIR. A current one is left alone.
set -euo pipefail
MIN_VERSION=2.10.0
NATS_BIN="$HOME/go/bin/nats-server"
PORT="${NATS_PORT:-4222}"
STORE_DIR="${NATS_STORE_DIR:-/var/lib/agentmesh-nats}"
LOG_FILE="${NATS_LOG_FILE:-/var/log/agentmesh-nats.log}"
PID_FILE="${NATS_PID_FILE:-/run/agentmesh-nats.pid}"

# The server's version from the INFO line it sends on connect; empty when none answers.
running_version() {
  local info
  info="$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT && read -r line <&3 && echo \"\$line\"" 2>/dev/null || true)"
  [[ "$info" =~ \"version\":\"([0-9.]+)\" ]] && echo "${BASH_REMATCH[1]}"
  return 0
}
jetstream_enabled() {
  local info
  info="$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT && read -r line <&3 && echo \"\$line\"" 2>/dev/null || true)"
  [[ "$info" == *'"jetstream":true'* ]]
}
at_least() { [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" == "$2" ]]; }

version="$(running_version)"
if [[ -n "$version" ]] && at_least "$version" "$MIN_VERSION" && jetstream_enabled; then
  echo "nats: $version already serves 127.0.0.1:$PORT with JetStream"
  exit 0
fi
if [[ -n "$version" ]] || ss -ltnH "sport = :$PORT" | grep -q .; then
  # Only the process that owns the listening socket, by its pid.
  pid="$(ss -ltnpH "sport = :$PORT" | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2)"
  echo "nats: stopping ${version:-an unknown server} (pid ${pid:-?}) on 127.0.0.1:$PORT: older than $MIN_VERSION or without JetStream"
  [[ -n "$pid" ]] && kill "$pid"
  for _ in $(seq 1 50); do
    ss -ltnH "sport = :$PORT" | grep -q . || break
    sleep 0.2
  done
fi
mkdir -p "$STORE_DIR" "$(dirname "$LOG_FILE")" "$(dirname "$PID_FILE")"
setsid "$NATS_BIN" -a 127.0.0.1 -p "$PORT" -js -sd "$STORE_DIR" -l "$LOG_FILE" -P "$PID_FILE" \
  </dev/null >/dev/null 2>&1 &
for _ in $(seq 1 50); do
  version="$(running_version)"
  [[ -n "$version" ]] && break
  sleep 0.2
done
if [[ -z "$version" ]] || ! at_least "$version" "$MIN_VERSION"; then
  echo "nats: the pinned server did not start on 127.0.0.1:$PORT (log: $LOG_FILE)" >&2
  exit 1
fi
echo "nats: $version started on 127.0.0.1:$PORT (JetStream in $STORE_DIR, pid $(cat "$PID_FILE"))"

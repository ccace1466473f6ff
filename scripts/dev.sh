#!/usr/bin/env bash
# The main job: a local development lattice running neongrid on the in-memory key-value
# provider, with a little sample traffic. Runs set-up when needed, builds, `wash up -d`,
# deploys wadm.dev.yaml through wadm, waits for Deployed, then prints where to look.
#
# Environment:
#   NEONGRID_NATS_PORT  NATS port of the lattice (default 4222, wash's default)
#   NEONGRID_HTTP_PORT  port of the API (default 8000, as in wadm.dev.yaml)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
# shellcheck source=scripts/versions.sh
source "$here/versions.sh"
cd "$repo"

MANIFEST=wadm.dev.yaml
APP=neongrid-dev
NATS_PORT="${NEONGRID_NATS_PORT:-4222}"
# The http-server link's `address` in wadm.dev.yaml.
MANIFEST_HTTP_ADDR=127.0.0.1:8000
HTTP_ADDR="127.0.0.1:${NEONGRID_HTTP_PORT:-8000}"
BASE="http://$HTTP_ADDR"
STATE="${XDG_STATE_HOME:-$HOME/.local/state}/neongrid/lattice-$NATS_PORT"

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_until() { # <what> <seconds> <command...>
    local what="$1" secs="$2"
    shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            echo "error: timed out after ${secs}s waiting for $what" >&2
            echo "       host log: $WASH_DOWNLOADS_DIR/wasmcloud.log" >&2
            return 1
        fi
        sleep 0.5
    done
}

echo "==> set-up"
"$here/setup.sh" | sed 's/^/    /'

echo "==> build"
"$here/build.sh" | sed 's/^/    /'

export WASMCLOUD_CTL_PORT="$NATS_PORT" WASMCLOUD_RPC_PORT="$NATS_PORT"
down_cmd="wash down"
if [[ "$NATS_PORT" != 4222 ]]; then
    # wash keeps its pid files in the downloads directory, so a second lattice needs its
    # own, or `wash down` of one would kill the other's nats-server and wadm.
    own="$STATE/downloads"
    mkdir -p "$own/v$HOST_VERSION"
    ln -sf "$WASH_DOWNLOADS_DIR/nats-server" "$WASH_DOWNLOADS_DIR/wadm" "$own/"
    ln -sf "$WASH_DOWNLOADS_DIR/v$HOST_VERSION/wasmcloud_host" "$own/v$HOST_VERSION/"
    export WASH_DOWNLOADS_DIR="$own"
    down_cmd="WASH_DOWNLOADS_DIR=$own wash down --ctl-port $NATS_PORT"
fi

# Refuse to touch someone else's lattice: a second `wash up` on the same port would
# join it, and our deploy would land among their applications.
if port_busy "$NATS_PORT"; then
    cat >&2 <<EOF
error: something is already listening on 127.0.0.1:$NATS_PORT, probably a running lattice.
       Stop it with \`$down_cmd\`, or run a second one on other ports:
           NEONGRID_NATS_PORT=4300 NEONGRID_HTTP_PORT=8300 scripts/dev.sh
EOF
    exit 1
fi
if port_busy "${HTTP_ADDR#*:}"; then
    echo "error: $HTTP_ADDR is already in use; choose the API's port with NEONGRID_HTTP_PORT." >&2
    exit 1
fi

# Our own nats-server config rather than wash's: JetStream state in a directory of ours
# that we empty here (wash's default survives `wash down`, so wadm would resurrect old
# applications), and no websocket listener on 0.0.0.0 (wash's default opens one for its
# UI, which we do not use).
mkdir -p "$STATE"
rm -rf "$STATE/jetstream"
cat >"$STATE/nats.conf" <<EOF
jetstream {
    domain: core
    store_dir: "$STATE/jetstream"
}
EOF

echo "==> wash up (offline: binaries from $WASH_DOWNLOADS_DIR)"
# shellcheck disable=SC2086 # the version flags are meant to split
wash up --detached $WASH_UP_VERSION_FLAGS --nats-host 127.0.0.1 --nats-port "$NATS_PORT" \
    --nats-config-file "$STATE/nats.conf" | sed 's/^/    /'
wait_until "a host to join the lattice" 60 \
    bash -c "wash get hosts --output json | grep -q '\"id\"'"

deploy="$MANIFEST"
if [[ "$HTTP_ADDR" != "$MANIFEST_HTTP_ADDR" ]]; then
    # Same manifest, another listen address; it stays in the repo root so that its
    # relative file:// images still resolve against the host's working directory.
    deploy=".wadm.dev.${HTTP_ADDR##*:}.yaml"
    sed "s/address: $MANIFEST_HTTP_ADDR/address: $HTTP_ADDR/" "$MANIFEST" >"$deploy"
fi
echo "==> wash app deploy $deploy"
wash app deploy "$deploy" | sed 's/^/    /'
app_deployed() {
    wash app status "$APP" --output json | python3 -c \
        'import json, sys; sys.exit(json.load(sys.stdin)["status"]["status"]["type"] != "deployed")'
}
wait_until "$APP to be Deployed" 180 app_deployed
wait_until "the API at $BASE" 60 curl -fsS "$BASE/healthz"

echo "==> sample traffic"
send() {
    printf '    POST /api/devices/%s/readings %s\n      -> ' "$1" "$2"
    curl -sS -H 'content-type: application/json' -d "$2" "$BASE/api/devices/$1/readings"
    echo
}
send thermo-17 '{"metric":"temperature_c","value":21.4}'
send thermo-17 '{"metric":"temperature_c","value":21.9}'
send hygro-3 '{"metric":"humidity_pct","value":41.5}'
printf '    GET /api/devices/thermo-17\n      -> '
curl -sS "$BASE/api/devices/thermo-17"
echo
printf '    POST a bad reading\n      -> '
curl -sS -H 'content-type: application/json' -d '{"metric":"temperature_c","value":"hot"}' \
    -w ' (HTTP %{http_code})' "$BASE/api/devices/thermo-17/readings"
echo

cat <<EOF

neongrid is running: $APP is Deployed on a local lattice (NATS 127.0.0.1:$NATS_PORT).
  API:        $BASE  (try: curl $BASE/api/devices/thermo-17)
  status:     wash app list; wash get inventory
  host log:   $WASH_DOWNLOADS_DIR/wasmcloud.log
  stop:       $down_cmd
EOF

#!/usr/bin/env bash
# The main job: a local development lattice running the neongrid pipeline on in-memory
# key-value providers, with some sample traffic. Runs set-up when needed, builds,
# `wash up -d`, deploys wadm.dev.yaml through wadm, waits for Deployed, sends readings
# through the API (which hands them to ingest over NATS), then prints where to look.
#
# Environment:
#   NEONGRID_NATS_PORT  NATS port of the lattice (default 4222, wash's default)
#   NEONGRID_HTTP_PORT  port of the API (default 8000, as in wadm.dev.yaml)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
# shellcheck source=scripts/versions.sh
source "$here/versions.sh"
# shellcheck source=scripts/lib.sh
source "$here/lib.sh"
cd "$repo"

MANIFEST=wadm.dev.yaml
APP=neongrid
NATS_PORT="${NEONGRID_NATS_PORT:-4222}"
# The http-server link's `address` and the messaging links' `cluster_uris` in wadm.dev.yaml.
MANIFEST_HTTP_ADDR=127.0.0.1:8000
MANIFEST_NATS_URL=nats://127.0.0.1:4222
HTTP_ADDR="127.0.0.1:${NEONGRID_HTTP_PORT:-8000}"
BASE="http://$HTTP_ADDR"
STATE="${XDG_STATE_HOME:-$HOME/.local/state}/neongrid/lattice-$NATS_PORT"

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }


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
# Set here: WASH_DOWNLOADS_DIR may have changed above.
WAIT_HINT="host log: $WASH_DOWNLOADS_DIR/wasmcloud.log"
# shellcheck disable=SC2086 # the version flags are meant to split
wash up --detached $WASH_UP_VERSION_FLAGS --nats-host 127.0.0.1 --nats-port "$NATS_PORT" \
    --nats-config-file "$STATE/nats.conf" | sed 's/^/    /'
wait_until "a host to join the lattice" 60 \
    bash -c "wash get hosts --output json | grep -q '\"id\"'"

deploy="$MANIFEST"
if [[ "$HTTP_ADDR" != "$MANIFEST_HTTP_ADDR" || "$NATS_PORT" != 4222 ]]; then
    # Same manifest, other ports; it stays in the repo root so that its relative
    # file:// images still resolve against the host's working directory.
    deploy=".wadm.dev.${HTTP_ADDR##*:}.$NATS_PORT.yaml"
    sed -e "s|address: $MANIFEST_HTTP_ADDR|address: $HTTP_ADDR|" \
        -e "s|cluster_uris: $MANIFEST_NATS_URL|cluster_uris: nats://127.0.0.1:$NATS_PORT|" \
        "$MANIFEST" >"$deploy"
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
# Ingest subscribes a moment after Deployed; until then a POST answers 503. A reading of
# a metric no rule names is refused by the validator (422), so it stores nothing.
ingest_ready() {
    [[ $(curl -sS -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
        -d '{"id":"probe","device":"probe-1","metric":"no_such_metric","value":0,"ts":"2026-11-20T10:00:00Z"}' \
        "$BASE/api/readings") == 422 ]]
}
wait_until "ingest to take readings" 90 ingest_ready
post() { # <description> <json>
    printf '    POST /api/readings  (%s)\n      -> ' "$1"
    curl -sS -H 'content-type: application/json' -d "$2" -w ' (HTTP %{http_code})' \
        "$BASE/api/readings"
    echo
}
# A day of readings from three devices in one message; ids only need to be unique per
# device, and the lattice starts empty.
batch=$(python3 - <<'PY'
import json, math
readings = []
for hour in range(24):
    ts = f"2026-11-20T{hour:02d}:00:00Z"
    readings.append({"id": f"t-{hour}", "device": "thermo-17", "metric": "temperature_c",
                     "value": round(18 + 6 * math.sin(hour / 24 * 2 * math.pi), 2), "ts": ts})
    readings.append({"id": f"h-{hour}", "device": "hygro-3", "metric": "humidity_pct",
                     "value": round(45 + 15 * math.cos(hour / 24 * 2 * math.pi), 2), "ts": ts})
    if hour % 3 == 0:
        readings.append({"id": f"b-{hour}", "device": "lab.3", "metric": "battery_v",
                         "value": round(3.9 - hour * 0.03, 2), "ts": ts})
print(json.dumps(readings))
PY
)
post "a day of readings from thermo-17, hygro-3 and lab.3" "$batch"
post "out of the alert band: stored, and an alert on neongrid.alerts.thermo-17" \
    '{"id":"t-hot","device":"thermo-17","metric":"temperature_c","value":47.5,"ts":"2026-11-21T00:00:00Z"}'
post "the same reading again: a duplicate, not counted twice" \
    '{"id":"t-hot","device":"thermo-17","metric":"temperature_c","value":47.5,"ts":"2026-11-21T00:00:00Z"}'
post "outside the valid range: 422 with the reason" \
    '{"id":"t-bad","device":"thermo-17","metric":"temperature_c","value":900,"ts":"2026-11-21T00:00:00Z"}'
printf '    GET /api/devices\n      -> '
curl -sS "$BASE/api/devices"
echo

cat <<EOF

neongrid is running: $APP is Deployed on a local lattice (NATS 127.0.0.1:$NATS_PORT).
  dashboard:  $BASE/
  API:        $BASE/api/devices  (try: curl $BASE/api/devices/thermo-17/history?limit=5)
  status:     wash app list; wash get inventory
  host log:   $WASH_DOWNLOADS_DIR/wasmcloud.log
  stop:       $down_cmd
EOF

#!/usr/bin/env bash
# A production-shaped lattice on one machine: three wasmCloud hosts, each in its own
# Linux network namespace with its own address, labelled by role (edge, core, data); a
# NATS cluster of three JetStream servers, one per namespace, joined by routes; wadm,
# Redis and Postgres in the data namespace only; and wadm.yaml deployed onto it.
#
#   scripts/lattice.sh up       set up (after scripts/setup.sh) and deploy wadm.yaml
#   scripts/lattice.sh status   each host, its labels and what it runs
#   scripts/lattice.sh down     stop everything and remove the namespaces and links
#
# Needs root (ip netns) and iproute2. `up` first removes whatever an earlier run left.
# NEONGRID_LATTICE_NO_BUILD=1 skips the build (`up` runs scripts/build.sh otherwise).
#
#   root namespace: bridge ng-br0 10.77.0.1/24
#     ng-edge 10.77.0.11   nats-server, wasmcloud_host (neongrid.edge=true)
#     ng-core 10.77.0.12   nats-server, wasmcloud_host (neongrid.core=true)
#     ng-data 10.77.0.13   nats-server, wasmcloud_host (neongrid.data=true), wadm,
#                          redis-server and postgres on the namespace's own 127.0.0.1
#
# Each host talks to the NATS server of its own namespace on 127.0.0.1:4222, so the
# manifest's `cluster_uris: nats://127.0.0.1:4222` means "the local server" on every
# host, as it would on separate machines.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
# shellcheck source=scripts/versions.sh
source "$here/versions.sh"
# shellcheck source=scripts/lib.sh
source "$here/lib.sh"
cd "$repo"

ROLES=(edge core data)
declare -A ADDR=([edge]=10.77.0.11 [core]=10.77.0.12 [data]=10.77.0.13)
BRIDGE=ng-br0
BRIDGE_ADDR=10.77.0.1
PREFIX_LEN=24
LATTICE=neongrid
NATS_PORT=4222
CLUSTER_PORT=6222
# Under /run: it lives as long as the namespaces (until reboot), and the postgres user,
# which runs the database, can reach it (root's home is private).
STATE="${NEONGRID_LATTICE_STATE:-/run/neongrid-lattice}"
WAIT_HINT="logs: $STATE/*/"
MANIFEST=wadm.yaml
APP=neongrid

ns() { echo "ng-$1"; }
in_ns() { local role="$1"; shift; ip netns exec "$(ns "$role")" "$@"; }
# start_in <role> <log> <command...>: starts a daemon in the role's namespace, in its own
# session, detached from this script (a simple command, so no shell lingers as parent).
start_in() {
    local role="$1" log="$2"
    shift 2
    setsid ip netns exec "$(ns "$role")" "$@" >"$log" 2>&1 </dev/null &
}
say() { printf '==> %s\n' "$*"; }

require_root() {
    if [[ "$(id -u)" != 0 ]]; then
        echo "error: network namespaces need root; run with sudo" >&2
        exit 1
    fi
    command -v ip >/dev/null || { echo "error: ip (iproute2) is missing: apt-get install iproute2" >&2; exit 1; }
}


# Kills every process running inside our namespaces, then removes namespaces and links.
teardown() {
    for role in "${ROLES[@]}"; do
        local name
        name="$(ns "$role")"
        if ip netns list | grep -qw "$name"; then
            local pids
            pids="$(ip netns pids "$name" 2>/dev/null || true)"
            if [[ -n "$pids" ]]; then
                # shellcheck disable=SC2086
                kill -TERM $pids 2>/dev/null || true
                for _ in $(seq 1 40); do
                    [[ -z "$(ip netns pids "$name" 2>/dev/null)" ]] && break
                    sleep 0.25
                done
                pids="$(ip netns pids "$name" 2>/dev/null || true)"
                # shellcheck disable=SC2086
                [[ -n "$pids" ]] && kill -KILL $pids 2>/dev/null || true
            fi
            ip netns delete "$name"
        fi
        ip link delete "ng-$role-h" 2>/dev/null || true
    done
    ip link delete "$BRIDGE" 2>/dev/null || true
}

network_up() {
    ip link add "$BRIDGE" type bridge
    ip addr add "$BRIDGE_ADDR/$PREFIX_LEN" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    for role in "${ROLES[@]}"; do
        local name
        name="$(ns "$role")"
        ip netns add "$name"
        ip link add "ng-$role-h" type veth peer name eth0 netns "$name"
        ip link set "ng-$role-h" master "$BRIDGE" up
        in_ns "$role" ip addr add "${ADDR[$role]}/$PREFIX_LEN" dev eth0
        in_ns "$role" ip link set eth0 up
        in_ns "$role" ip link set lo up
    done
}

nats_up() {
    local routes=() role
    for role in "${ROLES[@]}"; do routes+=("nats://${ADDR[$role]}:$CLUSTER_PORT"); done
    for role in "${ROLES[@]}"; do
        local dir="$STATE/$role"
        mkdir -p "$dir"
        cat >"$dir/nats.conf" <<EOF
server_name: ng-$role
listen: 0.0.0.0:$NATS_PORT
http: 127.0.0.1:8222
jetstream {
    store_dir: "$dir/jetstream"
}
cluster {
    name: $LATTICE
    listen: ${ADDR[$role]}:$CLUSTER_PORT
    routes: [$(IFS=,; echo "${routes[*]}")]
}
EOF
        start_in "$role" "$dir/nats.log" "$WASH_DOWNLOADS_DIR/nats-server" -c "$dir/nats.conf"
    done
    for role in "${ROLES[@]}"; do
        wait_until "NATS on $(ns "$role")" 30 in_ns "$role" bash -c "exec 3<>/dev/tcp/127.0.0.1/$NATS_PORT"
    done
    # JetStream answers once the cluster has elected a meta leader over the routes.
    for role in "${ROLES[@]}"; do
        wait_until "JetStream on $(ns "$role")" 60 \
            in_ns "$role" curl -fsS 'http://127.0.0.1:8222/healthz?js-enabled-only=true'
    done
}

databases_up() {
    local dir="$STATE/data"
    start_in data "$dir/redis.log" redis-server --bind 127.0.0.1 --port 6379 --save '' \
        --appendonly no --dir "$dir"
    local pg_bin
    pg_bin="$(dirname "$(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -1)")"
    mkdir -p "$dir/pg" "$dir/pg-socket"
    chown postgres "$dir/pg" "$dir/pg-socket"
    runuser -u postgres -- "$pg_bin/initdb" -D "$dir/pg/data" -U neongrid --auth=trust \
        --encoding UTF8 --locale C --no-sync >"$dir/initdb.log" 2>&1
    start_in data "$dir/postgres.log" runuser -u postgres -- "$pg_bin/postgres" \
        -D "$dir/pg/data" -p 5432 -c listen_addresses=127.0.0.1 -k "$dir/pg-socket"
    wait_until "Redis in ng-data" 30 in_ns data redis-cli -p 6379 ping
    wait_until "Postgres in ng-data" 60 in_ns data "$pg_bin/pg_isready" -h 127.0.0.1 -p 5432 -U neongrid
    in_ns data runuser -u postgres -- "$pg_bin/createdb" -h 127.0.0.1 -U neongrid neongrid
}

hosts_up() {
    local role
    for role in "${ROLES[@]}"; do
        local dir="$STATE/$role"
        # Hosts run from the repository root (the script's working directory), so the
        # manifest's file:// images resolve; every namespace sees the same filesystem.
        start_in "$role" "$dir/wasmcloud.log" env \
            WASMCLOUD_LATTICE="$LATTICE" \
            WASMCLOUD_CTL_HOST=127.0.0.1 WASMCLOUD_RPC_HOST=127.0.0.1 \
            WASMCLOUD_ALLOW_FILE_LOAD=true \
            WASMCLOUD_EXPERIMENTAL_FEATURES="$WASMCLOUD_EXPERIMENTAL_FEATURES" \
            "WASMCLOUD_LABEL_neongrid.$role=true" \
            TMPDIR="$dir" \
            "$WASH_DOWNLOADS_DIR/v$HOST_VERSION/wasmcloud_host"
    done
    start_in data "$STATE/data/wadm.log" env WADM_NATS_SERVER="127.0.0.1:$NATS_PORT" \
        "$WASH_DOWNLOADS_DIR/wadm"
    wait_until "three hosts in lattice $LATTICE" 90 host_count_is 3
}

host_count_is() {
    [[ "$(wash get hosts --lattice "$LATTICE" --ctl-host "${ADDR[data]}" --ctl-port "$NATS_PORT" \
        --output json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["hosts"]))')" == "$1" ]]
}

deploy() {
    say "wash app deploy $MANIFEST"
    wash app deploy "$MANIFEST" --lattice "$LATTICE" --ctl-host "${ADDR[data]}" \
        --ctl-port "$NATS_PORT" | sed 's/^/    /'
    wait_until "$APP to be Deployed" 180 bash -c \
        "wash app status $APP --lattice $LATTICE --ctl-host ${ADDR[data]} --ctl-port $NATS_PORT --output json \
         | python3 -c 'import json,sys; sys.exit(json.load(sys.stdin)[\"status\"][\"status\"][\"type\"] != \"deployed\")'"
}

status() {
    wash get inventory --lattice "$LATTICE" --ctl-host "${ADDR[data]}" --ctl-port "$NATS_PORT" \
        --output json | python3 -c "$(cat <<'PY'
import json, sys
for inv in json.load(sys.stdin)["inventories"]:
    labels = ", ".join(f"{k}={v}" for k, v in sorted(inv["labels"].items()) if k.startswith("neongrid."))
    print(f"host {inv['host_id'][:12]}  {labels}")
    for c in inv["components"]:
        print(f"    component {c['id']:<24} {c['image_ref']}")
    for p in inv["providers"]:
        print(f"    provider  {p['id']:<24} {p.get('image_ref') or ''}")
PY
)"
}

case "${1:-}" in
up)
    require_root
    # The e2e test has built already (under its own cargo environment, which would make
    # cargo rebuild everything here): it sets NEONGRID_LATTICE_NO_BUILD=1.
    if [[ "${NEONGRID_LATTICE_NO_BUILD:-0}" != 1 ]]; then
        say "build"
        "$here/build.sh" >/dev/null
    fi
    say "removing anything an earlier run left"
    teardown
    rm -rf "$STATE"
    mkdir -p "$STATE"
    say "network: bridge $BRIDGE, namespaces $(printf 'ng-%s ' "${ROLES[@]}")"
    network_up
    say "NATS cluster: one JetStream server per namespace"
    nats_up
    say "Redis and Postgres in ng-data"
    databases_up
    say "hosts (edge, core, data) and wadm"
    hosts_up
    deploy
    status
    ;;
status)
    require_root
    status
    ;;
down)
    require_root
    say "stopping everything in the namespaces and removing them"
    teardown
    echo "    done"
    ;;
*)
    echo "usage: scripts/lattice.sh up|status|down" >&2
    exit 2
    ;;
esac

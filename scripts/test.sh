#!/usr/bin/env bash
# Runs every test: set-up (skipped where done), a build of the deployable artifacts, the
# lint gates, then the unit tests and the end-to-end tests on real lattices.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
cd "$repo"

t0=$SECONDS
echo "==> set-up"
"$here/setup.sh"
echo "==> build"
"$here/build.sh"
echo "==> cargo fmt --check, cargo clippy"
cargo fmt --all -- --check
cargo fmt --all --manifest-path tools/Cargo.toml -- --check
cargo clippy --quiet --workspace --all-targets -- -D warnings
echo "==> cargo test (unit and end-to-end)"
cargo test --workspace
echo "==> all tests passed in $((SECONDS - t0))s"

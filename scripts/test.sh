#!/usr/bin/env bash
# Runs every test: set-up (skipped where done), a build of the deployable artifacts, the
# lint gates, then the unit tests and the end-to-end tests on real lattices.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
cd "$repo"

# The e2e tests tear their lattices down themselves, even when they fail; a test process
# that is killed (a timeout, Ctrl-C) cannot, so sweep up anything that still carries the
# marker every e2e lattice process inherits.
sweep_e2e_processes() {
    local env pid
    for env in /proc/[0-9]*/environ; do
        pid="${env#/proc/}"
        pid="${pid%/environ}"
        if tr '\0' '\n' <"$env" 2>/dev/null | grep -q '^NEONGRID_E2E_LATTICE='; then
            kill -9 "$pid" 2>/dev/null || true
        fi
    done
}
trap sweep_e2e_processes EXIT

t0=$SECONDS
echo "==> set-up"
"$here/setup.sh"
echo "==> build"
"$here/build.sh"
echo "==> cargo fmt --check, cargo clippy"
cargo fmt --all -- --check
cargo fmt --all --manifest-path tools/Cargo.toml -- --check
cargo clippy --quiet --workspace --all-targets -- -D warnings
echo "==> cargo test (unit and conformance)"
cargo test --workspace --exclude neongrid-e2e
echo "==> cargo test (end-to-end, real lattices)"
# Known issue: about one run in five, a request to a freshly deployed app never gets an
# answer from the host (cause not yet found; see the README). A hang must not eat CI's
# time, so the e2e tests run under a deadline; a run that fails or hangs is retried once
# after sweeping its processes, and a second failure fails the build.
run_e2e() { timeout 600 cargo test -p neongrid-e2e; }
if ! run_e2e; then
    echo "==> end-to-end run failed or hung; sweeping its lattice and retrying once"
    sweep_e2e_processes
    run_e2e
fi
echo "==> all tests passed in $((SECONDS - t0))s"

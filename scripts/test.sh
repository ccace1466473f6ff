#!/usr/bin/env bash
# Runs every test: set-up (skipped where done), a build of the deployable artifacts, the
# lint gates, then the unit tests and the end-to-end tests on real lattices.
# `scripts/test.sh --stress` runs the end-to-end tests with one core kept busy.
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
        # Processes come and go while we look; the redirect of one that just exited fails.
        if { tr '\0' '\n' <"$env"; } 2>/dev/null | grep -q '^NEONGRID_E2E_LATTICE='; then
            kill -9 "$pid" 2>/dev/null || true
        fi
    done
}
# --stress: the end-to-end tests run beside a process that keeps one core busy, as on a
# machine a third as fast, so that a race between configuration and calls that a fast
# machine hides shows here before it shows in CI.
stress=0
for arg in "$@"; do
    case "$arg" in
        --stress) stress=1 ;;
        *) echo "usage: scripts/test.sh [--stress]" >&2; exit 2 ;;
    esac
done
burner=""
stop_burner() {
    if [[ -n "$burner" ]]; then
        kill "$burner" 2>/dev/null || true
        wait "$burner" 2>/dev/null || true
        burner=""
    fi
}
trap 'stop_burner; sweep_e2e_processes' EXIT

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
# Every request in the e2e tests has its own timeout; the deadline is the backstop, so a
# process that hangs fails the build in minutes instead of eating CI's time.
deadline=900
if [[ "$stress" == 1 ]]; then
    # Built first, so that the busy core slows the tests, not the compiler.
    cargo test -p neongrid-e2e --no-run --quiet
    # One busy loop at normal priority takes a core from everything the tests start.
    bash -c 'while :; do :; done' &
    burner=$!
    deadline=1800
    echo "    under CPU pressure: pid $burner keeps one core busy; deadline ${deadline}s"
fi
timeout "$deadline" cargo test -p neongrid-e2e
stop_burner
echo "==> all tests passed in $((SECONDS - t0))s"

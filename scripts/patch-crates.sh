#!/usr/bin/env bash
# Materialises the crates.io crates neongrid builds with a fix applied, into
# third_party/<crate>-<version>:
#   wrpc-transport-nats 0.29.0  host and providers: replies lost to a race (calls hung)
#   wasmcloud-runtime 0.12.0    host: key-value errors trapped the component
#   wasmcloud-core 0.21.1       host: one provider image started twice failed (ETXTBSY)
#   wadm 0.21.1                 wadm: a component spreadscaler used only one matching host
#   wasmcloud-host 0.27.1       host: a link put while a provider started never reached it
# The cargo workspaces point `[patch.crates-io]` at those directories, so this must run
# before any cargo command; scripts/setup.sh runs it first. Why each fix is needed, and why
# it is not an upgrade: third_party/README.md.
#
# Idempotent: an up-to-date copy is left alone. Each crate comes from crates.io (through
# cargo, so a registry mirror configured for cargo is honoured) and must match the
# checksum the lock files pinned before the patch.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
cargo_home="${CARGO_HOME:-$HOME/.cargo}"

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

# patch_crate_diff NAME VERSION SHA256: unpacks the crate and applies
# third_party/NAME-VERSION.diff to it with `patch`. The diff's own hash names the edit, so
# a changed diff redoes the copy.
patch_crate_diff() {
    local name="$1" version="$2" sha="$3"
    local diff="$repo/third_party/$name-$version.diff"
    local id
    id="diff-$(sha256sum "$diff" | cut -d' ' -f1)"
    patch_crate "$name" "$version" "$sha" "$id" "
import subprocess, sys
subprocess.run(['patch', '--quiet', '--forward', '-p1', '-d', sys.argv[1], '-i', '$diff'], check=True)
"
}

# patch_crate NAME VERSION SHA256 PATCH_ID EDIT: unpacks the crate and runs the Python
# program EDIT with the crate directory as its argument. PATCH_ID names the edit; change
# it whenever EDIT changes, so existing copies are redone.
patch_crate() {
    local name="$1" version="$2" sha="$3" id="$4" edit="$5"
    local dest="$repo/third_party/$name-$version"
    local stamp="$dest/.neongrid-patch"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$id $sha" ]]; then
        return 0
    fi
    local archive actual
    archive="$(fetch_crate "$name" "$version")"
    actual="$(sha256sum "$archive" | cut -d' ' -f1)"
    if [[ "$actual" != "$sha" ]]; then
        echo "error: $archive has sha256 $actual, expected $sha" >&2
        return 1
    fi
    rm -rf "$dest"
    mkdir -p "$repo/third_party"
    tar -xzf "$archive" -C "$repo/third_party"
    python3 -c "$edit" "$dest"
    echo "$id $sha" >"$stamp"
    echo "    patched $name $version into ${dest#"$repo/"}"
}

# The transport's single demultiplexing task must apply queued subscribe commands before
# it routes incoming messages. Unbiased, `select!` sometimes routes a reply first, finds
# no subscriber, drops it, and the wRPC call waits forever.
patch_crate wrpc-transport-nats 0.29.0 \
    19310c1e0d7f2b8cc25bc700d3c4ab6b58c97cfe70fa490013a6a2d18de8a0a8 biased-demux-1 '
import sys
path = sys.argv[1] + "/src/lib.rs"
src = open(path).read()
msg = "Some(msg) = sub.next() => handle_message(&mut subs, msg).await,"
cmd = "Some(cmd) = cmd_rx.recv() => handle_command(&mut subs, cmd),"
indent = " " * 24
old = f"{indent}{msg}\n{indent}{cmd}\n"
new = f"{indent}biased;\n{indent}{cmd}\n{indent}{msg}\n"
if src.count(old) != 1:
    sys.exit(f"error: {path}: the demultiplexer select! is not where the patch expects it")
open(path, "w").write(src.replace(old, new))
'

# The host returned a provider's key-value error to the component as a value only for
# `get` and `increment`; for every other operation it trapped the component instead. The
# interface has an error result for each of them, so hand it over as one. The same goes
# for a call that failed in transit (a provider that died mid-call, or is restarting):
# the component gets an error it can retry instead of a trap that ends its invocation.
patch_crate wasmcloud-runtime 0.12.0 \
    f09f94956e3725b8fbf7539cec5523f694943ea4b9e88eba6945c6ce047e83b9 keyvalue-errors-2 '
import sys
path = sys.argv[1] + "/src/component/keyvalue.rs"
src = open(path).read()
old = "Err(err) => Err(err.into()),"
# set, delete, exists, get-many, set-many, delete-many, list-keys
if src.count(old) != 7:
    sys.exit(f"error: {path}: expected 7 trapping error arms, found {src.count(old)}")
src = src.replace(old, "Err(err) => Ok(Err(err.into())),")
call = ".await?\n        {\n"
# increment, get-many, set-many, delete-many, get, set, delete, exists, list-keys
if src.count(call) != 9:
    sys.exit(f"error: {path}: expected 9 wRPC calls, found {src.count(call)}")
src = src.replace(call, ".await\n        .unwrap_or_else(transport_failure)\n        {\n")
src += """
// neongrid patch (third_party/README.md): a wRPC call that failed in transit becomes the
// interface error `other`, for the component to handle, instead of a trap.
fn transport_failure<T>(
    err: anyhow::Error,
) -> core::result::Result<T, wrpc::wrpc::keyvalue::store::Error> {
    Err(wrpc::wrpc::keyvalue::store::Error::Other(format!(
        "key-value call failed in transit: {err:#}"
    )))
}
"""
open(path, "w").write(src)
'

# The host unpacks a provider from a file:// archive into a cache path named after the
# reference, and rewrote that file in place on every start. Starting the same image as a
# second provider (two links' stores on one host) opened the binary the first provider
# was running for writing: "Text file busy", and wadm reported the deployment failed.
# Write a private file and rename it into place instead; a running process keeps its
# old inode.
patch_crate wasmcloud-core 0.21.1 \
    f42d36f96473fe4f14c4d53265307f91d904bce355c3fa4560139c1d2853ee2e atomic-par-cache-1 '
import sys
path = sys.argv[1] + "/src/par.rs"
src = open(path).read()
old = """    let new_file = create(&exe).await?;
    let mut file = match (cache, new_file) {
        (UseParFileCache::Use, None) => {
            return Ok((exe, claims));
        }
        (UseParFileCache::Ignore, None) => open_file(&exe)
            .await?
            .with_context(|| format!("failed to open file [{}]", exe.display()))?,
        (UseParFileCache::Use, Some(file)) | (UseParFileCache::Ignore, Some(file)) => file,
    };

    let target = native_target();
    let buf = par
        .target_bytes(&target)
        .with_context(|| format!("target `{target}` not found"))?;
    file.write_all(&buf).await.context("failed to write")?;
    file.flush().await.context("failed to flush")?;

    Ok((exe, claims))"""
new = """    if matches!(cache, UseParFileCache::Use) && fs::metadata(&exe).await.is_ok() {
        return Ok((exe, claims));
    }
    let dir = exe.parent().context("failed to determine parent path")?;
    fs::create_dir_all(dir)
        .await
        .context("failed to create parent directory")?;
    // neongrid patch (third_party/README.md): never open a cached binary that a running
    // provider may be executing; write a private file and rename it into place.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let partial = exe.with_extension(format!("partial-{}-{n}", std::process::id()));
    let mut file = open_file(&partial)
        .await?
        .with_context(|| format!("failed to open file [{}]", partial.display()))?;

    let target = native_target();
    let buf = par
        .target_bytes(&target)
        .with_context(|| format!("target `{target}` not found"))?;
    file.write_all(&buf).await.context("failed to write")?;
    file.flush().await.context("failed to flush")?;
    drop(file);
    fs::rename(&partial, &exe)
        .await
        .with_context(|| format!("failed to move provider into [{}]", exe.display()))?;

    Ok((exe, claims))"""
if src.count(old) != 1:
    sys.exit(f"error: {path}: the provider cache write is not where the patch expects it")
open(path, "w").write(src.replace(old, new))
'

# A component spreadscaler started a spread's whole instance count on the first matching
# host a hash map yielded, and never looked at the others: a second edge host stayed idle,
# and one that came back after a failure got nothing. Share each spread's instances out
# over all its matching hosts instead, in host id order, and move shares when hosts come
# and go. The other scalers (daemonscaler, provider spreadscaler) are untouched.
patch_crate wadm 0.21.1 \
    815f6a947d5d2add77a4ea6eb8a131e5a73bfb6e4eec61b8055632ec72ed82ae spread-over-hosts-1 '
import sys
path = sys.argv[1] + "/src/scaler/spreadscaler/mod.rs"
src = open(path).read()
start = "                    // Here we\x27ll generate commands for the proper host"
end = "                            Some(commands)\n                        }\n                    }\n"
a = src.find(start)
b = src.find(end, a)
if a < 0 or b < 0 or src.count(start) != 1:
    sys.exit(f"error: {path}: the component spread computation is not where the patch expects it")
new = """                    // neongrid patch (third_party/README.md): every matching host gets an
                    // equal share of the spread (the first hosts in id order one more when
                    // it does not divide), and a host whose count differs is scaled to its
                    // share, down to 0 for a surplus host. One command per host, each with
                    // the count that host should run, so the spread adds up to `count`.
                    let mut order: Vec<&String> = eligible_hosts.keys().copied().collect();
                    order.sort();
                    let share = *count / order.len();
                    let extra = *count % order.len();
                    let commands: Vec<Command> = order
                        .iter()
                        .enumerate()
                        .filter_map(|(index, host_id)| {
                            let want = share + usize::from(index < extra);
                            let have = running_components_per_host.get(host_id).copied().unwrap_or(0);
                            (want != have).then(|| {
                                Command::ScaleComponent(ScaleComponent {
                                    component_id: component_id.to_owned(),
                                    reference: self.spread_config.component_reference.to_owned(),
                                    host_id: host_id.to_string(),
                                    count: want as u32,
                                    model_name: self.spread_config.model_name.to_owned(),
                                    annotations: spreadscaler_annotations(&spread.name, self.id()),
                                    config: self.config.clone(),
                                })
                            })
                        })
                        .collect();
                    (!commands.is_empty()).then_some(commands)
"""
src = src[:a] + new + src[b + len(end):]
open(path, "w").write(src)
'

# A link put for a provider that the host had started but whose process had not yet
# subscribed went nowhere, and the host never sent it again: the provider served that
# component's calls as from an unknown link for good. Send link puts as requests and
# again while "no responders" says nobody listens, and put links into the host's map
# before looking up the running providers.
patch_crate_diff wasmcloud-host 0.27.1 \
    6edaf1f51d0b9ec8b799a6d64fce474eb6cf299be3e1ca2e296dfc3c385b8a36

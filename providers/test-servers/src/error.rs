use std::path::Path;

/// Why a test server could not be started or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestServerError {
    /// The server binary is not installed where the search looked.
    #[error("{program} not found ({searched}); {hint}")]
    NotFound {
        program: &'static str,
        searched: String,
        hint: &'static str,
    },

    /// A system call or file operation failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },

    /// The operating-system user a server must run as does not exist.
    #[error(
        "running as root, and Postgres refuses to run as root, but there is no {user:?} \
         user to run it as (installing the postgresql package creates one)"
    )]
    NoUser { user: &'static str },

    /// A command or server process failed; the log says why.
    #[error("{what}; its output ends with:\n{log_tail}")]
    Failed { what: String, log_tail: String },

    /// The server did not become ready in time.
    #[error("{what} was not ready after {seconds} s; its log ends with:\n{log_tail}")]
    NotReady {
        what: String,
        seconds: u64,
        log_tail: String,
    },

    /// A call that needs the server running found it stopped, or the reverse.
    #[error("{0}")]
    State(String),
}

impl TestServerError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}

/// Result of a test-server operation.
pub type TestServerResult<T> = Result<T, TestServerError>;

/// The last lines of a log file, for error messages.
pub(crate) fn log_tail(path: &Path) -> String {
    const LINES: usize = 20;
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(LINES)..].join("\n")
        }
        Err(err) => format!("(cannot read {}: {err})", path.display()),
    }
}

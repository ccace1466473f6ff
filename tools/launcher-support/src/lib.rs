//! What the `wasmcloud_host` and `wadm` launchers both need around the library they run.

use std::io::IsTerminal;

use anyhow::{Context, Result};
use tokio::signal::unix::{signal, SignalKind};
use tracing_subscriber::EnvFilter;

/// Logs to stderr, where wash collects them into the process's log file.
///
/// `RUST_LOG`, when set, wins over `default_level`, so one noisy module can be silenced
/// without a rebuild. Colour codes only when stderr is a terminal: in a log file they are
/// noise.
pub fn init_logging(default_level: &str, structured: bool) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if structured {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Resolves when the process is asked to stop (SIGTERM, as `wash down` and service
/// managers send, or Ctrl-C), naming the signal.
pub async fn terminated() -> Result<&'static str> {
    let mut sigterm = signal(SignalKind::terminate()).context("failed to listen for SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => { r.context("failed to listen for Ctrl-C")?; Ok("Ctrl-C") }
        _ = sigterm.recv() => Ok("SIGTERM"),
    }
}

//! `wadm`: the wasmCloud application deployment manager as an executable, with wadm's own
//! flags and environment variables (`WadmConfig` is its clap definition).
//!
//! wash checks `wadm --version` against the version it wants before using a binary it
//! finds on disk, so the output must be exactly `wadm <version>`.

use std::io::IsTerminal;

use anyhow::{Context, Result};
use clap::Parser;
use tracing_subscriber::EnvFilter;
use wadm::config::WadmConfig;

#[derive(Debug, Parser)]
#[command(name = "wadm", version, about)]
struct Args {
    #[command(flatten)]
    config: WadmConfig,
}

async fn terminated() -> Result<&'static str> {
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("failed to listen for SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => { r.context("failed to listen for Ctrl-C")?; Ok("Ctrl-C") }
        _ = sigterm.recv() => Ok("SIGTERM"),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let Args { config } = Args::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // wash sends wadm's stderr to a log file, where colour codes are only noise.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if config.structured_logging {
        builder.json().init();
    } else {
        builder.init();
    }

    let mut tasks = wadm::start_wadm(config)
        .await
        .context("failed to start wadm")?;
    tokio::select! {
        // Any worker finishing means wadm can no longer do its job: exit so that the
        // supervisor (wash, or a test) notices instead of running half a wadm.
        done = tasks.join_next() => {
            match done {
                Some(Ok(Ok(()))) | None => tracing::warn!("a wadm task exited"),
                Some(Ok(Err(e))) => return Err(e.context("a wadm task failed")),
                Some(Err(e)) => return Err(anyhow::Error::new(e).context("a wadm task panicked")),
            }
        }
        signal = terminated() => tracing::info!("received {}, shutting down", signal?),
    }
    tasks.shutdown().await;
    Ok(())
}

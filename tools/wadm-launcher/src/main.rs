//! `wadm`: the wasmCloud application deployment manager as an executable, with wadm's own
//! flags and environment variables (`WadmConfig` is its clap definition).
//!
//! wash checks `wadm --version` against the version it wants before using a binary it
//! finds on disk, so the output must be exactly `wadm <version>`.

use anyhow::{Context, Result};
use clap::Parser;
use wadm::config::WadmConfig;

#[derive(Debug, Parser)]
#[command(name = "wadm", version, about)]
struct Args {
    #[command(flatten)]
    config: WadmConfig,
}

#[tokio::main]
async fn main() -> Result<()> {
    let Args { config } = Args::parse();
    launcher_support::init_logging("info", config.structured_logging);

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
        signal = launcher_support::terminated() => tracing::info!("received {}, shutting down", signal?),
    }
    tasks.shutdown().await;
    Ok(())
}

//! `neongrid-loadgen`: publishes readings and reports the accepted rate and latencies.
//!
//! ```text
//! neongrid-loadgen [--nats URL[,URL...]] [--api URL] [--rate N] [--concurrency N]
//!                  [--duration SECONDS] [--devices N] [--prefix ID] [--quiet]
//! ```
//!
//! Several NATS URLs spread the readings round robin over one connection to each.
//! Progress goes to stderr every second; the report is one JSON object on stdout.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use neongrid_loadgen::{run, Config};

const USAGE: &str = "usage: neongrid-loadgen [--nats URL[,URL...]] [--api URL] [--rate N] \
[--concurrency N] [--duration SECONDS] [--devices N] [--prefix ID] [--quiet]";

fn main() -> Result<()> {
    let config = parse(std::env::args().skip(1))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(run(&config))?;
    eprintln!(
        "{} sent, {} accepted ({:.0}/s), {} failed, {} stored; reply p50 {:.1} ms p99 {:.1} ms; \
         visible in the API p50 {:.1} ms p99 {:.1} ms",
        report.sent,
        report.accepted,
        report.accepted_per_second,
        report.failed,
        report.stored,
        report.reply_ms.p50,
        report.reply_ms.p99,
        report.end_to_end_ms.p50,
        report.end_to_end_ms.p99
    );
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Config> {
    let run_id = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let mut config = Config {
        nats_urls: vec!["nats://127.0.0.1:4222".into()],
        api_url: "http://127.0.0.1:8000".into(),
        rate: 100,
        concurrency: 32,
        duration: Duration::from_secs(10),
        devices: 10,
        device_prefix: format!("lg-{run_id}"),
        progress: true,
    };
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))
        };
        let number = |text: String| -> Result<u64> {
            text.parse()
                .with_context(|| format!("{flag} {text:?}: expected a whole number\n{USAGE}"))
        };
        match flag.as_str() {
            "--nats" => {
                config.nats_urls = value()?
                    .split(',')
                    .filter(|url| !url.is_empty())
                    .map(str::to_owned)
                    .collect()
            }
            "--api" => config.api_url = value()?.trim_end_matches('/').to_owned(),
            "--rate" => config.rate = u32::try_from(number(value()?)?)?,
            "--concurrency" => config.concurrency = usize::try_from(number(value()?)?)?,
            "--duration" => config.duration = Duration::from_secs(number(value()?)?),
            "--devices" => config.devices = usize::try_from(number(value()?)?)?,
            "--prefix" => config.device_prefix = value()?,
            "--quiet" => config.progress = false,
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Ok(config)
}

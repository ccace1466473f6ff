//! `wasmcloud_host`: the wasmCloud host as an executable, configured the way `wash up`
//! configures it, through `WASMCLOUD_*` environment variables (every one also has a flag).
//!
//! wash normally downloads this binary from GitHub; building it from the `wasmcloud-host`
//! crate lets a lattice come up with no network beyond the package registries.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use nkeys::{KeyPair, KeyPairType};
use tokio::time::Instant;
use wasmcloud_host::url::Url;
use wasmcloud_host::wasmbus::{Features, Host, HostConfig};
use wasmcloud_host::OciConfig;

/// How long the host may take to stop when the stop names no deadline (a signal, or a
/// stop command without a timeout). The host flushes its NATS clients last, and `wash down`
/// stops the NATS server as soon as the hosts have acknowledged the stop; a flush on a
/// connection that can no longer reconnect never completes, so without a bound the host
/// outlives its lattice.
const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the runtime waits, once the host is gone, for blocking tasks still running.
const RUNTIME_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(1);

/// Host labels come from every `WASMCLOUD_LABEL_<key>=<value>` variable, as wash sets them.
const LABEL_ENV_PREFIX: &str = "WASMCLOUD_LABEL_";

#[derive(Debug, Parser)]
#[command(name = "wasmcloud_host", version, about)]
struct Args {
    /// Lattice this host joins.
    #[arg(long, env = "WASMCLOUD_LATTICE", default_value = "default")]
    lattice: String,

    /// Seed (nkey) for the host's server key; a new key is generated when absent.
    #[arg(long, env = "WASMCLOUD_HOST_SEED", hide_env_values = true)]
    host_seed: Option<String>,

    /// Host of the NATS server used for the control interface.
    #[arg(long, env = "WASMCLOUD_CTL_HOST", default_value = "127.0.0.1")]
    ctl_host: String,
    #[arg(long, env = "WASMCLOUD_CTL_PORT", default_value_t = 4222)]
    ctl_port: u16,
    #[arg(long, env = "WASMCLOUD_CTL_JWT", requires = "ctl_seed")]
    ctl_jwt: Option<String>,
    #[arg(
        long,
        env = "WASMCLOUD_CTL_SEED",
        hide_env_values = true,
        requires = "ctl_jwt"
    )]
    ctl_seed: Option<String>,
    #[arg(long, env = "WASMCLOUD_CTL_TLS", default_value_t = false)]
    ctl_tls: bool,
    #[arg(
        long,
        env = "WASMCLOUD_CTL_TOPIC_PREFIX",
        default_value = "wasmbus.ctl"
    )]
    ctl_topic_prefix: String,

    /// Host of the NATS server used for component and provider RPC.
    #[arg(long, env = "WASMCLOUD_RPC_HOST", default_value = "127.0.0.1")]
    rpc_host: String,
    #[arg(long, env = "WASMCLOUD_RPC_PORT", default_value_t = 4222)]
    rpc_port: u16,
    #[arg(long, env = "WASMCLOUD_RPC_JWT", requires = "rpc_seed")]
    rpc_jwt: Option<String>,
    #[arg(
        long,
        env = "WASMCLOUD_RPC_SEED",
        hide_env_values = true,
        requires = "rpc_jwt"
    )]
    rpc_seed: Option<String>,
    #[arg(long, env = "WASMCLOUD_RPC_TLS", default_value_t = false)]
    rpc_tls: bool,
    #[arg(long, env = "WASMCLOUD_RPC_TIMEOUT_MS", default_value_t = 2000)]
    rpc_timeout_ms: u64,

    /// JetStream domain for the host's key-value buckets.
    #[arg(long, env = "WASMCLOUD_JS_DOMAIN")]
    js_domain: Option<String>,

    /// Log level for the host and, through the host, its providers.
    #[arg(long, env = "WASMCLOUD_LOG_LEVEL", default_value = "info")]
    log_level: tracing::Level,
    #[arg(
        long,
        env = "WASMCLOUD_STRUCTURED_LOGGING_ENABLED",
        default_value_t = false
    )]
    enable_structured_logging: bool,

    /// Allow `file://` component and provider references.
    #[arg(long, env = "WASMCLOUD_ALLOW_FILE_LOAD", default_value_t = false)]
    allow_file_load: bool,
    #[arg(long, env = "WASMCLOUD_CONFIG_SERVICE", default_value_t = false)]
    config_service_enabled: bool,

    #[arg(long, env = "WASMCLOUD_POLICY_TOPIC")]
    policy_topic: Option<String>,
    #[arg(long, env = "WASMCLOUD_POLICY_CHANGES_TOPIC")]
    policy_changes_topic: Option<String>,
    #[arg(long, env = "WASMCLOUD_POLICY_TIMEOUT_MS")]
    policy_timeout_ms: Option<u64>,
    #[arg(long, env = "WASMCLOUD_SECRETS_TOPIC")]
    secrets_topic: Option<String>,

    /// Longest a single component invocation may run.
    #[arg(
        long,
        env = "WASMCLOUD_MAX_EXECUTION_TIME_MS",
        default_value_t = 600_000
    )]
    max_execution_time_ms: u64,
    #[arg(long, env = "WASMCLOUD_PROV_SHUTDOWN_DELAY_MS", default_value_t = 300)]
    provider_shutdown_delay_ms: u64,

    #[arg(long, env = "WASMCLOUD_OCI_ALLOW_LATEST", default_value_t = false)]
    allow_latest: bool,
    #[arg(long, env = "WASMCLOUD_OCI_ALLOWED_INSECURE", value_delimiter = ',')]
    allowed_insecure: Vec<String>,

    /// Experimental host features, comma separated, e.g.
    /// `builtin-http-server,builtin-messaging-nats`.
    #[arg(long, env = "WASMCLOUD_EXPERIMENTAL_FEATURES", value_delimiter = ',')]
    experimental_features: Vec<String>,

    /// Address for the host's HTTP admin endpoint (health and readiness).
    #[arg(long, env = "WASMCLOUD_HTTP_ADMIN")]
    http_admin: Option<std::net::SocketAddr>,

    // wash passes these for older hosts; the 1.x host has no use for them, so they are
    // accepted and ignored rather than rejected.
    #[arg(
        long,
        env = "WASMCLOUD_CLUSTER_SEED",
        hide = true,
        hide_env_values = true
    )]
    _cluster_seed: Option<String>,
    #[arg(long, env = "WASMCLOUD_CLUSTER_ISSUERS", hide = true)]
    _cluster_issuers: Option<String>,
    #[arg(long, env = "WASMCLOUD_ENABLE_IPV6", hide = true)]
    _enable_ipv6: Option<String>,
}

fn nats_url(host: &str, port: u16) -> Result<Url> {
    Url::parse(&format!("nats://{host}:{port}"))
        .with_context(|| format!("invalid NATS address `{host}:{port}`, expected host and port"))
}

fn key_pair(seed: Option<&str>, what: &str, expected: KeyPairType) -> Result<Option<Arc<KeyPair>>> {
    let Some(seed) = seed else { return Ok(None) };
    let key =
        KeyPair::from_seed(seed).with_context(|| format!("{what} is not a valid nkey seed"))?;
    if key.key_pair_type() != expected {
        bail!("{what} must be a {expected:?} nkey seed");
    }
    Ok(Some(Arc::new(key)))
}

fn labels_from_env() -> HashMap<String, String> {
    std::env::vars()
        .filter_map(|(k, v)| Some((k.strip_prefix(LABEL_ENV_PREFIX)?.to_string(), v)))
        .collect()
}

fn host_config(args: Args) -> Result<HostConfig> {
    let features: Features = args
        .experimental_features
        .iter()
        .map(|f| Features::from(f.trim()))
        .sum();
    Ok(HostConfig {
        ctl_nats_url: nats_url(&args.ctl_host, args.ctl_port)?,
        ctl_jwt: args.ctl_jwt,
        ctl_key: key_pair(
            args.ctl_seed.as_deref(),
            "WASMCLOUD_CTL_SEED",
            KeyPairType::User,
        )?,
        ctl_tls: args.ctl_tls,
        ctl_topic_prefix: args.ctl_topic_prefix,
        rpc_nats_url: nats_url(&args.rpc_host, args.rpc_port)?,
        rpc_timeout: Duration::from_millis(args.rpc_timeout_ms),
        rpc_jwt: args.rpc_jwt,
        rpc_key: key_pair(
            args.rpc_seed.as_deref(),
            "WASMCLOUD_RPC_SEED",
            KeyPairType::User,
        )?,
        rpc_tls: args.rpc_tls,
        lattice: args.lattice.into(),
        js_domain: args.js_domain,
        labels: labels_from_env(),
        host_key: key_pair(
            args.host_seed.as_deref(),
            "WASMCLOUD_HOST_SEED",
            KeyPairType::Server,
        )?,
        provider_shutdown_delay: Some(Duration::from_millis(args.provider_shutdown_delay_ms)),
        oci_opts: OciConfig {
            allow_latest: args.allow_latest,
            allowed_insecure: args.allowed_insecure,
            ..OciConfig::default()
        },
        allow_file_load: args.allow_file_load,
        enable_structured_logging: args.enable_structured_logging,
        log_level: args.log_level.into(),
        config_service_enabled: args.config_service_enabled,
        policy_service_config: wasmcloud_host::wasmbus::host_config::PolicyService {
            policy_topic: args.policy_topic,
            policy_changes_topic: args.policy_changes_topic,
            policy_timeout_ms: args.policy_timeout_ms.map(Duration::from_millis),
        },
        secrets_topic_prefix: args.secrets_topic,
        // wash and wadm show this as the host version, so report the release line we stand
        // in for, not the library crate's own version.
        version: env!("CARGO_PKG_VERSION").to_string(),
        max_execution_time: Duration::from_millis(args.max_execution_time_ms),
        experimental_features: features,
        http_admin: args.http_admin,
        ..HostConfig::default()
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    launcher_support::init_logging(
        &args.log_level.as_str().to_ascii_lowercase(),
        args.enable_structured_logging,
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let result = runtime.block_on(run(args));
    // Dropping the runtime would wait for every blocking task without limit; a process
    // that outlives its stop is worse than a blocking call cut short.
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_TIMEOUT);
    result
}

async fn run(args: Args) -> Result<()> {
    let config = host_config(args)?;
    tracing::info!(lattice = %config.lattice, features = ?config.experimental_features, "starting wasmCloud host");

    let (host, shutdown) = Host::new(config).await.context("failed to start host")?;
    let deadline = tokio::select! {
        stopped = host.stopped() => {
            let deadline = stopped.context("host stopped unexpectedly")?;
            tracing::info!("host stopped through the control interface");
            deadline
        }
        signal = launcher_support::terminated() => {
            tracing::info!("received {}, shutting down", signal?);
            None
        }
    };
    // Dropping our handle first lets the shutdown future own the last reference, so that
    // the host (and with it every provider process it started) goes when the future does.
    drop(host);
    let started = Instant::now();
    let deadline = deadline.unwrap_or(started + DEFAULT_SHUTDOWN_TIMEOUT);
    tokio::select! {
        done = tokio::time::timeout_at(deadline, shutdown) => match done {
            Ok(result) => result.context("host shutdown failed"),
            Err(_) => {
                tracing::error!(
                    waited = ?started.elapsed(),
                    "host shutdown did not finish by its deadline: its control and data tasks, \
                     the host_stopped event or the final NATS flush is still pending (a flush \
                     never completes once the NATS server is gone); exiting without it"
                );
                bail!("host shutdown did not finish by its deadline")
            }
        },
        signal = launcher_support::terminated() => {
            let signal = signal?;
            tracing::warn!("received {signal} again during shutdown, exiting now");
            bail!("host shutdown cut short by {signal}")
        }
    }
}

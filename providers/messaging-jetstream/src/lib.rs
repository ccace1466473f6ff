//! The JetStream messaging provider: wasmCloud glue over `messaging-core`.
//!
//! - A component linked *to* the provider (`wasmcloud:messaging/consumer`) publishes and
//!   requests through it. A subject that a durable subscription captures is stored in its
//!   stream first; anything else goes out on core NATS.
//! - A component the provider is linked *to* (`wasmcloud:messaging/handler`, the link's
//!   source config naming the stream) receives the stream's messages through
//!   [`messaging_core::Subscription`], each acknowledged only after the handler's `Ok`.
//!
//! The contract (guarantees, config keys, failure behaviour) is in this crate's README.

mod provider;

use anyhow::Context as _;
use wasmcloud_provider_sdk::{
    get_connection, initialize_observability, load_host_data, run_provider, serve_provider_exports,
};

pub use provider::JetStreamProvider;

/// Name of the provider in logs and traces.
const PROVIDER_NAME: &str = "messaging-jetstream-provider";

/// Why a provider started by hand stops at once.
const HOST_DATA_HINT: &str = "this is a wasmCloud capability provider: a wasmCloud host starts \
    it and passes its configuration (base64-encoded host data) on standard input; run it by \
    deploying its provider archive to a lattice rather than directly";

/// wRPC bindings for `wit/messaging-provider`.
pub(crate) mod bindings {
    wit_bindgen_wrpc::generate!({
        world: "neongrid:messaging-provider/messaging-provider",
        path: "../../wit/messaging-provider",
        with: {
            "wasmcloud:messaging/types@0.2.0": generate,
            "wasmcloud:messaging/handler@0.2.0": generate,
            "wasmcloud:messaging/consumer@0.2.0": generate,
        },
    });
}

/// Serves until the host tells the provider to stop.
///
/// One thread: the provider's work between network waits is small (a pull, a wRPC call,
/// an ack), and on one thread those hops hand over without waking another thread.
pub fn main() -> anyhow::Result<()> {
    load_host_data().context(HOST_DATA_HINT)?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the provider's async runtime")?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    initialize_observability!(PROVIDER_NAME, None::<&str>);
    let provider = JetStreamProvider::default();
    let shutdown = run_provider(provider.clone(), PROVIDER_NAME)
        .await
        .context("failed to connect the provider to the lattice")?;
    let connection = get_connection();
    let wrpc = connection
        .get_wrpc_client(connection.provider_key())
        .await
        .context("failed to create the wRPC client for the provider's exports")?;
    serve_provider_exports(&wrpc, provider, shutdown, bindings::serve)
        .await
        .context("failed to serve wasmcloud:messaging/consumer")
}

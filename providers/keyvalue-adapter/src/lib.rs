//! Serves any [`keyvalue_store::StoreFactory`] backend as a wasmCloud capability provider.
//!
//! A component imports `wasi:keyvalue/{store,atomics,batch}@0.2.0-draft`; the wasmCloud host
//! (1.9.x) turns those calls into wRPC invocations of `wrpc:keyvalue/{store,atomics,batch}`
//! `@0.2.0-draft` on the provider the component is linked to, passing the identifier the
//! component gave `store.open` as the `bucket` argument. This crate answers those invocations
//! by routing each to the [`keyvalue_store::Store`] of the link it came in on.
//!
//! A wadm manifest links a component to a provider built on this crate with
//! `namespace: wasi`, `package: keyvalue`, `interfaces: [store, atomics, batch]`.
//!
//! A backend's binary is just
//! `keyvalue_adapter::run(MyFactory::new(), "keyvalue-my-provider").await`.

mod handlers;
mod provider;

use anyhow::Context as _;
use keyvalue_store::StoreFactory;
use wasmcloud_provider_sdk::{
    get_connection, initialize_observability, load_host_data, run_provider, serve_provider_exports,
};

pub use provider::{KeyValueProvider, LinkKey};

/// wRPC bindings for the interfaces in `wit/provider`, vendored from the host's own WIT.
pub mod bindings {
    wit_bindgen_wrpc::generate!({
        world: "neongrid:keyvalue-provider/keyvalue-provider",
        path: "../../wit/provider",
        with: {
            "wrpc:keyvalue/store@0.2.0-draft": generate,
            "wrpc:keyvalue/atomics@0.2.0-draft": generate,
            "wrpc:keyvalue/batch@0.2.0-draft": generate,
        },
    });
}

/// Why a provider started by hand stops at once: say what it needs instead of only what failed.
const HOST_DATA_HINT: &str = "this is a wasmCloud capability provider: a wasmCloud host starts \
    it and passes its configuration (base64-encoded host data) on standard input; run it by \
    deploying its provider archive to a lattice rather than directly";

/// Runs a key-value provider for `factory` until the host tells it to stop.
///
/// `provider_name` names the provider in logs and traces. Returns an error (rather than
/// panicking) when the provider cannot start, e.g. without host data on standard input.
pub async fn run<F: StoreFactory>(factory: F, provider_name: &'static str) -> anyhow::Result<()> {
    load_host_data().context(HOST_DATA_HINT)?;
    initialize_observability!(provider_name, None::<&str>);

    let provider = KeyValueProvider::new(factory);
    let shutdown = run_provider(provider.clone(), provider_name)
        .await
        .context("failed to connect the provider to the lattice")?;
    // The SDK has applied the links of the start-up data by now; the ones that come later
    // arrive as link puts, each logged as it comes.
    tracing::info!(
        backend = provider.backend(),
        links = ?provider.known_links(),
        "key-value links handed over at start-up"
    );
    let connection = get_connection();
    // Invocations for this provider arrive on subjects named after its own key.
    let wrpc = connection
        .get_wrpc_client(connection.provider_key())
        .await
        .context("failed to create the wRPC client for the provider's exports")?;
    serve_provider_exports(&wrpc, provider, shutdown, bindings::serve)
        .await
        .context("failed to serve wrpc:keyvalue exports")
}

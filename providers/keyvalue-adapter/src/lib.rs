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
//! `keyvalue_adapter::main(MyFactory::new(), "keyvalue-my-provider")`.

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

/// Provider configuration key: how many threads serve calls (see [`worker_threads`]).
pub const CONFIG_WORKER_THREADS: &str = "worker_threads";
/// The most threads [`CONFIG_WORKER_THREADS`] may ask for.
pub const MAX_WORKER_THREADS: usize = 64;

/// Builds the provider's runtime as its configuration asks, then serves on it until the
/// host tells the provider to stop.
///
/// One thread unless `worker_threads` says otherwise: a call costs the provider a few
/// microseconds of CPU between two network waits, and on one thread each of a call's hops
/// (NATS reader, handler, backend connection, NATS writer) hands over without waking
/// another thread. On the counter benchmark (README, "Against wasmCloud's official Redis
/// provider") that cut the Redis provider's CPU per call by a third. A provider that serves
/// many busy components on a large host can ask for more.
///
/// Returns an error (rather than panicking) when the provider cannot start, e.g. without
/// host data on standard input or with a bad `worker_threads`.
pub fn main<F: StoreFactory>(factory: F, provider_name: &'static str) -> anyhow::Result<()> {
    let host_data = load_host_data().context(HOST_DATA_HINT)?;
    let threads = worker_threads(
        host_data
            .config
            .get(CONFIG_WORKER_THREADS)
            .map(String::as_str),
    )?;
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    builder
        .enable_all()
        .build()
        .context("failed to start the provider's async runtime")?
        .block_on(run(factory, provider_name))
}

/// The thread count that the `worker_threads` setting names: 1 when it is absent.
pub fn worker_threads(setting: Option<&str>) -> anyhow::Result<usize> {
    let Some(setting) = setting else {
        return Ok(1);
    };
    match setting.trim().parse::<usize>() {
        Ok(threads) if (1..=MAX_WORKER_THREADS).contains(&threads) => Ok(threads),
        _ => anyhow::bail!(
            "invalid provider configuration {CONFIG_WORKER_THREADS:?}: {setting:?}; expected a \
             whole number of threads from 1 to {MAX_WORKER_THREADS}"
        ),
    }
}

/// Serves `factory`'s stores until the host tells the provider to stop; [`main`] has read
/// the host data by then. `provider_name` names the provider in logs and traces.
async fn run<F: StoreFactory>(factory: F, provider_name: &'static str) -> anyhow::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_thread_unless_the_configuration_asks_for_more() {
        assert_eq!(worker_threads(None).unwrap(), 1);
        assert_eq!(worker_threads(Some("4")).unwrap(), 4);
        assert_eq!(worker_threads(Some(" 2 ")).unwrap(), 2);
        assert_eq!(worker_threads(Some("64")).unwrap(), MAX_WORKER_THREADS);
    }

    #[test]
    fn a_thread_count_out_of_range_or_not_a_number_names_the_key_and_the_range() {
        for bad in ["0", "65", "-1", "two", ""] {
            let err = worker_threads(Some(bad)).unwrap_err().to_string();
            assert!(err.contains("\"worker_threads\""), "{bad:?}: {err}");
            assert!(err.contains("from 1 to 64"), "{bad:?}: {err}");
            assert!(err.contains(&format!("{bad:?}")), "{bad:?}: {err}");
        }
    }
}

//! The wRPC exports: each call is routed to its link's store and its error mapped to WIT.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use keyvalue_store::{Store, StoreError, StoreFactory, StoreResult, MAX_PAGE_SIZE};
use tracing::{debug, instrument, warn};
use wasmcloud_provider_sdk::{propagate_trace_for_ctx, Context};

use crate::bindings::exports::wrpc::keyvalue::{atomics, batch, store};
use crate::provider::{KeyValueProvider, LinkKey};

type WitError = store::Error;

/// The outcome a handler hands back: the outer `Err` would abort the invocation at transport
/// level, so every store failure travels in the inner, WIT-level result instead.
type Reply<T> = anyhow::Result<Result<T, WitError>>;

impl<F: StoreFactory> KeyValueProvider<F> {
    /// Runs `op` on the store of the link `cx` came in on.
    async fn call<T, Fut>(
        &self,
        cx: Option<Context>,
        op: &'static str,
        run: impl FnOnce(Arc<dyn Store>) -> Fut,
    ) -> Reply<T>
    where
        Fut: Future<Output = StoreResult<T>>,
    {
        propagate_trace_for_ctx!(cx);
        let link = LinkKey::of_invocation(&cx);
        let store = match self.store_for(&link).await {
            Ok(store) => store,
            Err(reason) => return Ok(Err(self.other(op, reason))),
        };
        Ok(run(store).await.map_err(|err| self.wit_error(op, err)))
    }

    /// Maps a store error onto the WIT `error` variant. The first two variants carry no text,
    /// so their detail goes to the log instead.
    fn wit_error(&self, op: &'static str, err: StoreError) -> WitError {
        match err {
            StoreError::NoSuchStore { .. } => {
                debug!(backend = self.backend(), op, error = %err, "no such store");
                WitError::NoSuchStore
            }
            StoreError::AccessDenied { .. } => {
                warn!(backend = self.backend(), op, error = %err, "access denied");
                WitError::AccessDenied
            }
            err @ StoreError::Backend { .. } => {
                warn!(backend = self.backend(), op, error = %err, "key-value backend failed");
                self.other(op, err.to_string())
            }
            // The caller's own mistake (a non-numeric counter, say): theirs to see, not a
            // provider problem worth a warning.
            err => self.other(op, err.to_string()),
        }
    }

    fn other(&self, op: &'static str, detail: String) -> WitError {
        WitError::Other(format!(
            "{} key-value store: {op} failed: {detail}",
            self.backend()
        ))
    }
}

impl<F: StoreFactory> store::Handler<Option<Context>> for KeyValueProvider<F> {
    #[instrument(level = "debug", skip(self, cx))]
    async fn get(&self, cx: Option<Context>, bucket: String, key: String) -> Reply<Option<Bytes>> {
        self.call(cx, "get", |s| async move { s.get(&bucket, &key).await })
            .await
    }

    #[instrument(level = "debug", skip(self, cx, value), fields(value_len = value.len()))]
    async fn set(
        &self,
        cx: Option<Context>,
        bucket: String,
        key: String,
        value: Bytes,
    ) -> Reply<()> {
        self.call(
            cx,
            "set",
            |s| async move { s.set(&bucket, &key, value).await },
        )
        .await
    }

    #[instrument(level = "debug", skip(self, cx))]
    async fn delete(&self, cx: Option<Context>, bucket: String, key: String) -> Reply<()> {
        self.call(
            cx,
            "delete",
            |s| async move { s.delete(&bucket, &key).await },
        )
        .await
    }

    #[instrument(level = "debug", skip(self, cx))]
    async fn exists(&self, cx: Option<Context>, bucket: String, key: String) -> Reply<bool> {
        self.call(
            cx,
            "exists",
            |s| async move { s.exists(&bucket, &key).await },
        )
        .await
    }

    #[instrument(level = "debug", skip(self, cx))]
    async fn list_keys(
        &self,
        cx: Option<Context>,
        bucket: String,
        cursor: Option<u64>,
    ) -> Reply<store::KeyResponse> {
        // `list-keys` has no limit parameter, so every page is as large as pages may be.
        self.call(cx, "list-keys", |s| async move {
            let page = s.list_keys(&bucket, cursor, MAX_PAGE_SIZE).await?;
            Ok(store::KeyResponse {
                keys: page.keys,
                cursor: page.cursor,
            })
        })
        .await
    }
}

impl<F: StoreFactory> atomics::Handler<Option<Context>> for KeyValueProvider<F> {
    #[instrument(level = "debug", skip(self, cx))]
    async fn increment(
        &self,
        cx: Option<Context>,
        bucket: String,
        key: String,
        delta: u64,
    ) -> Reply<u64> {
        self.call(cx, "increment", |s| async move {
            s.increment(&bucket, &key, delta).await
        })
        .await
    }
}

impl<F: StoreFactory> batch::Handler<Option<Context>> for KeyValueProvider<F> {
    #[instrument(level = "debug", skip(self, cx, keys), fields(keys = keys.len()))]
    async fn get_many(
        &self,
        cx: Option<Context>,
        bucket: String,
        keys: Vec<String>,
    ) -> Reply<Vec<Option<(String, Bytes)>>> {
        self.call(cx, "get-many", |s| async move {
            s.get_many(&bucket, keys).await
        })
        .await
    }

    #[instrument(level = "debug", skip(self, cx, entries), fields(entries = entries.len()))]
    async fn set_many(
        &self,
        cx: Option<Context>,
        bucket: String,
        entries: Vec<(String, Bytes)>,
    ) -> Reply<()> {
        self.call(cx, "set-many", |s| async move {
            s.set_many(&bucket, entries).await
        })
        .await
    }

    #[instrument(level = "debug", skip(self, cx, keys), fields(keys = keys.len()))]
    async fn delete_many(
        &self,
        cx: Option<Context>,
        bucket: String,
        keys: Vec<String>,
    ) -> Reply<()> {
        self.call(cx, "delete-many", |s| async move {
            s.delete_many(&bucket, keys).await
        })
        .await
    }
}

#[cfg(test)]
mod tests;

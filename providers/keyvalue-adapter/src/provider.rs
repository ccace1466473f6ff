use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use keyvalue_store::{Store, StoreConfig, StoreError, StoreFactory, StoreResult};
use tracing::{debug, info, instrument, warn};
use wasmcloud_provider_sdk::core::secrets::SecretValue;
use wasmcloud_provider_sdk::{
    Context, HealthCheckRequest, HealthCheckResponse, LinkConfig, LinkDeleteInfo, Provider,
    ProviderConfigUpdate, ProviderInitConfig,
};

/// The WIT namespace and package a component links to this provider with.
const LINK_WIT_NAMESPACE: &str = "wasi";
const LINK_WIT_PACKAGE: &str = "keyvalue";

/// Link name the host uses when a link has none, and the SDK assumes when a call lacks one.
const DEFAULT_LINK_NAME: &str = "default";

/// How long a call on a link the provider does not know waits for that link to arrive. The
/// host may deliver a link put a moment after the component's first calls (the two travel
/// separately); a link that takes longer is reported to the caller, who may try again.
pub(crate) const UNKNOWN_LINK_WAIT: Duration = Duration::from_secs(2);

/// Identifies one link into the provider: the component that calls, and the link's name (a
/// component may hold several links to one provider under different names).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LinkKey {
    pub source_id: String,
    pub link_name: String,
}

impl LinkKey {
    pub fn new(source_id: impl Into<String>, link_name: impl Into<String>) -> Self {
        Self {
            source_id: source_id.into(),
            link_name: link_name.into(),
        }
    }

    /// The link an invocation came in on, from the `source-id` and `link-name` headers the
    /// host sets on every call.
    pub fn of_invocation(cx: &Option<Context>) -> Self {
        match cx {
            Some(cx) => Self::new(cx.component.clone().unwrap_or_default(), cx.link_name()),
            None => Self::new("", DEFAULT_LINK_NAME),
        }
    }
}

#[derive(Clone)]
enum LinkState {
    Ready {
        config: StoreConfig,
        store: Arc<dyn Store>,
    },
    /// The link's configuration could not open a store. Remembered so that its calls fail
    /// with the reason instead of silently using some other store.
    Failed { reason: String },
}

/// The wasmCloud provider for one key-value backend.
///
/// Each link gets the store its configuration opens: the provider's own configuration with
/// the link's target configuration (and secrets) laid over it. Links whose effective
/// configuration is identical share one store, opened once. A call from a link the provider
/// has not been told about waits up to [`UNKNOWN_LINK_WAIT`] for it, then fails with an
/// error naming the component and the link. It never reaches a store: a store the link did
/// not configure could be another application's database.
///
/// Cheap to clone; clones share all state, which is how the SDK's command loop and the wRPC
/// handlers see the same links.
pub struct KeyValueProvider<F> {
    inner: Arc<Inner<F>>,
}

impl<F> Clone for KeyValueProvider<F> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<F> {
    factory: F,
    /// The provider-wide configuration, the base every link's configuration is laid over.
    base_config: RwLock<StoreConfig>,
    links: RwLock<HashMap<LinkKey, LinkState>>,
    /// Signalled whenever `links` changes, to wake calls that wait for their link.
    link_changes: tokio::sync::watch::Sender<()>,
    /// Every open store by the configuration that opened it. An async mutex because it is
    /// held across `StoreFactory::open`, so that two links never open the same store twice.
    open_stores: tokio::sync::Mutex<HashMap<StoreConfig, Arc<dyn Store>>>,
}

// These locks guard plain maps replaced or updated in single calls, so a panic elsewhere
// cannot leave them inconsistent; recovering from poisoning is safe and keeps serving.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// What a call on an unknown link is told: who called, on which link, and what was expected.
fn unknown_link_message(link: &LinkKey) -> String {
    format!(
        "no link named {:?} from component {:?} is known to this provider (waited {} ms for it); \
         expected a link from that component to this provider ({LINK_WIT_NAMESPACE}:{LINK_WIT_PACKAGE}) \
         under that name, as the manifest declares it. A link still on its way arrives within \
         moments: try the call again",
        link.link_name,
        link.source_id,
        UNKNOWN_LINK_WAIT.as_millis()
    )
}

/// A [`StoreConfig`] from the maps the SDK hands over.
fn store_config(
    values: &HashMap<String, String>,
    secrets: &HashMap<String, SecretValue>,
) -> StoreConfig {
    let mut config = StoreConfig::from(values);
    config.secrets = secrets
        .iter()
        .filter_map(|(name, secret)| match secret {
            SecretValue::String(value) => Some((name.clone(), value.clone())),
            SecretValue::Bytes(value) => match String::from_utf8(value.clone()) {
                Ok(value) => Some((name.clone(), value)),
                Err(_) => {
                    warn!(secret = %name, "ignoring secret: key-value settings must be UTF-8 text");
                    None
                }
            },
        })
        .collect::<BTreeMap<_, _>>();
    config
}

impl<F: StoreFactory> KeyValueProvider<F> {
    /// A provider with no links yet and an empty provider configuration.
    pub fn new(factory: F) -> Self {
        Self {
            inner: Arc::new(Inner {
                factory,
                base_config: RwLock::default(),
                links: RwLock::default(),
                link_changes: tokio::sync::watch::Sender::new(()),
                open_stores: tokio::sync::Mutex::default(),
            }),
        }
    }

    /// The backend's name, for messages.
    pub fn backend(&self) -> &'static str {
        self.inner.factory.backend()
    }

    /// Replaces the provider-wide configuration. Links already made keep their stores; new
    /// links use the new configuration.
    pub async fn set_provider_config(&self, config: StoreConfig) {
        *write(&self.inner.base_config) = config;
    }

    /// Records `state` for `link` and wakes the calls waiting for links.
    fn record_link(&self, link: LinkKey, state: LinkState) {
        write(&self.inner.links).insert(link, state);
        self.inner.link_changes.send_replace(());
    }

    /// The links the provider knows, for the log.
    pub(crate) fn known_links(&self) -> Vec<LinkKey> {
        let mut links: Vec<LinkKey> = read(&self.inner.links).keys().cloned().collect();
        links.sort_by(|a, b| (&a.source_id, &a.link_name).cmp(&(&b.source_id, &b.link_name)));
        links
    }

    /// Records a link and opens (or reuses) the store for its configuration. On failure the
    /// link is still recorded, so that its calls report why it is unusable.
    pub async fn put_link(&self, link: LinkKey, link_config: &StoreConfig) -> StoreResult<()> {
        let config = read(&self.inner.base_config).overlaid_with(link_config);
        let state = match self.open_shared(&config).await {
            Ok(store) => LinkState::Ready { config, store },
            Err(err) => {
                warn!(
                    source_id = %link.source_id,
                    link_name = %link.link_name,
                    backend = self.backend(),
                    error = %err,
                    "cannot open a key-value store for this link",
                );
                let reason = err.to_string();
                self.record_link(link, LinkState::Failed { reason });
                self.close_unused_stores().await;
                return Err(err);
            }
        };
        info!(
            source_id = %link.source_id,
            link_name = %link.link_name,
            backend = self.backend(),
            "key-value link ready"
        );
        self.record_link(link, state);
        // A re-put link may have left its previous store unused.
        self.close_unused_stores().await;
        Ok(())
    }

    /// Forgets a link, closing its store if no other link uses it.
    pub async fn remove_link(&self, link: &LinkKey) {
        let removed = write(&self.inner.links).remove(link).is_some();
        info!(
            source_id = %link.source_id,
            link_name = %link.link_name,
            known = removed,
            "key-value link deleted"
        );
        self.close_unused_stores().await;
    }

    /// The store serving calls that arrive on `link`, waiting up to [`UNKNOWN_LINK_WAIT`]
    /// for a link the provider does not know yet.
    pub(crate) async fn store_for(&self, link: &LinkKey) -> Result<Arc<dyn Store>, String> {
        if let Some(known) = self.known_store(link) {
            return known;
        }
        // Subscribed before the second look, so a link recorded in between still wakes us.
        let mut changes = self.inner.link_changes.subscribe();
        let deadline = tokio::time::Instant::now() + UNKNOWN_LINK_WAIT;
        loop {
            if let Some(known) = self.known_store(link) {
                return known;
            }
            let woke = tokio::time::timeout_at(deadline, changes.changed()).await;
            if !matches!(woke, Ok(Ok(()))) {
                return self.known_store(link).unwrap_or_else(|| {
                    warn!(
                        source_id = %link.source_id,
                        link_name = %link.link_name,
                        backend = self.backend(),
                        waited_ms = UNKNOWN_LINK_WAIT.as_millis() as u64,
                        "call on a link this provider does not know; refused"
                    );
                    Err(unknown_link_message(link))
                });
            }
        }
    }

    /// The outcome for a call on `link` if the link is known. Only the store's Arc is
    /// cloned: this runs on every call.
    fn known_store(&self, link: &LinkKey) -> Option<Result<Arc<dyn Store>, String>> {
        read(&self.inner.links).get(link).map(|state| match state {
            LinkState::Ready { store, .. } => Ok(store.clone()),
            LinkState::Failed { reason } => Err(format!(
                "link {:?} from component {:?} has no usable store: {reason}",
                link.link_name, link.source_id
            )),
        })
    }

    async fn open_shared(&self, config: &StoreConfig) -> StoreResult<Arc<dyn Store>> {
        let mut open = self.inner.open_stores.lock().await;
        if let Some(store) = open.get(config) {
            return Ok(store.clone());
        }
        debug!(
            backend = self.backend(),
            settings = ?config.value_names(),
            secrets = ?config.secret_names(),
            "opening key-value store"
        );
        let store = self.inner.factory.open(config).await?;
        open.insert(config.clone(), store.clone());
        Ok(store)
    }

    /// Drops stores that no link uses any more (closing, say, their connections). Whether
    /// the data survives is the backend's business.
    async fn close_unused_stores(&self) {
        let mut open = self.inner.open_stores.lock().await;
        let in_use: HashSet<StoreConfig> = read(&self.inner.links)
            .values()
            .filter_map(|state| match state {
                LinkState::Ready { config, .. } => Some(config.clone()),
                LinkState::Failed { .. } => None,
            })
            .collect();
        open.retain(|config, _| in_use.contains(config));
    }

    /// Health of every open store; unhealthy if any of them is.
    pub async fn check_health(&self) -> HealthCheckResponse {
        let stores: Vec<Arc<dyn Store>> = {
            let open = self.inner.open_stores.lock().await;
            let mut seen = HashSet::new();
            // Several configurations may share one store object; ask it once.
            open.values()
                .filter(|store| seen.insert(Arc::as_ptr(store) as *const () as usize))
                .cloned()
                .collect()
        };
        let mut problems = Vec::new();
        for store in stores {
            if let Err(err) = store.health().await {
                problems.push(err.to_string());
            }
        }
        if problems.is_empty() {
            HealthCheckResponse {
                healthy: true,
                message: None,
            }
        } else {
            HealthCheckResponse {
                healthy: false,
                message: Some(format!(
                    "{} key-value store unhealthy: {}",
                    self.backend(),
                    problems.join("; ")
                )),
            }
        }
    }

    /// Forgets every link and closes every store.
    pub async fn close_all(&self) {
        write(&self.inner.links).clear();
        self.inner.link_changes.send_replace(());
        self.inner.open_stores.lock().await.clear();
    }

    #[cfg(test)]
    pub(crate) async fn open_store_count(&self) -> usize {
        self.inner.open_stores.lock().await.len()
    }
}

impl<F: StoreFactory> Provider for KeyValueProvider<F> {
    async fn init(&self, init_config: impl ProviderInitConfig) -> anyhow::Result<()> {
        let config = store_config(init_config.get_config(), init_config.get_secrets());
        info!(
            provider_id = init_config.get_provider_id(),
            backend = self.backend(),
            "key-value provider starting"
        );
        self.set_provider_config(config).await;
        Ok(())
    }

    async fn on_config_update(&self, update: impl ProviderConfigUpdate) -> anyhow::Result<()> {
        // Updates carry plain configuration only; the secrets given at start-up still apply.
        let secrets = read(&self.inner.base_config).secrets.clone();
        let mut config = StoreConfig::from(update.get_values());
        config.secrets = secrets;
        self.set_provider_config(config).await;
        Ok(())
    }

    #[instrument(level = "debug", skip_all, fields(source_id = link.source_id, link_name = link.link_name))]
    async fn receive_link_config_as_target(&self, link: LinkConfig<'_>) -> anyhow::Result<()> {
        let (namespace, package, _) = link.wit_metadata;
        if namespace.as_str() != LINK_WIT_NAMESPACE || package.as_str() != LINK_WIT_PACKAGE {
            warn!(
                %namespace,
                %package,
                "link is not for {LINK_WIT_NAMESPACE}:{LINK_WIT_PACKAGE}; serving it anyway"
            );
        }
        let key = LinkKey::new(link.source_id, link.link_name);
        let config = store_config(link.config, link.secrets);
        info!(
            source_id = %key.source_id,
            link_name = %key.link_name,
            target_id = link.target_id,
            interfaces = ?link.wit_metadata.2,
            settings = ?config.value_names(),
            secrets = ?config.secret_names(),
            "key-value link put received"
        );
        self.put_link(key, &config)
            .await
            .map_err(|err: StoreError| anyhow::Error::new(err).context("key-value link rejected"))
    }

    async fn delete_link_as_target(&self, info: impl LinkDeleteInfo) -> anyhow::Result<()> {
        self.remove_link(&LinkKey::new(info.get_source_id(), info.get_link_name()))
            .await;
        Ok(())
    }

    // Never an error: the SDK stops handling host commands when a health check fails to answer.
    async fn health_request(
        &self,
        _request: &HealthCheckRequest,
    ) -> anyhow::Result<HealthCheckResponse> {
        Ok(self.check_health().await)
    }

    async fn shutdown(&self) -> anyhow::Result<()> {
        self.close_all().await;
        Ok(())
    }
}

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use messaging_core::{
    cluster_uris, connect, core_subscriptions, CoreSubscriber, CoreSubscription, Delivery,
    DeliveryConfig, Handler, Publisher, Subscription, CONFIG_STREAM, CONFIG_SUBSCRIPTIONS,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};
use wasmcloud_provider_sdk::provider::WrpcClient;
use wasmcloud_provider_sdk::{
    get_connection, propagate_trace_for_ctx, Context, HealthCheckRequest, HealthCheckResponse,
    LinkConfig, LinkDeleteInfo, Provider, ProviderConfigUpdate, ProviderInitConfig,
};

use crate::bindings::exports::wasmcloud::messaging::consumer;
use crate::bindings::wasmcloud::messaging::handler;
use crate::bindings::wasmcloud::messaging::types::BrokerMessage;

/// Link name the host uses when a link has none.
const DEFAULT_LINK_NAME: &str = "default";
/// How long a call on a link the provider does not know waits for it: the link put may
/// arrive a moment after the component's first call.
const UNKNOWN_LINK_WAIT: Duration = Duration::from_secs(2);
/// Pauses between attempts at starting a subscription (NATS away, a stream conflict that
/// an operator may resolve); the last repeats.
const START_PAUSES: [Duration; 4] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(5),
    Duration::from_secs(30),
];
/// Pauses between calls while no instance of the handler's component answers.
const NO_RESPONDER_PAUSES: [Duration; 4] = [
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
];
/// How long shutting down waits for handler calls under way.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);
/// Extra time the wRPC call gets beyond the handler timeout, so that the handler's own
/// timeout (in messaging-core) is what the log reports.
const INVOCATION_MARGIN: Duration = Duration::from_secs(1);

/// One link: the component that calls (or is called) and the link's name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct LinkKey {
    component: String,
    link_name: String,
}

impl LinkKey {
    fn new(component: &str, link_name: &str) -> Self {
        Self {
            component: component.to_string(),
            link_name: link_name.to_string(),
        }
    }

    fn of_invocation(cx: &Option<Context>) -> Self {
        match cx {
            Some(cx) => Self::new(cx.component.as_deref().unwrap_or_default(), cx.link_name()),
            None => Self::new("", DEFAULT_LINK_NAME),
        }
    }
}

/// What a handler link asks for: a durable subscription, core NATS subscriptions, or both.
struct HandlerLink {
    cluster_uris: Vec<String>,
    durable: Option<DeliveryConfig>,
    core: Vec<CoreSubscription>,
}

/// A handler link's running subscriptions: told to stop through `stop`.
struct Running {
    durable: Option<DeliveryConfig>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct Inner {
    /// The provider's own configuration; each link's is laid over it.
    base_config: RwLock<HashMap<String, String>>,
    /// One NATS connection per set of servers, shared by every link that names them.
    connections: tokio::sync::Mutex<HashMap<Vec<String>, async_nats::Client>>,
    /// Consumer links: the publisher each component's calls use.
    publishers: RwLock<HashMap<LinkKey, Publisher>>,
    /// Handler links, keyed by target component and link name.
    subscriptions: RwLock<HashMap<LinkKey, Running>>,
    link_changes: watch::Sender<()>,
}

/// The provider: cheap to clone, clones share all state.
#[derive(Clone, Default)]
pub struct JetStreamProvider {
    inner: Arc<Inner>,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// Calls one component's `wasmcloud:messaging/handler` over the lattice.
#[derive(Clone)]
struct ComponentHandler {
    wrpc: WrpcClient,
    target: String,
}

impl Handler for ComponentHandler {
    async fn handle(&self, delivery: Delivery) -> Result<(), String> {
        let message = BrokerMessage {
            subject: delivery.subject,
            body: delivery.body,
            reply_to: delivery.reply_to,
        };
        let mut waits = 0usize;
        loop {
            match handler::handle_message(&self.wrpc, None, &message).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(reason)) => {
                    return Err(format!(
                        "handler of {} returned an error: {reason}",
                        self.target
                    ))
                }
                // No instance of the component runs (undeployed, scaling, moving): not an
                // attempt at handling. Asked again until one answers; the handler timeout
                // (messaging-core) bounds the wait and then counts it as a failed attempt.
                Err(err) if no_responders(&err) => {
                    if waits == 0 {
                        warn!(target_component = %self.target, "no instance of the handler answers; waiting for one");
                    }
                    tokio::time::sleep(
                        NO_RESPONDER_PAUSES[waits.min(NO_RESPONDER_PAUSES.len() - 1)],
                    )
                    .await;
                    waits += 1;
                }
                // A trap or a broken call: the message waits for another try.
                Err(err) => {
                    return Err(format!(
                        "calling the handler of {} failed: {err:#}",
                        self.target
                    ))
                }
            }
        }
    }
}

/// Whether a wRPC call failed because nothing subscribes to the target's subject.
fn no_responders(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::NotConnected)
    })
}

impl JetStreamProvider {
    fn merged(&self, link: &HashMap<String, String>) -> HashMap<String, String> {
        let mut values = read(&self.inner.base_config).clone();
        values.extend(link.iter().map(|(k, v)| (k.clone(), v.clone())));
        values
    }

    async fn connection(&self, uris: Vec<String>) -> anyhow::Result<async_nats::Client> {
        let mut connections = self.inner.connections.lock().await;
        if let Some(client) = connections.get(&uris) {
            return Ok(client.clone());
        }
        let client = connect(&uris, "neongrid-messaging-jetstream").await?;
        connections.insert(uris, client.clone());
        Ok(client)
    }

    /// Whether a publish on `subject` belongs in a stream of one of the handler links.
    fn durable(&self, subject: &str) -> bool {
        read(&self.inner.subscriptions)
            .values()
            .filter_map(|running| running.durable.as_ref())
            .any(|config| config.captures(subject))
    }

    async fn publisher_for(&self, link: &LinkKey) -> Result<Publisher, String> {
        let known = || read(&self.inner.publishers).get(link).cloned();
        if let Some(publisher) = known() {
            return Ok(publisher);
        }
        let mut changes = self.inner.link_changes.subscribe();
        let deadline = tokio::time::Instant::now() + UNKNOWN_LINK_WAIT;
        loop {
            if let Some(publisher) = known() {
                return Ok(publisher);
            }
            if !matches!(
                tokio::time::timeout_at(deadline, changes.changed()).await,
                Ok(Ok(()))
            ) {
                return known().ok_or_else(|| {
                    format!(
                        "no link named {:?} from component {:?} is known to this messaging \
                         provider (waited {} ms); expected a wasmcloud:messaging/consumer link \
                         from that component, as the manifest declares it; try again",
                        link.link_name,
                        link.component,
                        UNKNOWN_LINK_WAIT.as_millis()
                    )
                });
            }
        }
    }

    /// Starts (in the background, retrying) the subscriptions of one handler link.
    fn start_subscription(&self, key: LinkKey, link: HandlerLink, wrpc: WrpcClient) {
        let (stop, mut stopped) = watch::channel(false);
        let provider = self.clone();
        let durable = link.durable.clone();
        let task_key = key.clone();
        let task = tokio::spawn(async move {
            let handler = ComponentHandler {
                wrpc,
                target: task_key.component.clone(),
            };
            let mut attempt = 0usize;
            let (subscription, _core) = loop {
                let started = async {
                    let client = provider.connection(link.cluster_uris.clone()).await?;
                    let core = CoreSubscriber::start(
                        client.clone(),
                        link.core.clone(),
                        Arc::new(handler.clone()),
                    )
                    .await?;
                    let durable = match &link.durable {
                        Some(config) => Some(
                            Subscription::start(
                                jetstream::new(client),
                                config.clone(),
                                handler.clone(),
                            )
                            .await?,
                        ),
                        None => None,
                    };
                    anyhow::Ok((durable, core))
                };
                match started.await {
                    Ok(running) => break running,
                    Err(err) => {
                        let pause = START_PAUSES[attempt.min(START_PAUSES.len() - 1)];
                        attempt += 1;
                        error!(
                            target_component = %task_key.component,
                            link_name = %task_key.link_name,
                            stream = ?link.durable.as_ref().map(|c| c.stream.as_str()),
                            error = %format!("{err:#}"),
                            pause_s = pause.as_secs(),
                            "cannot start the handler link's subscriptions; trying again"
                        );
                        tokio::select! {
                            _ = stopped.changed() => return,
                            _ = tokio::time::sleep(pause) => {}
                        }
                    }
                }
            };
            let _ = stopped.changed().await;
            if let Some(subscription) = subscription {
                subscription.stop().await;
            }
            info!(target_component = %task_key.component, link_name = %task_key.link_name, "handler link's subscriptions stopped");
        });
        let running = Running {
            durable,
            stop,
            task,
        };
        if let Some(previous) = write(&self.inner.subscriptions).insert(key, running) {
            previous.stop.send_replace(true);
        }
    }
}

impl Provider for JetStreamProvider {
    async fn init(&self, init_config: impl ProviderInitConfig) -> anyhow::Result<()> {
        *write(&self.inner.base_config) = init_config.get_config().clone();
        info!(
            provider_id = init_config.get_provider_id(),
            "JetStream messaging provider starting"
        );
        Ok(())
    }

    async fn on_config_update(&self, update: impl ProviderConfigUpdate) -> anyhow::Result<()> {
        *write(&self.inner.base_config) = update.get_values().clone();
        Ok(())
    }

    /// A component that publishes and requests through this provider.
    async fn receive_link_config_as_target(&self, link: LinkConfig<'_>) -> anyhow::Result<()> {
        let key = LinkKey::new(link.source_id, link.link_name);
        let values = self.merged(link.config);
        info!(source_id = %key.component, link_name = %key.link_name, settings = ?sorted_keys(link.config), "consumer link put received");
        let client = self.connection(cluster_uris(&values)?).await?;
        write(&self.inner.publishers).insert(key, Publisher::new(client));
        self.inner.link_changes.send_replace(());
        Ok(())
    }

    /// A component whose handler receives a stream's messages.
    async fn receive_link_config_as_source(&self, link: LinkConfig<'_>) -> anyhow::Result<()> {
        let key = LinkKey::new(link.target_id, link.link_name);
        let values = self.merged(link.config);
        info!(target_id = %key.component, link_name = %key.link_name, settings = ?sorted_keys(link.config), "handler link put received");
        let handler_link = handler_link(&values).map_err(|err| {
            error!(target_id = %key.component, error = %format!("{err:#}"), "handler link refused");
            err.context("handler link refused")
        })?;
        let timeout = handler_link
            .durable
            .as_ref()
            .map_or(messaging_core::DEFAULT_HANDLER_TIMEOUT, |c| {
                c.handler_timeout
            });
        let wrpc = get_connection()
            .get_wrpc_client_custom(link.target_id, Some(timeout + INVOCATION_MARGIN))
            .await?;
        self.start_subscription(key, handler_link, wrpc);
        Ok(())
    }

    async fn delete_link_as_target(&self, info: impl LinkDeleteInfo) -> anyhow::Result<()> {
        let key = LinkKey::new(info.get_source_id(), info.get_link_name());
        write(&self.inner.publishers).remove(&key);
        info!(source_id = %key.component, link_name = %key.link_name, "consumer link deleted");
        Ok(())
    }

    async fn delete_link_as_source(&self, info: impl LinkDeleteInfo) -> anyhow::Result<()> {
        let key = LinkKey::new(info.get_target_id(), info.get_link_name());
        if let Some(running) = write(&self.inner.subscriptions).remove(&key) {
            // The handler call under way finishes and is acknowledged; the task ends after.
            running.stop.send_replace(true);
        }
        info!(target_id = %key.component, link_name = %key.link_name, "handler link deleted");
        Ok(())
    }

    async fn health_request(
        &self,
        _request: &HealthCheckRequest,
    ) -> anyhow::Result<HealthCheckResponse> {
        let connections = self.inner.connections.lock().await;
        let down: Vec<String> = connections
            .iter()
            .filter(|(_, client)| {
                client.connection_state() != async_nats::connection::State::Connected
            })
            .map(|(uris, _)| messaging_core::redacted(uris))
            .collect();
        Ok(if down.is_empty() {
            HealthCheckResponse {
                healthy: true,
                message: None,
            }
        } else {
            HealthCheckResponse {
                healthy: false,
                message: Some(format!("not connected to NATS at {}", down.join("; "))),
            }
        })
    }

    async fn shutdown(&self) -> anyhow::Result<()> {
        let running: Vec<Running> = write(&self.inner.subscriptions)
            .drain()
            .map(|(_, r)| r)
            .collect();
        for r in &running {
            r.stop.send_replace(true);
        }
        for r in running {
            if tokio::time::timeout(SHUTDOWN_WAIT, r.task).await.is_err() {
                warn!(stream = ?r.durable.as_ref().map(|c| c.stream.clone()), "a handler call was still running at shutdown; JetStream delivers its message again");
            }
        }
        write(&self.inner.publishers).clear();
        Ok(())
    }
}

/// Reads a handler link: `stream` (and its settings) asks for durable delivery,
/// `subscriptions` for core NATS delivery as the builtin provider does it.
fn handler_link(values: &HashMap<String, String>) -> anyhow::Result<HandlerLink> {
    let durable = if values.contains_key(CONFIG_STREAM) {
        Some(DeliveryConfig::from_map(values)?)
    } else {
        None
    };
    let mut core = core_subscriptions(values)?;
    if let Some(config) = &durable {
        // What the stream captures is delivered from the stream; a core subscription to the
        // same subjects (a manifest written for the builtin provider) would deliver it twice.
        core.retain(|sub| {
            let covered = config.covers(&sub.subject);
            if covered {
                info!(subject = %sub.subject, stream = %config.stream, "core subscription left out: the stream delivers these subjects");
            }
            !covered
        });
    }
    anyhow::ensure!(
        durable.is_some() || !core.is_empty(),
        "a handler link needs {CONFIG_STREAM:?} (durable delivery from a JetStream stream, \
         with its settings) or {CONFIG_SUBSCRIPTIONS:?} (core NATS subscriptions), or both; \
         it has neither"
    );
    Ok(HandlerLink {
        cluster_uris: cluster_uris(values)?,
        durable,
        core,
    })
}

/// Setting names only: values may hold credentials.
fn sorted_keys(values: &HashMap<String, String>) -> Vec<&str> {
    let mut keys: Vec<&str> = values.keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

impl consumer::Handler<Option<Context>> for JetStreamProvider {
    async fn publish(
        &self,
        cx: Option<Context>,
        message: BrokerMessage,
    ) -> anyhow::Result<Result<(), String>> {
        propagate_trace_for_ctx!(cx);
        Ok(async {
            let publisher = self.publisher_for(&LinkKey::of_invocation(&cx)).await?;
            let durable = self.durable(&message.subject);
            publisher
                .publish(
                    &message.subject,
                    message.body,
                    message.reply_to.as_deref(),
                    durable,
                )
                .await
                .map(|_| ())
                .map_err(|err| err.to_string())
        }
        .await)
    }

    async fn request(
        &self,
        cx: Option<Context>,
        subject: String,
        body: Bytes,
        timeout_ms: u32,
    ) -> anyhow::Result<Result<BrokerMessage, String>> {
        propagate_trace_for_ctx!(cx);
        Ok(async {
            let publisher = self.publisher_for(&LinkKey::of_invocation(&cx)).await?;
            let durable = self.durable(&subject);
            let reply = publisher
                .request(
                    &subject,
                    body,
                    Duration::from_millis(timeout_ms.into()),
                    durable,
                )
                .await
                .map_err(|err| err.to_string())?;
            Ok(BrokerMessage {
                subject: reply.subject,
                body: reply.body,
                reply_to: None,
            })
        }
        .await)
    }
}

//! Core NATS subscriptions, delivered as the builtin provider delivers them: at most once,
//! several at a time, with no stream behind them. For subjects that need no durability
//! (queries, request/reply services) and for a manifest written for the builtin provider.

use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::config::{CoreSubscription, CORE_IN_FLIGHT};
use crate::delivery::{Delivery, Handler};
use crate::error::Error;

/// Running core NATS subscriptions; they end when this is dropped.
pub struct CoreSubscriber {
    _loops: JoinSet<()>,
}

impl CoreSubscriber {
    /// Subscribes to each subject (in its queue group, if it names one) and hands every
    /// message to `handler`, at most [`CORE_IN_FLIGHT`] at once per subscription.
    pub async fn start<H: Handler>(
        client: async_nats::Client,
        subscriptions: Vec<CoreSubscription>,
        handler: Arc<H>,
    ) -> Result<Self, Error> {
        let mut loops = JoinSet::new();
        for subscription in subscriptions {
            let subject = subscription.subject.clone();
            let subscribed = match &subscription.queue_group {
                Some(group) => client.queue_subscribe(subject.clone(), group.clone()).await,
                None => client.subscribe(subject.clone()).await,
            };
            let mut subscriber =
                subscribed.map_err(|err| Error::nats("subscribe", &subject, err))?;
            let handler = handler.clone();
            info!(subject = %subject, queue_group = ?subscription.queue_group, "core NATS subscription started");
            loops.spawn(async move {
                let permits = Arc::new(Semaphore::new(CORE_IN_FLIGHT));
                let mut calls = JoinSet::new();
                while let Some(message) = subscriber.next().await {
                    let Ok(permit) = permits.clone().acquire_owned().await else {
                        return;
                    };
                    let handler = handler.clone();
                    calls.spawn(async move {
                        let delivery = Delivery {
                            subject: message.subject.to_string(),
                            body: message.payload,
                            reply_to: message.reply.map(|r| r.to_string()),
                            attempt: 1,
                            sequence: 0,
                            partition: 0,
                        };
                        let subject = delivery.subject.clone();
                        if let Err(reason) = handler.handle(delivery).await {
                            warn!(%subject, %reason, "handler failed a core NATS message; core NATS does not deliver it again");
                        }
                        drop(permit);
                    });
                    // Reap finished calls so the set stays as small as the calls in flight.
                    while calls.try_join_next().is_some() {}
                }
            });
        }
        Ok(Self { _loops: loops })
    }
}

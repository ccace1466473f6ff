//! Publish and request for components: into a stream when a durable subscription captures
//! the subject, on core NATS otherwise.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::HeaderMap;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::oneshot;

use crate::delivery::REPLY_TO_HEADER;
use crate::error::Error;
use crate::subject::is_literal_subject;

/// The longest a request may wait for its reply.
pub const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a publish into a stream waits for the stream's acknowledgement.
pub const STORE_ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// A reply to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub subject: String,
    pub body: Bytes,
}

/// Where a publish went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// Stored in a stream: the publisher's durable receipt.
    Stored {
        stream: String,
        sequence: u64,
        duplicate: bool,
    },
    /// Sent on core NATS (no stream captures the subject).
    Sent,
}

/// Publishes for one NATS connection.
#[derive(Clone)]
pub struct Publisher {
    client: async_nats::Client,
    js: jetstream::Context,
    /// Made on the first request into a stream, then shared by all of them.
    replies: Arc<tokio::sync::OnceCell<Arc<Replies>>>,
}

/// Replies to requests into a stream: one wildcard subscription, `<inbox>.*`, routed to
/// the waiting request by its token, so that a request costs no subscription of its own
/// (a SUB and an UNSUB per call, which nats-server must insert, remove and, on a cluster,
/// send over its routes).
struct Replies {
    prefix: String,
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, oneshot::Sender<async_nats::Message>>>,
}

impl Replies {
    fn waiting(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<async_nats::Message>>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn start(client: &async_nats::Client) -> Result<Arc<Self>, Error> {
        let prefix = client.new_inbox();
        let mut subscription = client
            .subscribe(format!("{prefix}.*"))
            .await
            .map_err(|err| Error::nats("subscribe", &prefix, err))?;
        let replies = Arc::new(Self {
            prefix,
            next: AtomicU64::new(0),
            waiting: Mutex::default(),
        });
        // Weak: the routing ends (and unsubscribes) once no publisher holds the replies.
        let routing: Weak<Self> = Arc::downgrade(&replies);
        tokio::spawn(async move {
            while let Some(message) = subscription.next().await {
                let Some(replies) = routing.upgrade() else {
                    return;
                };
                let token = message
                    .subject
                    .rsplit('.')
                    .next()
                    .and_then(|t| t.parse().ok());
                if let Some(waiter) = token.and_then(|t| replies.waiting().remove(&t)) {
                    let _ = waiter.send(message);
                }
            }
        });
        Ok(replies)
    }
}

/// Forgets a request's token when the request ends, answered or not.
struct Waiting<'a> {
    replies: &'a Replies,
    token: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.replies.waiting().remove(&self.token);
    }
}

fn check_subject(subject: &str) -> Result<(), Error> {
    if is_literal_subject(subject) {
        Ok(())
    } else {
        Err(Error::Subject {
            subject: subject.chars().take(200).collect(),
        })
    }
}

impl Publisher {
    pub fn new(client: async_nats::Client) -> Self {
        let mut js = jetstream::new(client.clone());
        js.set_timeout(STORE_ACK_TIMEOUT);
        Self {
            client,
            js,
            replies: Arc::default(),
        }
    }

    /// Publishes `body` on `subject`. When `durable` (a stream captures the subject), it is
    /// stored first and `reply_to` travels in [`REPLY_TO_HEADER`]; otherwise it goes out on
    /// core NATS with `reply_to` as the reply subject.
    pub async fn publish(
        &self,
        subject: &str,
        body: Bytes,
        reply_to: Option<&str>,
        durable: bool,
    ) -> Result<Published, Error> {
        check_subject(subject)?;
        if let Some(reply_to) = reply_to {
            check_subject(reply_to)?;
        }
        if durable {
            let mut headers = HeaderMap::new();
            if let Some(reply_to) = reply_to {
                headers.insert(REPLY_TO_HEADER, reply_to);
            }
            let ack = self
                .js
                .publish_with_headers(subject.to_string(), headers, body)
                .await
                .map_err(|err| Error::nats("stream publish", subject, err))?
                .await
                .map_err(|err| Error::nats("stream publish", subject, err))?;
            return Ok(Published::Stored {
                stream: ack.stream,
                sequence: ack.sequence,
                duplicate: ack.duplicate,
            });
        }
        let sent = match reply_to {
            Some(reply_to) => {
                self.client
                    .publish_with_reply(subject.to_string(), reply_to.to_string(), body)
                    .await
            }
            None => self.client.publish(subject.to_string(), body).await,
        };
        sent.map_err(|err| Error::nats("publish", subject, err))?;
        Ok(Published::Sent)
    }

    /// Sends `body` to `subject` and waits up to `timeout` for one reply. Into a stream,
    /// the request is stored first and names a fresh inbox in [`REPLY_TO_HEADER`].
    pub async fn request(
        &self,
        subject: &str,
        body: Bytes,
        timeout: Duration,
        durable: bool,
    ) -> Result<Reply, Error> {
        check_subject(subject)?;
        let timeout = timeout.min(MAX_REQUEST_TIMEOUT);
        let timed_out = || Error::Timeout {
            subject: subject.to_string(),
            timeout_ms: timeout.as_millis(),
        };
        if !durable {
            let reply =
                tokio::time::timeout(timeout, self.client.request(subject.to_string(), body))
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(|err| Error::nats("request", subject, err))?;
            return Ok(Reply {
                subject: reply.subject.to_string(),
                body: reply.payload,
            });
        }
        let replies = self
            .replies
            .get_or_try_init(|| Replies::start(&self.client))
            .await?;
        let token = replies.next.fetch_add(1, Ordering::Relaxed);
        let (waiter, answer) = oneshot::channel();
        // Registered before the publish, so that a fast reply cannot arrive unheard.
        replies.waiting().insert(token, waiter);
        let _forget = Waiting { replies, token };
        let inbox = format!("{}.{token}", replies.prefix);
        let exchange = async {
            self.publish(subject, body, Some(&inbox), true).await?;
            answer
                .await
                .map_err(|_| Error::nats("request", subject, "the reply subscription closed"))
        };
        let reply = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| timed_out())??;
        Ok(Reply {
            subject: reply.subject.to_string(),
            body: reply.payload,
        })
    }
}

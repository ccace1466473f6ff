//! Durable, per-key ordered delivery on NATS JetStream, acknowledged only after the
//! handler succeeded. Plain Rust over `async-nats`; the wasmCloud provider
//! (`messaging-jetstream`) is a thin adapter that implements [`Handler`] by calling a
//! component and serves [`Publisher`] to components.
//!
//! The guarantees and the stream layout are described in `providers/messaging-jetstream/README.md`
//! and in [`layout`].

mod config;
mod core_nats;
mod delivery;
mod error;
pub mod layout;
mod publish;
mod subject;

pub use config::*;
pub use core_nats::CoreSubscriber;
pub use delivery::{
    Delivery, Handler, Subscription, DEAD_LETTER_ATTEMPTS_HEADER, DEAD_LETTER_REASON_HEADER,
    DEAD_LETTER_SEQUENCE_HEADER, DEAD_LETTER_SUBJECT_HEADER, MAX_REASON_LEN, REPLY_TO_HEADER,
};
pub use error::{ConfigError, Error};
pub use publish::{Published, Publisher, Reply, MAX_REQUEST_TIMEOUT, STORE_ACK_TIMEOUT};
pub use subject::{is_literal_subject, SubjectPattern};

/// How long connecting to NATS may take.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Connects to the first NATS server of `uris` that answers; the client reconnects by
/// itself afterwards.
pub async fn connect(uris: &[String], name: &str) -> Result<async_nats::Client, Error> {
    let joined = redacted(uris);
    let servers = joined.clone();
    let options = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(CONNECT_TIMEOUT)
        // A lost connection or a slow consumer loses deliveries and acknowledgements that
        // JetStream then redelivers after the ack wait; the log says why.
        .event_callback(move |event| {
            let servers = servers.clone();
            async move {
                match event {
                    async_nats::Event::Connected => {
                        tracing::info!(%servers, "connected to NATS")
                    }
                    other => tracing::warn!(%servers, event = %other, "NATS connection event"),
                }
            }
        });
    let connecting = options.connect(uris.to_vec());
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(err)) => Err(Error::Connect {
            uris: joined,
            reason: err.to_string(),
        }),
        Err(_) => Err(Error::Connect {
            uris: joined,
            reason: format!("no server answered within {} s", CONNECT_TIMEOUT.as_secs()),
        }),
    }
}

/// `uris` for a message or a log line: comma-joined, with any credentials a URL carries
/// (`nats://user:password@host`, `nats://token@host`) replaced by `***`.
pub fn redacted(uris: &[String]) -> String {
    uris.iter()
        .map(|uri| {
            let (scheme, rest) = uri.split_once("://").unwrap_or(("", uri));
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => {
                    let host = &rest[at + 1..];
                    if scheme.is_empty() {
                        format!("***@{host}")
                    } else {
                        format!("{scheme}://***@{host}")
                    }
                }
                None => uri.clone(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_never_reach_a_message() {
        let uris = [
            "nats://alice:s3cret@10.0.0.1:4222".to_string(),
            "nats://tok3n@nats.example:4222/x".to_string(),
            "127.0.0.1:4222".to_string(),
        ];
        let text = redacted(&uris);
        assert_eq!(
            text,
            "nats://***@10.0.0.1:4222,nats://***@nats.example:4222/x,127.0.0.1:4222"
        );
        assert!(!text.contains("s3cret") && !text.contains("tok3n"));
    }
}

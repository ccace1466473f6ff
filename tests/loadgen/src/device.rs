//! What a device does to send a message and hear ingest's summary, whichever messaging
//! provider feeds ingest (providers/messaging-jetstream/README.md, "What a device
//! publishes"): a publish whose reply subject is a fresh inbox, also named in the
//! `Neongrid-Reply-To` header, and with a `Nats-Msg-Id` when the device names its message.
//!
//! - With the JetStream provider the stream answers the reply subject with its receipt
//!   (`{"stream":..,"seq":..}`) once the message is stored, and ingest's summary follows on
//!   the header's inbox, the same one. A resend of a message the stream stored already
//!   (same `Nats-Msg-Id`, within the stream's window) gets a receipt marked `duplicate`
//!   and no summary: the first copy is stored, and ingest handles it once.
//! - With the builtin provider ingest answers the reply subject itself.

use anyhow::{anyhow, bail, Result};
use async_nats::HeaderMap;
use bytes::Bytes;
use futures::StreamExt;

/// The header the JetStream provider hands to the handler as `reply-to`.
pub const REPLY_TO_HEADER: &str = messaging_core::REPLY_TO_HEADER;
/// JetStream's deduplication header.
pub const MSG_ID_HEADER: &str = "Nats-Msg-Id";

/// The `Nats-Msg-Id` of a message of one reading: unique across devices, since a reading
/// id is unique only per device.
pub fn reading_msg_id(device: &str, reading_id: &str) -> String {
    format!("{device}:{reading_id}")
}

/// What a device hears back for one publish.
#[derive(Debug)]
pub enum Answer {
    /// Ingest's summary (or whatever else ingest answered).
    Handled(async_nats::Message),
    /// The stream's receipt for a resend it had stored already: no summary follows.
    AlreadyStored,
}

impl Answer {
    /// Ingest's answer, for callers that need the summary; a deduplicated resend has none.
    pub fn handled(self) -> Result<async_nats::Message> {
        match self {
            Self::Handled(message) => Ok(message),
            Self::AlreadyStored => {
                bail!("the stream had stored this message already, so no summary follows")
            }
        }
    }
}

/// Publishes `body` on `subject` and returns ingest's answer, skipping the stream's
/// receipt, or [`Answer::AlreadyStored`] when the stream deduplicated it by `msg_id`;
/// an error receipt (the stream refused the message) is an error. Callers bound the wait
/// with a timeout.
pub async fn request(
    nats: &async_nats::Client,
    subject: String,
    body: Bytes,
    msg_id: Option<&str>,
) -> Result<Answer> {
    let inbox = nats.new_inbox();
    // Subscribed before publishing, so a fast answer cannot arrive unheard.
    let mut answers = nats.subscribe(inbox.clone()).await?;
    let mut headers = HeaderMap::new();
    headers.insert(REPLY_TO_HEADER, inbox.as_str());
    if let Some(id) = msg_id {
        headers.insert(MSG_ID_HEADER, id);
    }
    nats.publish_with_reply_and_headers(subject.clone(), inbox, headers, body)
        .await?;
    while let Some(answer) = answers.next().await {
        if answer.status.is_some_and(|s| !s.is_success()) {
            bail!(
                "publishing on {subject} failed: status {:?} {:?}",
                answer.status,
                answer.description
            );
        }
        match received(&answer.payload) {
            Received::Stored => continue,
            Received::Duplicate => return Ok(Answer::AlreadyStored),
            Received::Refused(why) => bail!("the stream refused the message on {subject}: {why}"),
            Received::Answer => return Ok(Answer::Handled(answer)),
        }
    }
    Err(anyhow!("the answer subscription for {subject} closed"))
}

enum Received {
    Stored,
    Duplicate,
    Refused(String),
    Answer,
}

/// A JetStream publish acknowledgement, told apart from ingest's summary (which has
/// `accepted`).
fn received(payload: &[u8]) -> Received {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return Received::Answer;
    };
    if value.get("accepted").is_some() {
        return Received::Answer;
    }
    if value.get("stream").is_some() && value.get("seq").is_some() {
        return match value.get("duplicate") {
            Some(serde_json::Value::Bool(true)) => Received::Duplicate,
            _ => Received::Stored,
        };
    }
    match value.get("error") {
        Some(error) if error.get("code").is_some() => Received::Refused(error.to_string()),
        _ => Received::Answer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_are_told_apart_from_answers() {
        assert!(matches!(
            received(br#"{"stream":"NEONGRID_READINGS","domain":"core","seq":7}"#),
            Received::Stored
        ));
        assert!(matches!(
            received(br#"{"stream":"NEONGRID_READINGS","seq":7,"duplicate":true}"#),
            Received::Duplicate
        ));
        assert!(matches!(
            received(br#"{"stream":"NEONGRID_READINGS","seq":7,"duplicate":false}"#),
            Received::Stored
        ));
        assert!(matches!(
            received(br#"{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}"#),
            Received::Refused(why) if why.contains("maximum messages")
        ));
        for answer in [
            &br#"{"accepted":1,"rejected":0,"duplicates":0,"alerts":0}"#[..],
            br#"{"error":"not a receipt"}"#,
            b"not json",
        ] {
            assert!(matches!(received(answer), Received::Answer));
        }
    }
}

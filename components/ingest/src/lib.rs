//! The telemetry ingest component.
//!
//! This crate is only glue: `ingest-domain` parses each message, decides what
//! to do with each reading and says in which order to do it; this crate asks
//! the validator over the `validation` link, executes the domain's plans
//! against the `hot` and `archive` key-value links, and publishes what the
//! domain says to publish. Nothing here traps on a message: bad input becomes
//! a rejection, and a failing store or publish is logged and counted.

wit_bindgen::generate!({
    path: "../../wit",
    world: "ingest",
    // Listed rather than `generate_all`, so that a new import in the world
    // fails here until someone decides where its bindings come from.
    with: {
        "wasmcloud:messaging/types@0.2.0": generate,
        "wasmcloud:messaging/consumer@0.2.0": generate,
        "wasmcloud:messaging/handler@0.2.0": generate,
        "neongrid:telemetry/validation@0.1.0": generate,
        "wasi:keyvalue/store@0.2.0-draft": generate,
        "wasi:keyvalue/atomics@0.2.0-draft": generate,
        "wasi:keyvalue/batch@0.2.0-draft": generate,
        "wasmcloud:bus/lattice@2.0.0": generate,
        "wasi:logging/logging@0.1.0-draft": generate,
    },
});

mod glue;

use exports::wasmcloud::messaging::handler::Guest;
use wasmcloud::messaging::types::BrokerMessage;

struct Ingest;

export!(Ingest);

impl Guest for Ingest {
    /// `Err` only when a reading could not be judged or stored yet
    /// (`Summary::retry_reason`), so that a durable messaging provider delivers
    /// the message again; the readings stored meanwhile are then duplicates. Every
    /// other problem was already reported on `neongrid.rejected`, and is final.
    fn handle_message(msg: BrokerMessage) -> Result<(), String> {
        let summary = glue::ingest(&msg.subject, &msg.body);
        if let Some(reply_to) = msg.reply_to {
            glue::publish(&reply_to, summary.to_bytes());
        }
        summary.retry_reason().map_or(Ok(()), Err)
    }
}

//! Real `redis-server`, Postgres and `nats-server` (with JetStream) instances for tests, on
//! free loopback ports, in temporary directories.
//!
//! Nothing is mocked: tests talk to the same server binaries production uses. Every server
//! belongs to the value that started it: dropping a [`RedisServer`], [`PostgresServer`] or
//! [`NatsServer`] kills the process and removes its directory, also when the test panics.
//! Should the test process itself die (killed, aborted), the kernel kills the servers too:
//! they are started with a parent-death signal from a thread that lives as long as the
//! process.
//!
//! Binaries are found on `PATH`, then in the usual places for each
//! (`/usr/lib/postgresql/<version>/bin` for Postgres, wash's downloads directory for
//! `nats-server`, where scripts/setup.sh puts it); `NEONGRID_REDIS_SERVER`,
//! `NEONGRID_POSTGRES_BIN` and `NEONGRID_NATS_SERVER` override the search. A missing binary
//! is an error that says how to install it; these servers never quietly skip a test.
//!
//! Starting and stopping block the calling thread for as long as the server takes (tens of
//! milliseconds for Redis and NATS, about a second for a fresh Postgres cluster).

mod error;
mod nats;
mod postgres;
mod process;
mod redis;

pub use error::{TestServerError, TestServerResult};
pub use nats::NatsServer;
pub use postgres::PostgresServer;
pub use redis::RedisServer;

use std::process::Child;

/// What every test server shares: one child process on a fixed port, stopped and started
/// again on the same port and data. Each server says how it launches and how it stops
/// politely; the rest of the lifecycle is written once here.
pub trait TestServer {
    /// A URL a client of this backend connects with.
    fn url(&self) -> String;

    /// The server's name and port, for messages.
    fn describe(&self) -> String;

    /// Stops the server cleanly, keeping its data.
    fn stop(&mut self) -> TestServerResult<()>;

    #[doc(hidden)]
    fn child_mut(&mut self) -> &mut Option<Child>;

    #[doc(hidden)]
    fn launch(&mut self) -> TestServerResult<()>;

    /// Whether the server process is running.
    fn is_running(&mut self) -> bool {
        self.child_mut()
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Starts the stopped server again on the same port and data.
    fn start_again(&mut self) -> TestServerResult<()> {
        if self.is_running() {
            return Err(TestServerError::State(format!(
                "{} is already running",
                self.describe()
            )));
        }
        self.launch()
    }

    /// [`stop`](Self::stop) then [`start_again`](Self::start_again): same port, same data.
    fn restart(&mut self) -> TestServerResult<()> {
        self.stop()?;
        self.start_again()
    }
}

#[cfg(test)]
mod tests;

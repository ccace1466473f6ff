//! Real `redis-server` and Postgres instances for tests, on free loopback ports, in
//! temporary directories.
//!
//! Nothing is mocked: tests talk to the same server binaries production uses. Every server
//! belongs to the value that started it: dropping a [`RedisServer`] or [`PostgresServer`]
//! kills the process and removes its directory, also when the test panics. Should the test
//! process itself die (killed, aborted), the kernel kills the servers too: they are started
//! with a parent-death signal from a thread that lives as long as the process.
//!
//! Binaries are found on `PATH`, then in the usual Debian locations
//! (`/usr/lib/postgresql/<version>/bin` for Postgres); `NEONGRID_REDIS_SERVER` and
//! `NEONGRID_POSTGRES_BIN` override the search. A missing binary is an error that says how
//! to install it; these servers never quietly skip a test.
//!
//! Starting and stopping block the calling thread for as long as the server takes (tens of
//! milliseconds for Redis, about a second for a fresh Postgres cluster).

mod error;
mod postgres;
mod process;
mod redis;

pub use error::{TestServerError, TestServerResult};
pub use postgres::PostgresServer;
pub use redis::RedisServer;

#[cfg(test)]
mod tests;

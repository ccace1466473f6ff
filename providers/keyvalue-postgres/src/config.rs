//! The configuration a link (or the provider) gives the Postgres backend.

use std::str::FromStr;

use keyvalue_store::{StoreConfig, StoreError, StoreResult};
use sqlx::postgres::{PgConnectOptions, PgSslMode};

/// A connection URL, `postgres://user:password@host:port/database?sslmode=...`. Read from the
/// secrets first, since it may carry a password. The entries below override its parts.
pub const CONFIG_URL: &str = "url";
/// Server host name or address.
pub const CONFIG_HOST: &str = "host";
/// Server port.
pub const CONFIG_PORT: &str = "port";
/// User to connect as.
pub const CONFIG_USER: &str = "user";
/// The user's password; read from the secrets first.
pub const CONFIG_PASSWORD: &str = "password";
/// Database to connect to.
pub const CONFIG_DATABASE: &str = "database";
/// Most connections the store's pool opens.
pub const CONFIG_POOL_SIZE: &str = "pool_size";
/// TLS mode, as libpq spells it: `disable`, `allow`, `prefer`, `require`, `verify-ca`,
/// `verify-full`.
pub const CONFIG_SSLMODE: &str = "sslmode";
/// Path of a PEM file with the CA certificate(s) to verify the server against.
pub const CONFIG_SSLROOTCERT: &str = "sslrootcert";
/// Largest value `set` accepts, in bytes.
pub const CONFIG_MAX_VALUE_SIZE: &str = "max_value_size";

/// Pool size unless configured: enough for a busy provider, small next to Postgres's default
/// limit of 100 connections shared with everything else.
pub const DEFAULT_POOL_SIZE: u32 = 10;
/// Largest value accepted unless configured otherwise. Postgres takes up to 1 GiB, but a
/// value that size holds a pooled connection (and memory on both ends) for a long time.
pub const DEFAULT_MAX_VALUE_SIZE: usize = 16 * 1024 * 1024;

/// A parsed, validated Postgres configuration.
#[derive(Clone)]
pub struct PostgresConfig {
    pub(crate) options: PgConnectOptions,
    pub(crate) pool_size: u32,
    pub(crate) max_value_size: usize,
}

impl std::fmt::Debug for PostgresConfig {
    // The connect options hold the password; show only where they point.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("server", &self.server())
            .field("pool_size", &self.pool_size)
            .field("max_value_size", &self.max_value_size)
            .finish_non_exhaustive()
    }
}

impl PostgresConfig {
    /// Reads the configuration: [`CONFIG_URL`] (secrets first) as the base, then
    /// [`CONFIG_HOST`], [`CONFIG_PORT`], [`CONFIG_USER`], [`CONFIG_PASSWORD`] (secrets first),
    /// [`CONFIG_DATABASE`], [`CONFIG_SSLMODE`] and [`CONFIG_SSLROOTCERT`] over it, plus
    /// [`CONFIG_POOL_SIZE`] and [`CONFIG_MAX_VALUE_SIZE`]. Without a URL, unset parts take
    /// libpq's defaults (the `PG*` environment variables, then localhost:5432).
    pub fn from_store_config(config: &StoreConfig) -> StoreResult<Self> {
        let mut options = match config.secret(CONFIG_URL) {
            Some(url) => {
                // sqlx's parser takes any scheme; anything but Postgres is a mistake here.
                // The reason never echoes the URL, which may hold a password.
                let expected =
                    "expected postgres://[user[:password]@]host[:port][/database][?sslmode=...]";
                let scheme = url.split_once("://").map(|(scheme, _)| scheme);
                if !matches!(scheme, Some("postgres" | "postgresql")) {
                    return Err(invalid(CONFIG_URL, expected));
                }
                PgConnectOptions::from_str(url).map_err(|_| invalid(CONFIG_URL, expected))?
            }
            None => PgConnectOptions::new_without_pgpass(),
        };
        if let Some(host) = config.value(CONFIG_HOST) {
            options = options.host(host);
        }
        if let Some(port) = config.value(CONFIG_PORT) {
            let port = port.trim().parse::<u16>().map_err(|_| {
                invalid(
                    CONFIG_PORT,
                    &format!("expected a port number, found {port:?}"),
                )
            })?;
            options = options.port(port);
        }
        if let Some(user) = config.secret(CONFIG_USER) {
            options = options.username(user);
        }
        if let Some(password) = config.secret(CONFIG_PASSWORD) {
            options = options.password(password);
        }
        if let Some(database) = config.value(CONFIG_DATABASE) {
            options = options.database(database);
        }
        if let Some(mode) = config.value(CONFIG_SSLMODE) {
            let mode = PgSslMode::from_str(mode.trim()).map_err(|_| {
                invalid(
                    CONFIG_SSLMODE,
                    &format!(
                        "expected disable, allow, prefer, require, verify-ca or verify-full, \
                         found {mode:?}"
                    ),
                )
            })?;
            options = options.ssl_mode(mode);
        }
        if let Some(path) = config.value(CONFIG_SSLROOTCERT) {
            options = options.ssl_root_cert(path);
        }
        let pool_size = positive(config, CONFIG_POOL_SIZE, DEFAULT_POOL_SIZE as usize)?;
        let pool_size =
            u32::try_from(pool_size).map_err(|_| invalid(CONFIG_POOL_SIZE, "too large"))?;
        let max_value_size = positive(config, CONFIG_MAX_VALUE_SIZE, DEFAULT_MAX_VALUE_SIZE)?;
        Ok(Self {
            options: options.application_name("neongrid-keyvalue"),
            pool_size,
            max_value_size,
        })
    }

    /// `host:port/database` of the server: safe to print.
    pub fn server(&self) -> String {
        format!(
            "{}:{}/{}",
            self.options.get_host(),
            self.options.get_port(),
            self.options
                .get_database()
                .unwrap_or(self.options.get_username())
        )
    }
}

fn invalid(key: &str, reason: &str) -> StoreError {
    StoreError::InvalidConfig {
        key: key.to_owned(),
        reason: reason.to_owned(),
    }
}

fn positive(config: &StoreConfig, key: &str, default: usize) -> StoreResult<usize> {
    match config.value(key) {
        None => Ok(default),
        Some(text) => text
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|value| *value > 0)
            .ok_or_else(|| invalid(key, &format!("expected a positive integer, found {text:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_override_the_url_and_the_password_comes_from_secrets() {
        let mut config = StoreConfig::from_values([
            (
                CONFIG_URL,
                "postgres://app@db.example:5433/main?sslmode=require",
            ),
            (CONFIG_DATABASE, "other"),
            (CONFIG_POOL_SIZE, "3"),
        ]);
        config
            .secrets
            .insert(CONFIG_PASSWORD.into(), "hunter2".into());
        let parsed = PostgresConfig::from_store_config(&config).unwrap();
        assert_eq!(parsed.server(), "db.example:5433/other");
        assert_eq!(parsed.pool_size, 3);
        assert_eq!(parsed.options.get_username(), "app");
        assert!(!format!("{parsed:?}").contains("hunter2"));
    }

    #[test]
    fn parts_alone_are_enough() {
        let config = StoreConfig::from_values([
            (CONFIG_HOST, "10.0.0.5"),
            (CONFIG_PORT, "6543"),
            (CONFIG_USER, "kv"),
            (CONFIG_DATABASE, "kv"),
            (CONFIG_SSLMODE, "disable"),
        ]);
        let parsed = PostgresConfig::from_store_config(&config).unwrap();
        assert_eq!(parsed.server(), "10.0.0.5:6543/kv");
        assert_eq!(parsed.pool_size, DEFAULT_POOL_SIZE);
        assert_eq!(parsed.max_value_size, DEFAULT_MAX_VALUE_SIZE);
    }

    #[test]
    fn bad_entries_are_named_without_echoing_secrets() {
        for (key, value) in [
            (CONFIG_URL, "mysql://user:hunter2@nowhere"),
            (CONFIG_PORT, "five"),
            (CONFIG_SSLMODE, "sometimes"),
            (CONFIG_POOL_SIZE, "0"),
            (CONFIG_MAX_VALUE_SIZE, "-1"),
        ] {
            let err = PostgresConfig::from_store_config(&StoreConfig::from_values([(key, value)]))
                .unwrap_err();
            assert!(
                matches!(&err, StoreError::InvalidConfig { key: k, .. } if k == key),
                "{key}: {err:?}"
            );
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }
}

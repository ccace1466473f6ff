//! The configuration a link (or the provider) gives the Redis backend.

use keyvalue_store::{StoreConfig, StoreError, StoreResult};
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo};

/// The server: `redis://[user[:password]@]host[:port][/db]`, or `rediss://` for TLS. Read
/// from the secrets first, since it may carry a password.
pub const CONFIG_URL: &str = "url";
/// A password that replaces any in the URL: lets the URL live in plain configuration and
/// the password in a secret.
pub const CONFIG_PASSWORD: &str = "password";
/// A username (Redis 6 ACLs) that replaces any in the URL.
pub const CONFIG_USERNAME: &str = "username";
/// Largest value `set` accepts, in bytes.
pub const CONFIG_MAX_VALUE_SIZE: &str = "max_value_size";

/// The server used when no URL is configured: a Redis on this machine.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379/";
/// Largest value accepted unless configured otherwise. Redis itself takes up to 512 MiB, but
/// values that large stall the single connection every other call shares.
pub const DEFAULT_MAX_VALUE_SIZE: usize = 16 * 1024 * 1024;

/// A parsed, validated Redis configuration.
#[derive(Clone)]
pub struct RedisConfig {
    info: ConnectionInfo,
    pub(crate) max_value_size: usize,
}

impl std::fmt::Debug for RedisConfig {
    // The connection info holds the password; show only where it points.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("server", &self.server())
            .field("tls", &self.uses_tls())
            .field("max_value_size", &self.max_value_size)
            .finish_non_exhaustive()
    }
}

impl RedisConfig {
    /// Reads the configuration: [`CONFIG_URL`] (secrets first), [`CONFIG_USERNAME`] and
    /// [`CONFIG_PASSWORD`] (secrets first) over it, and [`CONFIG_MAX_VALUE_SIZE`].
    pub fn from_store_config(config: &StoreConfig) -> StoreResult<Self> {
        let url = config.secret(CONFIG_URL).unwrap_or(DEFAULT_URL);
        // The parser's messages never echo the URL, so they are safe to pass on.
        let mut info = url
            .into_connection_info()
            .map_err(|err| StoreError::InvalidConfig {
                key: CONFIG_URL.to_owned(),
                reason: format!(
                    "expected redis://[user[:password]@]host[:port][/db] or rediss://...: {err}"
                ),
            })?;
        let mut settings = info.redis_settings().clone();
        if let Some(username) = config.secret(CONFIG_USERNAME) {
            settings = settings.set_username(username);
        }
        if let Some(password) = config.secret(CONFIG_PASSWORD) {
            settings = settings.set_password(password);
        }
        info = info.set_redis_settings(settings);
        let max_value_size = match config.value(CONFIG_MAX_VALUE_SIZE) {
            None => DEFAULT_MAX_VALUE_SIZE,
            Some(text) => text
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|size| *size > 0)
                .ok_or_else(|| StoreError::InvalidConfig {
                    key: CONFIG_MAX_VALUE_SIZE.to_owned(),
                    reason: format!("expected a positive number of bytes, found {text:?}"),
                })?,
        };
        Ok(Self {
            info,
            max_value_size,
        })
    }

    /// The connection details, password included.
    pub(crate) fn connection_info(&self) -> &ConnectionInfo {
        &self.info
    }

    /// `host:port` (or socket path) of the server: safe to print.
    pub fn server(&self) -> String {
        self.info.addr().to_string()
    }

    /// Whether connections use TLS (`rediss://`).
    pub fn uses_tls(&self) -> bool {
        matches!(self.info.addr(), ConnectionAddr::TcpTls { .. })
    }

    /// Whether a password will be sent (never the password itself).
    pub fn has_password(&self) -> bool {
        self.info.redis_settings().password().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_to_a_local_server() {
        let config = RedisConfig::from_store_config(&StoreConfig::default()).unwrap();
        assert_eq!(config.server(), "127.0.0.1:6379");
        assert!(!config.uses_tls());
        assert_eq!(config.max_value_size, DEFAULT_MAX_VALUE_SIZE);
    }

    #[test]
    fn url_from_a_secret_wins_and_never_prints() {
        let mut config = StoreConfig::from_values([(CONFIG_URL, "redis://plain:6379")]);
        config.secrets.insert(
            CONFIG_URL.into(),
            "rediss://user:hunter2@secret.example:6380/2".into(),
        );
        let parsed = RedisConfig::from_store_config(&config).unwrap();
        assert_eq!(parsed.server(), "secret.example:6380");
        assert!(parsed.uses_tls());
        assert!(parsed.has_password());
        assert!(!format!("{parsed:?}").contains("hunter2"));
    }

    #[test]
    fn password_secret_overrides_the_url() {
        let mut config = StoreConfig::from_values([(CONFIG_URL, "redis://db:6379")]);
        config
            .secrets
            .insert(CONFIG_PASSWORD.into(), "from-secret".into());
        let parsed = RedisConfig::from_store_config(&config).unwrap();
        assert_eq!(
            parsed.connection_info().redis_settings().password(),
            Some("from-secret")
        );
    }

    #[test]
    fn bad_entries_are_named() {
        let err = RedisConfig::from_store_config(&StoreConfig::from_values([(
            CONFIG_URL,
            "http://user:hunter2@nowhere",
        )]))
        .unwrap_err();
        assert!(
            matches!(&err, StoreError::InvalidConfig { key, .. } if key == CONFIG_URL),
            "{err:?}"
        );
        assert!(!err.to_string().contains("hunter2"), "{err}");

        for bad in ["0", "-1", "lots"] {
            let err = RedisConfig::from_store_config(&StoreConfig::from_values([(
                CONFIG_MAX_VALUE_SIZE,
                bad,
            )]))
            .unwrap_err();
            assert!(
                matches!(&err, StoreError::InvalidConfig { key, .. } if key == CONFIG_MAX_VALUE_SIZE),
                "{err:?}"
            );
        }
    }
}

use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// The settings a [`crate::StoreFactory`] opens a store from: plain configuration values plus
/// secrets (passwords, tokens), kept apart so that secrets never reach a log.
///
/// Ordered maps make two configurations with the same entries equal and hash alike, which is
/// what lets the provider glue share one store between links configured identically.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct StoreConfig {
    pub values: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, String>,
}

impl StoreConfig {
    /// A configuration of plain values only.
    pub fn from_values<K, V>(values: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            values: values
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            secrets: BTreeMap::new(),
        }
    }

    /// The plain value of `key`.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// The secret `key`, falling back to a plain value of that name so that a setting can be
    /// supplied either way during development.
    pub fn secret(&self, key: &str) -> Option<&str> {
        self.secrets
            .get(key)
            .or_else(|| self.values.get(key))
            .map(String::as_str)
    }

    /// The names of the plain settings, for logs: values such as URLs may carry credentials.
    pub fn value_names(&self) -> Vec<&str> {
        self.values.keys().map(String::as_str).collect()
    }

    /// The names of the secrets, for logs.
    pub fn secret_names(&self) -> Vec<&str> {
        self.secrets.keys().map(String::as_str).collect()
    }

    /// This configuration with every entry of `overlay` laid over it (overlay wins).
    pub fn overlaid_with(&self, overlay: &StoreConfig) -> StoreConfig {
        let mut merged = self.clone();
        merged.values.extend(overlay.values.clone());
        merged.secrets.extend(overlay.secrets.clone());
        merged
    }
}

impl From<&HashMap<String, String>> for StoreConfig {
    fn from(values: &HashMap<String, String>) -> Self {
        Self::from_values(values.iter().map(|(k, v)| (k.clone(), v.clone())))
    }
}

impl fmt::Debug for StoreConfig {
    // Secret names are useful when debugging a link; their values must never be printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("values", &self.values)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_secret_values() {
        let mut config = StoreConfig::from_values([("url", "redis://db:6379")]);
        config.secrets.insert("password".into(), "hunter2".into());
        let printed = format!("{config:?}");
        assert!(printed.contains("redis://db:6379"), "{printed}");
        assert!(printed.contains("password"), "{printed}");
        assert!(!printed.contains("hunter2"), "{printed}");
    }

    #[test]
    fn names_for_logs_carry_no_value() {
        let mut config = StoreConfig::from_values([("url", "redis://:pw@db:6379")]);
        config.secrets.insert("password".into(), "hunter2".into());
        assert_eq!(config.value_names(), ["url"]);
        assert_eq!(config.secret_names(), ["password"]);
    }

    #[test]
    fn overlay_wins_and_keeps_the_rest() {
        let base = StoreConfig::from_values([("a", "1"), ("b", "2")]);
        let overlay = StoreConfig::from_values([("b", "3")]);
        let merged = base.overlaid_with(&overlay);
        assert_eq!(merged.value("a"), Some("1"));
        assert_eq!(merged.value("b"), Some("3"));
    }

    #[test]
    fn secret_falls_back_to_plain_value() {
        let mut config = StoreConfig::from_values([("token", "plain")]);
        assert_eq!(config.secret("token"), Some("plain"));
        config.secrets.insert("token".into(), "secret".into());
        assert_eq!(config.secret("token"), Some("secret"));
        assert_eq!(config.value("token"), Some("plain"));
    }

    #[test]
    fn equal_entries_make_equal_configs_whatever_the_insertion_order() {
        let a = StoreConfig::from_values([("x", "1"), ("y", "2")]);
        let b = StoreConfig::from_values([("y", "2"), ("x", "1")]);
        assert_eq!(a, b);
    }
}

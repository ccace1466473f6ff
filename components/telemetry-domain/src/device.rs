//! Device identifiers, as they appear in URLs and inside key-value keys.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::excerpt::quoted;

/// Longest device id accepted. Bounded so that every key built from an id stays
/// well inside the key-length limits of the stores behind `wasi:keyvalue`.
pub const MAX_DEVICE_ID_LEN: usize = 64;

/// The device-id rules in words, repeated in every error so a client can fix
/// its request without reading documentation.
pub const DEVICE_ID_RULE: &str = "1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-', \
     starting with a letter or digit, not ending in '.' and never containing \"..\"";

/// A validated device id.
///
/// Besides the character set, an id must start with a letter or digit and may not
/// contain `..`: ids become path-like key segments (`device/<id>/…`), and `.`,
/// `..` or empty segments are treated specially by file-backed stores and are
/// invalid in NATS key-value keys. Nor may it end in `.`: an id is also the last
/// tokens of its device's subject (`neongrid.readings.<id>`), and NATS refuses an
/// empty token.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceId(String);

/// Why a device id was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DeviceIdError {
    #[error("device id is empty; expected {}", DEVICE_ID_RULE)]
    Empty,
    #[error("device id is {len} characters long; expected {}", DEVICE_ID_RULE)]
    TooLong { len: usize },
    #[error("device id {} has {ch:?} at character {position}; expected {}", quoted(.id), DEVICE_ID_RULE)]
    ForbiddenChar {
        id: String,
        ch: char,
        /// 1-based, counted in characters.
        position: usize,
    },
    #[error("device id {} starts with {first:?}; expected {}", quoted(.id), DEVICE_ID_RULE)]
    BadStart { id: String, first: char },
    #[error("device id {} contains \"..\"; expected {}", quoted(.id), DEVICE_ID_RULE)]
    DoubleDot { id: String },
    #[error("device id {} ends in '.'; expected {}", quoted(.id), DEVICE_ID_RULE)]
    TrailingDot { id: String },
}

impl DeviceId {
    /// Validates `id` against [`DEVICE_ID_RULE`].
    pub fn parse(id: &str) -> Result<Self, DeviceIdError> {
        let len = id.chars().count();
        if len == 0 {
            return Err(DeviceIdError::Empty);
        }
        if len > MAX_DEVICE_ID_LEN {
            return Err(DeviceIdError::TooLong { len });
        }
        if let Some((index, ch)) = id.chars().enumerate().find(|&(_, ch)| !is_id_char(ch)) {
            return Err(DeviceIdError::ForbiddenChar {
                id: id.to_owned(),
                ch,
                position: index + 1,
            });
        }
        // Non-empty was checked above, so there is a first character.
        if let Some(first) = id.chars().next().filter(|c| !c.is_ascii_alphanumeric()) {
            return Err(DeviceIdError::BadStart {
                id: id.to_owned(),
                first,
            });
        }
        if id.contains("..") {
            return Err(DeviceIdError::DoubleDot { id: id.to_owned() });
        }
        if id.ends_with('.') {
            return Err(DeviceIdError::TrailingDot { id: id.to_owned() });
        }
        Ok(Self(id.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_id_char(ch: char) -> bool {
    ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-')
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for DeviceId {
    type Error = DeviceIdError;

    fn try_from(id: String) -> Result<Self, Self::Error> {
        Self::parse(&id)
    }
}

impl From<DeviceId> for String {
    fn from(id: DeviceId) -> Self {
        id.0
    }
}

impl AsRef<str> for DeviceId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ids_made_of_allowed_characters() {
        for id in ["a", "sensor-01", "Lab_3.north", "0", "a.b.c", "X-_.9"] {
            assert_eq!(DeviceId::parse(id).unwrap().as_str(), id);
        }
        let longest = "d".repeat(MAX_DEVICE_ID_LEN);
        assert!(DeviceId::parse(&longest).is_ok());
    }

    #[test]
    fn refuses_empty_id() {
        let err = DeviceId::parse("").unwrap_err();
        assert_eq!(err, DeviceIdError::Empty);
        assert!(err.to_string().contains("1 to 64 characters"));
    }

    #[test]
    fn refuses_too_long_id_and_reports_its_length() {
        let err = DeviceId::parse(&"d".repeat(MAX_DEVICE_ID_LEN + 1)).unwrap_err();
        assert_eq!(err, DeviceIdError::TooLong { len: 65 });
        assert!(err
            .to_string()
            .starts_with("device id is 65 characters long"));
    }

    #[test]
    fn refuses_forbidden_characters_naming_the_first_one() {
        let err = DeviceId::parse("ab/c").unwrap_err();
        assert_eq!(
            err,
            DeviceIdError::ForbiddenChar {
                id: "ab/c".into(),
                ch: '/',
                position: 3
            }
        );
        assert_eq!(
            err.to_string(),
            format!("device id \"ab/c\" has '/' at character 3; expected {DEVICE_ID_RULE}")
        );
        for id in ["a b", "a%20b", "dé", "a:b", "a\u{0}"] {
            assert!(
                matches!(
                    DeviceId::parse(id),
                    Err(DeviceIdError::ForbiddenChar { .. })
                ),
                "{id:?}"
            );
        }
    }

    #[test]
    fn refuses_ids_that_would_make_special_key_segments() {
        for id in [".", "..", ".hidden", "-x", "_x"] {
            assert!(
                matches!(DeviceId::parse(id), Err(DeviceIdError::BadStart { .. })),
                "{id:?}"
            );
        }
        let err = DeviceId::parse("a..b").unwrap_err();
        assert_eq!(err, DeviceIdError::DoubleDot { id: "a..b".into() });
        let err = DeviceId::parse("lab.").unwrap_err();
        assert_eq!(err, DeviceIdError::TrailingDot { id: "lab.".into() });
        assert!(err.to_string().contains("ends in '.'"), "{err}");
        assert!(DeviceId::parse("lab.3").is_ok());
    }

    #[test]
    fn serde_round_trips_and_validates() {
        let id = DeviceId::parse("sensor-1").unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, r#""sensor-1""#);
        assert_eq!(serde_json::from_str::<DeviceId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<DeviceId>(r#""bad id""#).is_err());
    }
}

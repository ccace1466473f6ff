//! Reading ids: the sender's name for one reading, the unit of idempotency.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use telemetry_domain::excerpt::quoted;

/// Longest reading id accepted: long enough for a UUID, a ULID or a
/// device-prefixed counter, short enough that `seen/<device>/<id>` stays a
/// small key.
pub const MAX_READING_ID_LEN: usize = 128;

/// The reading-id rules in words, repeated in every error.
pub const READING_ID_RULE: &str = "1 to 128 characters of A-Z, a-z, 0-9, '.', '_' and '-', \
     starting with a letter or digit and never containing \"..\"";

/// A validated reading id.
///
/// The character set is the device-id set, for the same reason: the id becomes
/// a key segment (`seen/<device>/<id>`), so it may not hold `/`, and it may not
/// make `.`, `..` or empty segments, which some stores treat specially. Ids are
/// case-sensitive and compared byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ReadingId(String);

/// Why a reading id was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReadingIdError {
    #[error("reading id is empty; expected {}", READING_ID_RULE)]
    Empty,
    #[error("reading id is {len} characters long; expected {}", READING_ID_RULE)]
    TooLong { len: usize },
    #[error("reading id {} has {ch:?} at character {position}; expected {}", quoted(.id), READING_ID_RULE)]
    ForbiddenChar {
        id: String,
        ch: char,
        /// 1-based, counted in characters.
        position: usize,
    },
    #[error("reading id {} starts with {first:?}; expected {}", quoted(.id), READING_ID_RULE)]
    BadStart { id: String, first: char },
    #[error("reading id {} contains \"..\"; expected {}", quoted(.id), READING_ID_RULE)]
    DoubleDot { id: String },
}

impl ReadingId {
    /// Validates `id` against [`READING_ID_RULE`].
    pub fn parse(id: &str) -> Result<Self, ReadingIdError> {
        let len = id.chars().count();
        if len == 0 {
            return Err(ReadingIdError::Empty);
        }
        if len > MAX_READING_ID_LEN {
            return Err(ReadingIdError::TooLong { len });
        }
        if let Some((index, ch)) = id.chars().enumerate().find(|&(_, ch)| !is_id_char(ch)) {
            return Err(ReadingIdError::ForbiddenChar {
                id: id.to_owned(),
                ch,
                position: index + 1,
            });
        }
        if let Some(first) = id.chars().next().filter(|c| !c.is_ascii_alphanumeric()) {
            return Err(ReadingIdError::BadStart {
                id: id.to_owned(),
                first,
            });
        }
        if id.contains("..") {
            return Err(ReadingIdError::DoubleDot { id: id.to_owned() });
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

impl fmt::Display for ReadingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ReadingId {
    type Error = ReadingIdError;

    fn try_from(id: String) -> Result<Self, Self::Error> {
        Self::parse(&id)
    }
}

impl From<ReadingId> for String {
    fn from(id: ReadingId) -> Self {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_uuids_ulids_and_counters() {
        for id in [
            "r1",
            "0",
            "3f2b8c1e-9d4a-4f6b-8a2e-1c5d7e9f0a1b",
            "01JD3ZQ8V6K9X2M4N7P5R8T0WY",
            "thermo-17.000042",
            "A_b-C.d",
        ] {
            assert_eq!(ReadingId::parse(id).unwrap().as_str(), id);
        }
        assert!(ReadingId::parse(&"r".repeat(MAX_READING_ID_LEN)).is_ok());
    }

    #[test]
    fn refuses_empty_and_too_long_ids() {
        assert_eq!(ReadingId::parse("").unwrap_err(), ReadingIdError::Empty);
        let err = ReadingId::parse(&"r".repeat(MAX_READING_ID_LEN + 1)).unwrap_err();
        assert_eq!(err, ReadingIdError::TooLong { len: 129 });
        assert!(err.to_string().contains("1 to 128 characters"));
    }

    #[test]
    fn refuses_characters_that_would_break_keys_or_subjects() {
        for id in ["a/b", "a b", "a:b", "a*b", "a>b", "é", "a\u{0}"] {
            assert!(
                matches!(
                    ReadingId::parse(id),
                    Err(ReadingIdError::ForbiddenChar { .. })
                ),
                "{id:?}"
            );
        }
        assert_eq!(
            ReadingId::parse("ab/c").unwrap_err().to_string(),
            format!("reading id \"ab/c\" has '/' at character 3; expected {READING_ID_RULE}")
        );
    }

    #[test]
    fn refuses_special_segments() {
        for id in [".", "..", ".x", "-x", "_x"] {
            assert!(
                matches!(ReadingId::parse(id), Err(ReadingIdError::BadStart { .. })),
                "{id:?}"
            );
        }
        assert!(matches!(
            ReadingId::parse("a..b"),
            Err(ReadingIdError::DoubleDot { .. })
        ));
    }

    #[test]
    fn serde_validates() {
        let id: ReadingId = serde_json::from_str(r#""r-1""#).unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), r#""r-1""#);
        assert!(serde_json::from_str::<ReadingId>(r#""r 1""#).is_err());
    }
}

//! Rules every backend applies identically, written once so that backends cannot disagree.

use bytes::Bytes;

use crate::{KeyPage, StoreError, StoreResult};

/// The most keys one `list_keys` page may hold.
///
/// Bounds the size of one reply (the wRPC `list-keys` call has no limit parameter, so the
/// provider always asks for this many) while keeping the number of round trips for a large
/// bucket reasonable.
pub const MAX_PAGE_SIZE: usize = 1000;

/// How much of an offending value a [`StoreError::NotNumeric`] message shows.
const VALUE_PREVIEW_CHARS: usize = 32;

/// The page size actually used for a requested `limit`: at least 1 (a page of nothing would
/// let a cursor walk never advance) and at most [`MAX_PAGE_SIZE`].
/// The value-size rule every backend applies before writing: a value over `max` bytes is
/// refused with [`StoreError::TooLarge`], so a batch can be checked whole before any write.
pub fn check_value_size(
    bucket: &str,
    key: &str,
    value: &[u8],
    max: usize,
) -> Result<(), StoreError> {
    if value.len() > max {
        return Err(StoreError::TooLarge {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            size: value.len(),
            max,
        });
    }
    Ok(())
}

/// [`check_value_size`] for every entry of a batch, so that a refused batch is refused
/// before any of it is written.
pub fn check_batch_sizes(
    bucket: &str,
    entries: &[(String, Bytes)],
    max: usize,
) -> Result<(), StoreError> {
    entries
        .iter()
        .try_for_each(|(key, value)| check_value_size(bucket, key, value, max))
}

pub fn clamp_page_limit(limit: usize) -> usize {
    limit.clamp(1, MAX_PAGE_SIZE)
}

/// Reads a stored counter. Accepts exactly what `encode_counter` writes: ASCII digits, no
/// sign, no whitespace, no leading zeros, within `u64`. This is Redis's rule for `INCRBY`,
/// restricted to the unsigned range that `wasi:keyvalue` counters have.
pub fn parse_counter(value: &[u8]) -> Option<u64> {
    let canonical = match value {
        [] => false,
        [b'0'] => true,
        [b'0', ..] => false,
        digits => digits.iter().all(u8::is_ascii_digit),
    };
    if !canonical {
        return None;
    }
    // Only digits remain, so the sole way to fail now is overflow.
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// How a counter is stored: ASCII decimal, so other clients of the same backend (a Redis CLI,
/// say) read and update it as a number too.
pub fn encode_counter(value: u64) -> Bytes {
    Bytes::from(value.to_string())
}

/// The counter value after adding `delta` to the value currently stored (`None` if the key is
/// missing), exactly as Redis `INCRBY` does it: a missing key counts as 0, a value that is not
/// a counter is an error rather than being overwritten, and going past `u64::MAX` is an error
/// rather than wrapping. The caller writes `encode_counter(new)` back.
pub fn apply_increment(
    bucket: &str,
    key: &str,
    current: Option<&[u8]>,
    delta: u64,
) -> StoreResult<u64> {
    let current = match current {
        None => 0,
        Some(value) => parse_counter(value).ok_or_else(|| StoreError::NotNumeric {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            found: describe_value(value),
        })?,
    };
    current
        .checked_add(delta)
        .ok_or_else(|| StoreError::Overflow {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            current,
            delta,
        })
}

/// A short printable rendering of a stored value for error messages.
pub fn describe_value(value: &[u8]) -> String {
    match std::str::from_utf8(value) {
        Ok(text) => {
            let mut chars = text.chars();
            let preview: String = chars.by_ref().take(VALUE_PREVIEW_CHARS).collect();
            if chars.next().is_some() {
                format!("{preview:?}... ({} bytes)", value.len())
            } else {
                format!("{preview:?}")
            }
        }
        Err(_) => format!("<{} bytes of binary data>", value.len()),
    }
}

/// One page of keys for a backend that can walk a bucket's keys in a stable order (a sorted
/// map, for instance). The cursor is the number of keys already handed out, so walking every
/// page yields every key exactly once as long as the bucket does not change meanwhile.
///
/// A cursor past the end yields an empty last page rather than an error: keys deleted between
/// two pages can legitimately make an earlier cursor overshoot.
pub fn page_by_offset<I>(
    bucket: &str,
    ordered_keys: I,
    cursor: Option<u64>,
    limit: usize,
) -> StoreResult<KeyPage>
where
    I: IntoIterator,
    I::Item: Into<String>,
{
    let offset = match cursor {
        None => 0,
        Some(cursor) => usize::try_from(cursor).map_err(|_| StoreError::InvalidCursor {
            bucket: bucket.to_owned(),
            cursor,
            reason: "it is larger than any position this platform can address".to_owned(),
        })?,
    };
    let limit = clamp_page_limit(limit);
    let mut rest = ordered_keys.into_iter().skip(offset).peekable();
    let keys: Vec<String> = rest.by_ref().take(limit).map(Into::into).collect();
    // usize always fits in u64 on the platforms Rust supports.
    let cursor = rest.peek().map(|_| (offset + keys.len()) as u64);
    Ok(KeyPage { keys, cursor })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_parse_like_redis() {
        assert_eq!(parse_counter(b"0"), Some(0));
        assert_eq!(parse_counter(b"42"), Some(42));
        assert_eq!(parse_counter(b"18446744073709551615"), Some(u64::MAX));
        for bad in [
            &b""[..],
            b" 1",
            b"1 ",
            b"+1",
            b"-1",
            b"01",
            b"00",
            b"1.0",
            b"1e3",
            b"0x10",
            b"18446744073709551616",
            b"\xff",
            "٣".as_bytes(), // a non-ASCII digit
        ] {
            assert_eq!(parse_counter(bad), None, "{bad:?} must not parse");
        }
    }

    #[test]
    fn increment_of_missing_key_starts_at_zero() {
        assert_eq!(apply_increment("b", "k", None, 5).unwrap(), 5);
        assert_eq!(apply_increment("b", "k", None, 0).unwrap(), 0);
    }

    #[test]
    fn increment_adds_to_stored_counter_and_round_trips() {
        let next = apply_increment("b", "k", Some(b"41"), 1).unwrap();
        assert_eq!(next, 42);
        assert_eq!(&encode_counter(next)[..], b"42");
        assert_eq!(parse_counter(&encode_counter(u64::MAX)), Some(u64::MAX));
    }

    #[test]
    fn increment_of_text_names_bucket_key_and_value() {
        let err = apply_increment("orders", "total", Some(b"twelve"), 1).unwrap_err();
        assert!(matches!(err, StoreError::NotNumeric { .. }), "{err:?}");
        let message = err.to_string();
        for part in ["\"orders\"", "\"total\"", "\"twelve\"", "unsigned 64-bit"] {
            assert!(message.contains(part), "{message:?} lacks {part}");
        }
    }

    #[test]
    fn increment_past_u64_max_is_an_overflow_not_a_wrap() {
        let err = apply_increment("b", "k", Some(b"18446744073709551615"), 1).unwrap_err();
        match err {
            StoreError::Overflow { current, delta, .. } => {
                assert_eq!((current, delta), (u64::MAX, 1))
            }
            other => panic!("expected Overflow, got {other:?}"),
        }
        assert!(apply_increment("b", "k", Some(b"1"), u64::MAX).is_err());
        assert_eq!(
            apply_increment("b", "k", Some(b"1"), u64::MAX - 1).unwrap(),
            u64::MAX
        );
    }

    #[test]
    fn value_descriptions_are_short_and_printable() {
        assert_eq!(describe_value(b""), "\"\"");
        assert_eq!(describe_value(b"\xff\x00"), "<2 bytes of binary data>");
        let long = "x".repeat(100);
        let described = describe_value(long.as_bytes());
        assert!(described.len() < 60, "{described}");
        assert!(described.contains("100 bytes"), "{described}");
    }

    #[test]
    fn page_limits_are_clamped() {
        assert_eq!(clamp_page_limit(0), 1);
        assert_eq!(clamp_page_limit(10), 10);
        assert_eq!(clamp_page_limit(usize::MAX), MAX_PAGE_SIZE);
    }

    #[test]
    fn offset_pages_cover_every_key_once() {
        let keys: Vec<String> = (0..25).map(|i| format!("k{i:02}")).collect();
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = page_by_offset("b", keys.iter().cloned(), cursor, 10).unwrap();
            assert!(page.keys.len() <= 10);
            seen.extend(page.keys);
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, keys);
    }

    #[test]
    fn exact_multiple_of_the_page_size_ends_without_an_empty_page() {
        let keys: Vec<String> = (0..20).map(|i| i.to_string()).collect();
        let first = page_by_offset("b", keys.iter().cloned(), None, 10).unwrap();
        let second = page_by_offset("b", keys.iter().cloned(), first.cursor, 10).unwrap();
        assert_eq!(second.keys.len(), 10);
        assert_eq!(second.cursor, None);
    }

    #[test]
    fn cursor_past_the_end_is_an_empty_last_page() {
        let page = page_by_offset("b", ["a", "b"], Some(99), 10).unwrap();
        assert_eq!(page, KeyPage::default());
    }
}

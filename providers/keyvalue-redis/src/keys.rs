//! How buckets and keys map onto Redis key names.
//!
//! `neongrid:kv:<escaped bucket>:<key>`: the bucket has `%` written as `%25` and `:` as
//! `%3A`, so it never contains `:` and the first `:` after the prefix always ends it. Every
//! (bucket, key) pair thus gets its own Redis key, and a bucket's keys are exactly those
//! starting with `neongrid:kv:<escaped bucket>:`. Keys are stored verbatim (their UTF-8
//! bytes), so what `redis-cli` shows after the bucket is the key itself.

/// What every Redis key written by this backend starts with.
pub const KEY_PREFIX: &str = "neongrid:kv:";

/// The bucket name as it appears inside Redis keys.
pub fn escape_bucket(bucket: &str) -> String {
    let mut escaped = String::with_capacity(bucket.len());
    for c in bucket.chars() {
        match c {
            '%' => escaped.push_str("%25"),
            ':' => escaped.push_str("%3A"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// What every Redis key of `bucket` starts with.
pub fn bucket_prefix(bucket: &str) -> String {
    format!("{KEY_PREFIX}{}:", escape_bucket(bucket))
}

/// The Redis key holding `key` of `bucket`.
pub fn entry_key(bucket: &str, key: &str) -> Vec<u8> {
    let mut name = bucket_prefix(bucket).into_bytes();
    name.extend_from_slice(key.as_bytes());
    name
}

/// A `SCAN MATCH` pattern for exactly the keys of `bucket`: its prefix with the glob
/// metacharacters (`*`, `?`, `[`, `]`, `\`) backslash-escaped, then `*`.
pub fn bucket_pattern(bucket: &str) -> Vec<u8> {
    let prefix = bucket_prefix(bucket);
    let mut pattern = Vec::with_capacity(prefix.len() + 8);
    for byte in prefix.bytes() {
        if matches!(byte, b'*' | b'?' | b'[' | b']' | b'\\') {
            pattern.push(b'\\');
        }
        pattern.push(byte);
    }
    pattern.push(b'*');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_in_bucket_names_cannot_collide() {
        assert_eq!(entry_key("a:b", "c"), b"neongrid:kv:a%3Ab:c");
        assert_eq!(entry_key("a", "b:c"), b"neongrid:kv:a:b:c");
        assert_eq!(entry_key("a%3Ab", "c"), b"neongrid:kv:a%253Ab:c");
        assert_ne!(entry_key("a:b", "c"), entry_key("a", "b:c"));
        assert_ne!(entry_key("a:b", "c"), entry_key("a%3Ab", "c"));
    }

    #[test]
    fn empty_and_unicode_names_are_kept() {
        assert_eq!(entry_key("", ""), b"neongrid:kv::");
        assert_eq!(entry_key("ключ", "🔑"), "neongrid:kv:ключ:🔑".as_bytes());
    }

    #[test]
    fn patterns_escape_glob_metacharacters() {
        assert_eq!(bucket_pattern("plain"), b"neongrid:kv:plain:*");
        assert_eq!(
            bucket_pattern("a*b?[c]\\"),
            b"neongrid:kv:a\\*b\\?\\[c\\]\\\\:*"
        );
    }
}

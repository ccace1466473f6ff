//! Subject patterns and the partition layout they produce.
//!
//! A captured subject is `<prefix tokens>.<key>[.<more tokens>]`: the partition key is the
//! first token after the prefix. For readings, `neongrid.readings.lab.3` has the key `lab`,
//! so every device whose id starts with `lab.` shares one partition; each device still
//! sees its own messages in order, since one key never spans two partitions.
//!
//! The partition is computed by the NATS server, not by the provider: the partitioned
//! stream sources the ingress stream through subject transforms
//! (`{{partition(n,1)}}`), so every provider on every host reads the same layout out of
//! the stream definition.

use std::fmt;

/// The token every partitioned subject starts with: `part.<p>.<original subject>`.
pub(crate) const PARTITION_TOKEN: &str = "part";

/// How a pattern ends: exactly one key token, or a key token and any tokens after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tail {
    One,
    Many,
}

/// A subject pattern a stream captures: literal tokens, then `*` or `>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectPattern {
    prefix: Vec<String>,
    tail: Tail,
}

/// Why a subject pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("subject pattern {pattern:?} must be literal tokens that end in `.*` or `.>` (the token after them is the partition key): {why}")]
pub struct PatternError {
    pattern: String,
    why: &'static str,
}

fn literal_token(token: &str) -> bool {
    !token.is_empty()
        && token != "*"
        && token != ">"
        && !token
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b == b'*' || b == b'>')
}

/// A subject a message can be published on: non-empty tokens, no wildcards or whitespace.
pub fn is_literal_subject(subject: &str) -> bool {
    subject.len() <= 1024 && subject.split('.').all(literal_token)
}

impl SubjectPattern {
    pub fn parse(pattern: &str) -> Result<Self, PatternError> {
        let fail = |why| PatternError {
            pattern: pattern.to_string(),
            why,
        };
        let mut tokens: Vec<&str> = pattern.split('.').collect();
        let tail = match tokens.pop() {
            Some("*") => Tail::One,
            Some(">") => Tail::Many,
            _ => return Err(fail("the last token is neither `*` nor `>`")),
        };
        if tokens.is_empty() {
            return Err(fail("no literal token before the wildcard"));
        }
        if !tokens.iter().all(|t| literal_token(t)) {
            return Err(fail(
                "a token before the wildcard is empty or holds a wildcard or space",
            ));
        }
        Ok(Self {
            prefix: tokens.into_iter().map(str::to_string).collect(),
            tail,
        })
    }

    /// Whether `subject` (a literal subject) falls under this pattern. Runs on every
    /// component publish, so it walks the tokens without allocating.
    pub fn matches(&self, subject: &str) -> bool {
        let mut tokens = subject.split('.');
        if !self
            .prefix
            .iter()
            .all(|p| tokens.next() == Some(p.as_str()))
        {
            return false;
        }
        let rest = tokens.count();
        match self.tail {
            Tail::One => rest == 1,
            Tail::Many => rest >= 1,
        }
    }

    /// The transforms that file a captured subject under its partition: one per shape
    /// the tail allows (`>` covers a key alone and a key with more tokens).
    pub(crate) fn partition_transforms(&self, partitions: u32) -> Vec<(String, String)> {
        let prefix = self.prefix.join(".");
        let dest = format!(
            "{PARTITION_TOKEN}.{{{{partition({partitions},1)}}}}.{prefix}.{{{{wildcard(1)}}}}"
        );
        let mut transforms = vec![(format!("{prefix}.*"), dest.clone())];
        if self.tail == Tail::Many {
            transforms.push((format!("{prefix}.*.>"), format!("{dest}.>")));
        }
        transforms
    }
}

impl fmt::Display for SubjectPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tail = match self.tail {
            Tail::One => "*",
            Tail::Many => ">",
        };
        write!(f, "{}.{tail}", self.prefix.join("."))
    }
}

/// The filter of partition `p`'s consumer.
pub(crate) fn partition_filter(partition: u32) -> String {
    format!("{PARTITION_TOKEN}.{partition}.>")
}

/// The subject a message was published on, from the subject it is stored under in the
/// partitioned stream.
pub(crate) fn original_subject(stored: &str, partition: u32) -> &str {
    let prefix_len = PARTITION_TOKEN.len() + 1 + partition.to_string().len() + 1;
    stored.get(prefix_len..).unwrap_or(stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_by_token() {
        let many = SubjectPattern::parse("neongrid.readings.>").unwrap();
        assert!(many.matches("neongrid.readings.a"));
        assert!(many.matches("neongrid.readings.lab.3"));
        assert!(!many.matches("neongrid.readings"));
        assert!(!many.matches("neongrid.alerts.a"));
        let one = SubjectPattern::parse("neongrid.readings.*").unwrap();
        assert!(one.matches("neongrid.readings.a"));
        assert!(!one.matches("neongrid.readings.lab.3"));
        assert_eq!(many.to_string(), "neongrid.readings.>");
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in ["", ">", "*", "a.b", "a.*.b", "a..>", "a b.>", "a.>.>"] {
            assert!(SubjectPattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn transforms_and_filters_agree_on_the_layout() {
        let many = SubjectPattern::parse("neongrid.readings.>").unwrap();
        assert_eq!(
            many.partition_transforms(16),
            vec![
                (
                    "neongrid.readings.*".to_string(),
                    "part.{{partition(16,1)}}.neongrid.readings.{{wildcard(1)}}".to_string()
                ),
                (
                    "neongrid.readings.*.>".to_string(),
                    "part.{{partition(16,1)}}.neongrid.readings.{{wildcard(1)}}.>".to_string()
                ),
            ]
        );
        assert_eq!(partition_filter(7), "part.7.>");
        assert_eq!(
            original_subject("part.12.neongrid.readings.lab.3", 12),
            "neongrid.readings.lab.3"
        );
    }
}

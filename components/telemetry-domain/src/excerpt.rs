//! Bounded quoting of client input inside error messages. Public so that every domain
//! crate of the pipeline quotes input the same way.

/// Longest piece of client input echoed back in an error message. Bodies may be
/// up to 64 KiB and paths are client-chosen; echoing them whole would let one
/// request inflate every error response and log line.
pub const MAX_EXCERPT_CHARS: usize = 80;

/// Returns `text` cut to [`MAX_EXCERPT_CHARS`] characters, marking the cut with `…`.
pub fn excerpt(text: &str) -> String {
    match text.char_indices().nth(MAX_EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Renders `text` as a quoted, escaped string, cut like [`excerpt`].
pub fn quoted(text: &str) -> String {
    format!("{:?}", excerpt(text))
}

/// Renders a JSON value as compact JSON, cut like [`excerpt`].
pub fn json(value: &serde_json::Value) -> String {
    excerpt(&value.to_string())
}

/// What kind of JSON value `value` is, for the "got …" part of a message.
pub fn kind(value: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_whole() {
        assert_eq!(excerpt("abc"), "abc");
        let exact = "x".repeat(MAX_EXCERPT_CHARS);
        assert_eq!(excerpt(&exact), exact);
    }

    #[test]
    fn long_text_is_cut_on_a_char_boundary() {
        let long = "é".repeat(MAX_EXCERPT_CHARS + 5);
        let cut = excerpt(&long);
        assert_eq!(cut.chars().count(), MAX_EXCERPT_CHARS + 1);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn quoted_escapes_control_characters() {
        assert_eq!(quoted("a\"b\n"), r#""a\"b\n""#);
    }

    #[test]
    fn json_renders_compactly() {
        assert_eq!(
            json(&serde_json::json!({"a": [1, "b"]})),
            r#"{"a":[1,"b"]}"#
        );
    }
}

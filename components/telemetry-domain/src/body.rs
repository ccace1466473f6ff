//! Reading a request body without trusting its size.

use std::io::Read;

use crate::error::ApiError;

/// Largest request body accepted: a reading is well under 1 KiB, and the
/// component must not let a client make it buffer without bound.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Reads the whole body, refusing anything over [`MAX_BODY_BYTES`].
///
/// `declared_len` is the `Content-Length` header, if any: when it already
/// exceeds the limit the body is refused before a byte is read. The limit is
/// enforced on the bytes actually read as well, since the header may be absent
/// (chunked transfer) or wrong.
pub fn read_body(body: impl Read, declared_len: Option<u64>) -> Result<Vec<u8>, ApiError> {
    let too_large = ApiError::BodyTooLarge {
        limit: MAX_BODY_BYTES,
    };
    // usize always fits in u64 on the targets we build for (32 and 64 bit).
    let limit = MAX_BODY_BYTES as u64;
    if declared_len.is_some_and(|len| len > limit) {
        return Err(too_large);
    }
    let mut buffer = Vec::new();
    // One byte over the limit is enough to tell "too large" from "exactly at the limit".
    body.take(limit + 1)
        .read_to_end(&mut buffer)
        .map_err(|err| ApiError::BodyUnreadable {
            detail: err.to_string(),
        })?;
    if buffer.len() > MAX_BODY_BYTES {
        return Err(too_large);
    }
    Ok(buffer)
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    #[test]
    fn reads_bodies_up_to_the_limit() {
        assert_eq!(read_body(&b"{}"[..], Some(2)).unwrap(), b"{}");
        assert_eq!(read_body(&b""[..], None).unwrap(), b"");
        let at_limit = vec![b' '; MAX_BODY_BYTES];
        assert_eq!(
            read_body(&at_limit[..], None).unwrap().len(),
            MAX_BODY_BYTES
        );
    }

    #[test]
    fn refuses_bodies_over_the_limit_even_without_a_header() {
        let over = vec![b' '; MAX_BODY_BYTES + 1];
        let err = read_body(&over[..], None).unwrap_err();
        assert_eq!(err.status(), 413);
        assert_eq!(
            err.to_string(),
            "request body is larger than 65536 bytes; expected a single reading of at most 65536 bytes"
        );
    }

    #[test]
    fn refuses_a_declared_oversize_body_before_reading_it() {
        struct Unreadable;
        impl Read for Unreadable {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                panic!("the body must not be read");
            }
        }
        let err = read_body(Unreadable, Some(MAX_BODY_BYTES as u64 + 1)).unwrap_err();
        assert_eq!(err.status(), 413);
    }

    #[test]
    fn read_failures_are_400() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("connection reset"))
            }
        }
        let err = read_body(Broken, None).unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(err.to_string().contains("connection reset"));
    }
}

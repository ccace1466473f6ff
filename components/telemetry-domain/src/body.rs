//! Reading a request body without trusting its size.

use std::io::Read;

use crate::error::ApiError;

/// Largest request body accepted: the size of the largest message ingest
/// takes (a test there checks they agree), as a POST is passed on to ingest
/// whole; and the component must not let a client make it buffer without bound.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Oversized bodies up to this many bytes are read and discarded before answering 413.
pub const MAX_DRAINED_BYTES: u64 = 1024 * 1024;

/// Reads the whole body, refusing anything over [`MAX_BODY_BYTES`].
///
/// `declared_len` is the `Content-Length` header, if any: when it already
/// exceeds the limit the body is refused without being buffered. The limit is
/// enforced on the bytes actually read as well, since the header may be absent
/// (chunked transfer) or wrong.
pub fn read_body(body: impl Read, declared_len: Option<u64>) -> Result<Vec<u8>, ApiError> {
    let too_large = ApiError::BodyTooLarge {
        limit: MAX_BODY_BYTES,
    };
    // usize always fits in u64 on the targets we build for (32 and 64 bit).
    let limit = MAX_BODY_BYTES as u64;
    let mut body = body;
    if declared_len.is_some_and(|len| len > limit) {
        drain(body);
        return Err(too_large);
    }
    let mut buffer = Vec::new();
    // One byte over the limit is enough to tell "too large" from "exactly at the limit".
    body.by_ref()
        .take(limit + 1)
        .read_to_end(&mut buffer)
        .map_err(|err| ApiError::BodyUnreadable {
            detail: err.to_string(),
        })?;
    if buffer.len() > MAX_BODY_BYTES {
        drain(body);
        return Err(too_large);
    }
    Ok(buffer)
}

/// Reads and discards what is left of a refused body, up to [`MAX_DRAINED_BYTES`].
///
/// A server that answers while request bytes are still unread closes the connection with a
/// reset, and the client can lose the 413 that explains why. Past the cap the rest is left
/// unread: draining without end would let one client tie the component up.
fn drain(body: impl Read) {
    // A read error here changes nothing: the answer is 413 either way.
    let _ = std::io::copy(&mut body.take(MAX_DRAINED_BYTES), &mut std::io::sink());
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
            "request body is larger than 262144 bytes; expected a reading or an array of readings of at most 262144 bytes"
        );
    }

    #[test]
    fn refuses_a_declared_oversize_body_whatever_reading_it_does() {
        // The refusal comes from the header alone; the drain that follows may fail.
        struct Unreadable;
        impl Read for Unreadable {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("connection dropped"))
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

    #[test]
    fn refused_bodies_are_drained_up_to_the_cap() {
        let mut body = io::Cursor::new(vec![b' '; 300 * 1024]);
        assert!(read_body(&mut body, Some(300 * 1024)).is_err());
        assert_eq!(
            body.position(),
            300 * 1024,
            "declared-too-large body was drained"
        );

        let mut body = io::Cursor::new(vec![b' '; 400 * 1024]);
        assert!(read_body(&mut body, None).is_err());
        assert_eq!(
            body.position(),
            400 * 1024,
            "read-too-large body was drained"
        );

        let huge = MAX_DRAINED_BYTES as usize + MAX_BODY_BYTES + 10;
        let mut body = io::Cursor::new(vec![b' '; huge]);
        assert!(read_body(&mut body, Some(huge as u64)).is_err());
        assert_eq!(
            body.position(),
            MAX_DRAINED_BYTES,
            "draining stops at the cap"
        );
    }
}

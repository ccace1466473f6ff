//! Helpers the cases share: values, bucket names, cursor walks, deterministic shuffles.

use std::collections::hash_map::RandomState;
use std::fmt::Debug;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use keyvalue_store::semantics::clamp_page_limit;
use keyvalue_store::{Bytes, Store, StoreResult};

/// Most pages a walk may take before the suite calls the cursor walk non-terminating.
const MAX_WALK_PAGES: usize = 200_000;

/// `value` as bytes.
pub fn b(value: &str) -> Bytes {
    Bytes::copy_from_slice(value.as_bytes())
}

/// `len` bytes that are not valid UTF-8 (and include NUL and 0xFF), differing with `seed`.
pub fn binary(len: usize, seed: u8) -> Bytes {
    let mut value: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    if let Some(first) = value.first_mut() {
        // A lone continuation byte: never valid UTF-8, whatever follows.
        *first = 0x80;
    }
    Bytes::from(value)
}

/// A name no other case (or earlier run against the same server) uses, so cases cannot see
/// each other's data even when they share a backend.
pub fn unique_bucket(name: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    format!(
        "conformance-{:012x}-{name}",
        hasher.finish() & 0xffff_ffff_ffff
    )
}

/// Unwraps `result`, failing the case with what was being done.
#[track_caller]
pub fn ok<T, E: Debug + std::fmt::Display>(result: Result<T, E>, doing: impl Debug) -> T {
    match result {
        Ok(value) => value,
        Err(err) => panic!("{doing:?} failed: {err} ({err:?})"),
    }
}

/// Every key of `bucket`, following cursors from the start, checking on the way that each
/// page respects both the requested limit and the declared `max_page_size`.
pub async fn walk(store: &dyn Store, bucket: &str, limit: usize) -> StoreResult<Vec<String>> {
    let max_page = store.capabilities().max_page_size;
    let bound = clamp_page_limit(limit).min(max_page);
    let mut keys = Vec::new();
    let mut cursor = None;
    for _ in 0..MAX_WALK_PAGES {
        let page = store.list_keys(bucket, cursor, limit).await?;
        assert!(
            page.keys.len() <= bound,
            "list_keys({bucket:?}, {cursor:?}, {limit}) returned {} keys; pages must hold at \
             most {bound} (the clamped limit, and the declared max_page_size {max_page})",
            page.keys.len()
        );
        keys.extend(page.keys);
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(keys),
        }
    }
    panic!("walking bucket {bucket:?} with limit {limit} did not end after {MAX_WALK_PAGES} pages")
}

/// A deterministic permutation of `items` (xorshift-driven Fisher–Yates), so that insertion
/// order is neither sorted nor the same as any natural order a backend might have.
pub fn shuffled<T>(mut items: Vec<T>, seed: u64) -> Vec<T> {
    let mut state = seed | 1;
    for i in (1..items.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let j = (state % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
    items
}

/// Whether `keys` are in ascending byte order (the order `String`'s `Ord` gives).
pub fn is_sorted(keys: &[String]) -> bool {
    keys.windows(2).all(|pair| pair[0] <= pair[1])
}

//! `list_keys` over `SCAN`, with pages no larger than asked.
//!
//! `SCAN` walks the whole key space in hash-table order and its `COUNT` is only a hint: one
//! call may return more matches than asked (a crowded hash bucket), and many calls may return
//! none (a small bucket in a large database). So one page is built from one `SCAN` batch:
//!
//! - Calls that match nothing are repeated, up to [`SCANS_PER_PAGE`], before an empty page
//!   is returned with a cursor to continue from.
//! - A batch larger than the page is sorted and handed out in slices. The cursor then says
//!   "repeat the SCAN from cursor C and skip the first S keys": C in the low
//!   [`SCAN_CURSOR_BITS`] bits, S above them. Repeating a SCAN call returns the same keys
//!   when nothing was written meanwhile, and sorting makes the slices line up.
//!
//! Memory stays bounded by one batch (about one page of key names, never values), and a walk
//! with no writes meanwhile yields every key exactly once (SCAN's guarantee, plus the slices
//! not overlapping).

use keyvalue_store::semantics::clamp_page_limit;
use keyvalue_store::{KeyPage, StoreError, StoreResult};

use crate::{keys, RedisStore};

/// Bits of the list-keys cursor holding Redis's SCAN cursor. SCAN cursors index the hash
/// table, so this allows tables of 2^48 slots, far beyond any real database.
pub const SCAN_CURSOR_BITS: u32 = 48;
const SCAN_CURSOR_MASK: u64 = (1 << SCAN_CURSOR_BITS) - 1;
/// Most keys that can be skipped within one batch (the bits left above the SCAN cursor).
const MAX_SKIP: u64 = (1 << (64 - SCAN_CURSOR_BITS)) - 1;
/// SCAN calls one page may make while they match nothing.
pub const SCANS_PER_PAGE: usize = 16;
/// The COUNT hint of every SCAN. Fixed, not derived from the page limit: a repeated SCAN must
/// return the same batch, also when a caller changes its limit in the middle of a walk.
pub const SCAN_COUNT: usize = keyvalue_store::MAX_PAGE_SIZE;

pub(crate) async fn page(
    store: &RedisStore,
    bucket: &str,
    cursor: Option<u64>,
    limit: usize,
) -> StoreResult<KeyPage> {
    let limit = clamp_page_limit(limit);
    let (mut scan_cursor, mut skip) = match cursor {
        None => (0, 0),
        Some(cursor) => (
            cursor & SCAN_CURSOR_MASK,
            (cursor >> SCAN_CURSOR_BITS) as usize,
        ),
    };
    let prefix = keys::bucket_prefix(bucket);
    let pattern = keys::bucket_pattern(bucket);

    for _ in 0..SCANS_PER_PAGE {
        let (next, names): (u64, Vec<Vec<u8>>) = store
            .query(
                "list-keys",
                redis::cmd("SCAN")
                    .arg(scan_cursor)
                    .arg("MATCH")
                    .arg(&pattern[..])
                    .arg("COUNT")
                    .arg(SCAN_COUNT),
            )
            .await?;
        let mut batch: Vec<String> = names
            .into_iter()
            .filter_map(|name| {
                // MATCH already guarantees the prefix; checking again costs nothing.
                let key = name.strip_prefix(prefix.as_bytes())?;
                // Our keys are UTF-8; a foreign non-UTF-8 key under our prefix is shown
                // with replacement characters rather than hiding it or failing the walk.
                Some(String::from_utf8_lossy(key).into_owned())
            })
            .collect();
        batch.sort_unstable();
        let rest = batch.len().saturating_sub(skip);
        if rest > limit {
            let end = skip + limit;
            let keys = batch.drain(skip..end).collect();
            return Ok(KeyPage {
                keys,
                cursor: Some(encode(bucket, scan_cursor, end)?),
            });
        }
        let keys: Vec<String> = batch.into_iter().skip(skip).collect();
        if next == 0 {
            return Ok(KeyPage { keys, cursor: None });
        }
        if !keys.is_empty() {
            return Ok(KeyPage {
                keys,
                cursor: Some(encode(bucket, next, 0)?),
            });
        }
        scan_cursor = next;
        skip = 0;
    }
    // Nothing matched in this stretch of the key space; let the caller come back for more
    // rather than holding one call open over a huge database.
    Ok(KeyPage {
        keys: Vec::new(),
        cursor: Some(encode(bucket, scan_cursor, 0)?),
    })
}

fn encode(bucket: &str, scan_cursor: u64, skip: usize) -> StoreResult<u64> {
    let skip = skip as u64;
    if scan_cursor > SCAN_CURSOR_MASK || skip > MAX_SKIP {
        return Err(StoreError::backend(
            crate::BACKEND,
            "list-keys",
            format!(
                "SCAN of bucket {bucket:?} reached cursor {scan_cursor} with {skip} keys to \
                 skip, which does not fit a list-keys cursor"
            ),
        ));
    }
    Ok(skip << SCAN_CURSOR_BITS | scan_cursor)
}

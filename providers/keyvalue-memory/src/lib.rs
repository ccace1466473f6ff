//! A key-value [`Store`] held in the provider's memory.
//!
//! Meant for development, tests and caches: everything is lost when the provider stops. One
//! lock guards all buckets, which keeps every operation — batches and increments included —
//! trivially atomic; the critical sections are short map operations, never I/O.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use keyvalue_store::semantics::{apply_increment, encode_counter, page_by_offset};
use keyvalue_store::{
    Bytes, Capabilities, KeyPage, Store, StoreConfig, StoreFactory, StoreResult, MAX_PAGE_SIZE,
};

/// Name of this backend in logs and error messages.
pub const BACKEND: &str = "memory";

/// Largest value a [`MemoryStore`] accepts by default. The limit exists so that one careless
/// caller cannot exhaust the memory of the host the provider shares with everything else.
pub const DEFAULT_MAX_VALUE_SIZE: usize = 16 * 1024 * 1024;

/// Buckets by name; keys kept sorted so that `list_keys` pages are deterministic.
type Buckets = HashMap<String, BTreeMap<String, Bytes>>;

/// An in-memory [`Store`].
#[derive(Debug)]
pub struct MemoryStore {
    buckets: RwLock<Buckets>,
    max_value_size: usize,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_max_value_size(DEFAULT_MAX_VALUE_SIZE)
    }
}

impl MemoryStore {
    /// An empty store with the default value size limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store that rejects values larger than `max_value_size` bytes.
    pub fn with_max_value_size(max_value_size: usize) -> Self {
        Self {
            buckets: RwLock::default(),
            max_value_size,
        }
    }

    // A panic while a guard is held cannot leave the maps half-updated (every mutation is a
    // single map call), so a poisoned lock still guards consistent data and is safe to reuse.
    fn read(&self) -> RwLockReadGuard<'_, Buckets> {
        self.buckets.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Buckets> {
        self.buckets.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn check_size(&self, bucket: &str, key: &str, value: &[u8]) -> StoreResult<()> {
        keyvalue_store::semantics::check_value_size(bucket, key, value, self.max_value_size)
    }
}

/// Drops a bucket once its last key is gone, so that deleted data frees its bucket too.
fn remove_keys<'k>(buckets: &mut Buckets, bucket: &str, keys: impl IntoIterator<Item = &'k str>) {
    if let Some(entries) = buckets.get_mut(bucket) {
        for key in keys {
            entries.remove(key);
        }
        if entries.is_empty() {
            buckets.remove(bucket);
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            atomic_increment: true,
            atomic_batch: true,
            sorted_keys: true,
            persistent: false,
            max_value_size: Some(self.max_value_size),
            max_page_size: MAX_PAGE_SIZE,
        }
    }

    async fn get(&self, bucket: &str, key: &str) -> StoreResult<Option<Bytes>> {
        Ok(self
            .read()
            .get(bucket)
            .and_then(|entries| entries.get(key))
            .cloned())
    }

    async fn set(&self, bucket: &str, key: &str, value: Bytes) -> StoreResult<()> {
        self.check_size(bucket, key, &value)?;
        self.write()
            .entry(bucket.to_owned())
            .or_default()
            .insert(key.to_owned(), value);
        Ok(())
    }

    async fn delete(&self, bucket: &str, key: &str) -> StoreResult<()> {
        remove_keys(&mut self.write(), bucket, [key]);
        Ok(())
    }

    async fn exists(&self, bucket: &str, key: &str) -> StoreResult<bool> {
        Ok(self
            .read()
            .get(bucket)
            .is_some_and(|entries| entries.contains_key(key)))
    }

    async fn list_keys(
        &self,
        bucket: &str,
        cursor: Option<u64>,
        limit: usize,
    ) -> StoreResult<KeyPage> {
        let buckets = self.read();
        match buckets.get(bucket) {
            Some(entries) => page_by_offset(bucket, entries.keys(), cursor, limit),
            None => page_by_offset(bucket, std::iter::empty::<String>(), cursor, limit),
        }
    }

    async fn increment(&self, bucket: &str, key: &str, delta: u64) -> StoreResult<u64> {
        // Read, check and write back under one write lock: that is what makes it atomic.
        let mut buckets = self.write();
        let current = buckets
            .get(bucket)
            .and_then(|entries| entries.get(key))
            .map(|value| &value[..]);
        let next = apply_increment(bucket, key, current, delta)?;
        buckets
            .entry(bucket.to_owned())
            .or_default()
            .insert(key.to_owned(), encode_counter(next));
        Ok(next)
    }

    async fn get_many(
        &self,
        bucket: &str,
        keys: Vec<String>,
    ) -> StoreResult<Vec<Option<(String, Bytes)>>> {
        let buckets = self.read();
        let entries = buckets.get(bucket);
        Ok(keys
            .into_iter()
            .map(|key| {
                let value = entries.and_then(|entries| entries.get(&key)).cloned();
                value.map(|value| (key, value))
            })
            .collect())
    }

    async fn set_many(&self, bucket: &str, entries: Vec<(String, Bytes)>) -> StoreResult<()> {
        keyvalue_store::semantics::check_batch_sizes(bucket, &entries, self.max_value_size)?;
        if entries.is_empty() {
            return Ok(());
        }
        self.write()
            .entry(bucket.to_owned())
            .or_default()
            .extend(entries);
        Ok(())
    }

    async fn delete_many(&self, bucket: &str, keys: Vec<String>) -> StoreResult<()> {
        remove_keys(&mut self.write(), bucket, keys.iter().map(String::as_str));
        Ok(())
    }
}

/// Opens the provider's single [`MemoryStore`].
///
/// Every link gets the same store whatever its configuration: a process has one memory, and
/// the buckets inside it already keep callers' data apart. Holding the store here, rather
/// than leaving it to the links, keeps the data alive while links come and go (a redeploy).
#[derive(Debug, Clone, Default)]
pub struct MemoryStoreFactory {
    store: Arc<MemoryStore>,
}

impl MemoryStoreFactory {
    /// A factory handing out a fresh, empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A factory handing out `store`.
    pub fn with_store(store: Arc<MemoryStore>) -> Self {
        Self { store }
    }
}

#[async_trait]
impl StoreFactory for MemoryStoreFactory {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn open(&self, _config: &StoreConfig) -> StoreResult<Arc<dyn Store>> {
        Ok(self.store.clone())
    }
}

#[cfg(test)]
mod tests;

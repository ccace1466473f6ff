//! The memory store runs the shared conformance suite, plus the few checks only this
//! backend can make (its internals, its factory) and checks that the suite itself catches
//! a backend whose declared capabilities are false in either direction.

use keyvalue_conformance::{cases, Target};

use super::*;

/// Each case gets a fresh factory, so `reopen` sees what a restarted provider would: nothing.
async fn memory_target() -> Target {
    Target::from_factory(MemoryStoreFactory::new, StoreConfig::default()).await
}

keyvalue_conformance::suite!(memory_target());

fn bytes(value: &str) -> Bytes {
    Bytes::copy_from_slice(value.as_bytes())
}

#[tokio::test]
async fn deleting_the_last_key_frees_the_bucket() {
    let store = MemoryStore::new();
    store.set("b", "k", bytes("v")).await.unwrap();
    store.delete("b", "k").await.unwrap();
    assert!(store.read().is_empty());
    store.set("b", "k", bytes("v")).await.unwrap();
    store.delete_many("b", vec!["k".into()]).await.unwrap();
    assert!(store.read().is_empty());
}

/// Offset paging fills every page but the last, and a zero limit still yields one key: more
/// than the suite may demand of every backend.
#[tokio::test]
async fn pages_are_full_until_the_last() {
    let store = MemoryStore::new();
    let keys: Vec<(String, Bytes)> = (0..1500).map(|i| (i.to_string(), bytes("v"))).collect();
    store.set_many("b", keys).await.unwrap();
    let page = store.list_keys("b", None, 1_000_000).await.unwrap();
    assert_eq!(page.keys.len(), MAX_PAGE_SIZE);
    let last = store.list_keys("b", page.cursor, 1_000_000).await.unwrap();
    assert_eq!((last.keys.len(), last.cursor), (500, None));
    let one = store.list_keys("b", None, 0).await.unwrap();
    assert_eq!(one.keys.len(), 1);
    assert!(one.cursor.is_some());
}

#[tokio::test]
async fn declared_capabilities_match_the_memory_store() {
    let caps = MemoryStore::new().capabilities();
    assert!(caps.atomic_increment && caps.atomic_batch && caps.sorted_keys);
    assert!(!caps.persistent);
    assert_eq!(caps.max_value_size, Some(DEFAULT_MAX_VALUE_SIZE));
    assert_eq!(caps.max_page_size, MAX_PAGE_SIZE);
    assert_eq!(
        MemoryStore::with_max_value_size(8)
            .capabilities()
            .max_value_size,
        Some(8)
    );
}

#[tokio::test]
async fn factory_hands_every_config_the_same_store() {
    let factory = MemoryStoreFactory::new();
    assert_eq!(factory.backend(), "memory");
    let first = factory.open(&StoreConfig::default()).await.unwrap();
    let other = factory
        .open(&StoreConfig::from_values([("anything", "else")]))
        .await
        .unwrap();
    first.set("b", "k", bytes("v")).await.unwrap();
    assert_eq!(other.get("b", "k").await.unwrap(), Some(bytes("v")));
}

/// How a [`Pretender`] misbehaves besides declaring `caps`.
#[derive(Clone, Copy, Default)]
struct Quirks {
    /// `increment` reads, pauses, then writes: updates get lost under contention.
    racy_increment: bool,
    /// Batches run key by key, yielding in between: readers see them half applied.
    split_batches: bool,
    /// Each page comes back in reverse order: keys are not sorted.
    reversed_pages: bool,
}

/// A memory store that declares `caps`, whatever it really does.
struct Pretender {
    inner: MemoryStore,
    caps: Capabilities,
    quirks: Quirks,
}

#[async_trait]
impl Store for Pretender {
    fn capabilities(&self) -> Capabilities {
        self.caps
    }
    async fn get(&self, bucket: &str, key: &str) -> StoreResult<Option<Bytes>> {
        self.inner.get(bucket, key).await
    }
    async fn set(&self, bucket: &str, key: &str, value: Bytes) -> StoreResult<()> {
        self.inner.set(bucket, key, value).await
    }
    async fn delete(&self, bucket: &str, key: &str) -> StoreResult<()> {
        self.inner.delete(bucket, key).await
    }
    async fn exists(&self, bucket: &str, key: &str) -> StoreResult<bool> {
        self.inner.exists(bucket, key).await
    }
    async fn list_keys(
        &self,
        bucket: &str,
        cursor: Option<u64>,
        limit: usize,
    ) -> StoreResult<KeyPage> {
        let mut page = self.inner.list_keys(bucket, cursor, limit).await?;
        if self.quirks.reversed_pages {
            page.keys.reverse();
        }
        Ok(page)
    }
    async fn increment(&self, bucket: &str, key: &str, delta: u64) -> StoreResult<u64> {
        if !self.quirks.racy_increment {
            return self.inner.increment(bucket, key, delta).await;
        }
        let current = self.inner.get(bucket, key).await?;
        let next = apply_increment(bucket, key, current.as_deref(), delta)?;
        // Long enough for the other racing tasks to read the same value meanwhile.
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        self.inner.set(bucket, key, encode_counter(next)).await?;
        Ok(next)
    }
    async fn get_many(
        &self,
        bucket: &str,
        keys: Vec<String>,
    ) -> StoreResult<Vec<Option<(String, Bytes)>>> {
        if !self.quirks.split_batches {
            return self.inner.get_many(bucket, keys).await;
        }
        let mut found = Vec::new();
        for key in keys {
            found.push(
                self.inner
                    .get(bucket, &key)
                    .await?
                    .map(|value| (key, value)),
            );
            tokio::task::yield_now().await;
        }
        Ok(found)
    }
    async fn set_many(&self, bucket: &str, entries: Vec<(String, Bytes)>) -> StoreResult<()> {
        if !self.quirks.split_batches {
            return self.inner.set_many(bucket, entries).await;
        }
        for (key, value) in entries {
            self.inner.set(bucket, &key, value).await?;
            tokio::task::yield_now().await;
        }
        Ok(())
    }
    async fn delete_many(&self, bucket: &str, keys: Vec<String>) -> StoreResult<()> {
        if !self.quirks.split_batches {
            return self.inner.delete_many(bucket, keys).await;
        }
        for key in keys {
            self.inner.delete(bucket, &key).await?;
            tokio::task::yield_now().await;
        }
        Ok(())
    }
}

/// A target over a [`Pretender`] built by `make`: the real memory store's capabilities,
/// changed by `edit`, with `quirks`.
fn pretender(
    max_value_size: usize,
    quirks: Quirks,
    edit: impl Fn(&mut Capabilities) + Send + Sync + Copy + 'static,
) -> Target {
    let make = move || -> Arc<dyn Store> {
        let inner = MemoryStore::with_max_value_size(max_value_size);
        let mut caps = inner.capabilities();
        edit(&mut caps);
        Arc::new(Pretender {
            inner,
            caps,
            quirks,
        })
    };
    Target::new(make(), move || async move { make() })
}

/// Runs one conformance case against `target` and says whether it failed.
macro_rules! case_fails {
    ($case:ident, $target:expr) => {{
        let target = $target;
        tokio::spawn(async move { cases::$case(&target).await })
            .await
            .is_err()
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suite_passes_the_honest_pretender() {
    // The control: a pretender declaring the truth passes the cases used below.
    let honest = || pretender(DEFAULT_MAX_VALUE_SIZE, Quirks::default(), |_| {});
    assert!(!case_fails!(list_keys_pages_over_10000_keys, honest()));
    assert!(!case_fails!(
        concurrent_increments_match_declaration,
        honest()
    ));
    assert!(!case_fails!(batch_atomicity_matches_declaration, honest()));
    assert!(!case_fails!(value_size_limit_matches_declaration, honest()));
    assert!(!case_fails!(persistence_matches_declaration, honest()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suite_fails_claims_a_backend_does_not_keep() {
    let reversed = Quirks {
        reversed_pages: true,
        ..Quirks::default()
    };
    assert!(
        case_fails!(
            list_keys_pages_over_10000_keys,
            pretender(DEFAULT_MAX_VALUE_SIZE, reversed, |_| {})
        ),
        "claims sorted_keys but pages are reversed"
    );
    let racy = Quirks {
        racy_increment: true,
        ..Quirks::default()
    };
    assert!(
        case_fails!(
            concurrent_increments_match_declaration,
            pretender(DEFAULT_MAX_VALUE_SIZE, racy, |_| {})
        ),
        "claims atomic_increment but loses updates"
    );
    let split = Quirks {
        split_batches: true,
        ..Quirks::default()
    };
    assert!(
        case_fails!(
            batch_atomicity_matches_declaration,
            pretender(DEFAULT_MAX_VALUE_SIZE, split, |_| {})
        ),
        "claims atomic_batch but applies batches key by key"
    );
    assert!(
        case_fails!(
            persistence_matches_declaration,
            pretender(DEFAULT_MAX_VALUE_SIZE, Quirks::default(), |caps| {
                caps.persistent = true
            })
        ),
        "claims persistence it does not have"
    );
    assert!(
        case_fails!(
            value_size_limit_matches_declaration,
            pretender(DEFAULT_MAX_VALUE_SIZE, Quirks::default(), |caps| {
                caps.max_value_size = Some(1024)
            })
        ),
        "claims a value limit it does not enforce"
    );
    assert!(
        case_fails!(
            list_keys_pages_over_10000_keys,
            pretender(DEFAULT_MAX_VALUE_SIZE, Quirks::default(), |caps| {
                caps.max_page_size = 10
            })
        ),
        "claims smaller pages than it returns"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suite_fails_capabilities_a_backend_hides() {
    assert!(
        case_fails!(
            list_keys_pages_over_10000_keys,
            pretender(DEFAULT_MAX_VALUE_SIZE, Quirks::default(), |caps| {
                caps.sorted_keys = false
            })
        ),
        "hides sorted_keys"
    );
    assert!(
        case_fails!(
            concurrent_increments_match_declaration,
            pretender(DEFAULT_MAX_VALUE_SIZE, Quirks::default(), |caps| {
                caps.atomic_increment = false
            })
        ),
        "hides atomic_increment"
    );
    assert!(
        case_fails!(
            batch_atomicity_matches_declaration,
            pretender(DEFAULT_MAX_VALUE_SIZE, Quirks::default(), |caps| {
                caps.atomic_batch = false
            })
        ),
        "hides atomic_batch"
    );
    assert!(
        case_fails!(
            value_size_limit_matches_declaration,
            pretender(1024 * 1024, Quirks::default(), |caps| {
                caps.max_value_size = None
            })
        ),
        "hides a value size limit"
    );
}

use std::collections::BTreeSet;

use super::*;

fn bytes(value: &str) -> Bytes {
    Bytes::copy_from_slice(value.as_bytes())
}

/// Every key of `bucket`, following cursors, checking the page bound on the way.
async fn all_keys(store: &MemoryStore, bucket: &str, limit: usize) -> Vec<String> {
    let mut keys = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = store.list_keys(bucket, cursor, limit).await.unwrap();
        assert!(page.keys.len() <= limit.clamp(1, MAX_PAGE_SIZE));
        keys.extend(page.keys);
        pages += 1;
        assert!(pages < 10_000, "cursor walk does not terminate");
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => return keys,
        }
    }
}

#[tokio::test]
async fn set_get_overwrite_delete() {
    let store = MemoryStore::new();
    assert_eq!(store.get("b", "k").await.unwrap(), None);
    assert!(!store.exists("b", "k").await.unwrap());

    store.set("b", "k", bytes("one")).await.unwrap();
    assert_eq!(store.get("b", "k").await.unwrap(), Some(bytes("one")));
    assert!(store.exists("b", "k").await.unwrap());

    store.set("b", "k", bytes("two")).await.unwrap();
    assert_eq!(store.get("b", "k").await.unwrap(), Some(bytes("two")));

    store.delete("b", "k").await.unwrap();
    assert_eq!(store.get("b", "k").await.unwrap(), None);
    assert!(!store.exists("b", "k").await.unwrap());
    // Deleting what is not there is not an error.
    store.delete("b", "k").await.unwrap();
    store.delete("never-used", "k").await.unwrap();
}

#[tokio::test]
async fn buckets_are_isolated_namespaces() {
    let store = MemoryStore::new();
    store.set("alpha", "k", bytes("a")).await.unwrap();
    store.set("beta", "k", bytes("b")).await.unwrap();
    assert_eq!(store.get("alpha", "k").await.unwrap(), Some(bytes("a")));
    assert_eq!(store.get("beta", "k").await.unwrap(), Some(bytes("b")));
    assert_eq!(store.get("gamma", "k").await.unwrap(), None);

    store.increment("alpha", "n", 5).await.unwrap();
    assert_eq!(store.increment("beta", "n", 1).await.unwrap(), 1);

    store.delete("alpha", "k").await.unwrap();
    assert_eq!(store.get("beta", "k").await.unwrap(), Some(bytes("b")));

    assert_eq!(all_keys(&store, "alpha", 10).await, ["n"]);
    assert_eq!(all_keys(&store, "beta", 10).await, ["k", "n"]);
    assert!(all_keys(&store, "gamma", 10).await.is_empty());

    store
        .delete_many("beta", vec!["k".into(), "n".into()])
        .await
        .unwrap();
    assert_eq!(store.get("alpha", "n").await.unwrap(), Some(bytes("5")));
}

#[tokio::test]
async fn increment_follows_redis_incrby() {
    let store = MemoryStore::new();
    assert_eq!(store.increment("b", "n", 5).await.unwrap(), 5);
    assert_eq!(store.increment("b", "n", 0).await.unwrap(), 5);
    assert_eq!(store.increment("b", "n", 37).await.unwrap(), 42);
    // Written back as ASCII decimal, readable by anyone.
    assert_eq!(store.get("b", "n").await.unwrap(), Some(bytes("42")));

    // A counter set by hand works too.
    store.set("b", "m", bytes("100")).await.unwrap();
    assert_eq!(store.increment("b", "m", 1).await.unwrap(), 101);

    // A zero delta on a missing key creates the counter, as INCRBY does.
    assert_eq!(store.increment("b", "z", 0).await.unwrap(), 0);
    assert_eq!(store.get("b", "z").await.unwrap(), Some(bytes("0")));
}

#[tokio::test]
async fn increment_of_non_numeric_value_fails_and_keeps_the_value() {
    let store = MemoryStore::new();
    for (key, value) in [
        ("text", &b"hello"[..]),
        ("empty", b""),
        ("negative", b"-3"),
        ("padded", b" 7"),
        ("binary", b"\x00\x01"),
    ] {
        store
            .set("b", key, Bytes::copy_from_slice(value))
            .await
            .unwrap();
        let err = store.increment("b", key, 1).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::NotNumeric { bucket, key: k, .. } if bucket == "b" && k == key),
            "{key}: {err:?}"
        );
        assert!(err.to_string().contains(&format!("{key:?}")), "{err}");
        assert_eq!(
            store.get("b", key).await.unwrap().as_deref(),
            Some(value),
            "a failed increment must not touch {key}"
        );
    }
}

#[tokio::test]
async fn increment_overflow_fails_and_keeps_the_value() {
    let store = MemoryStore::new();
    assert_eq!(store.increment("b", "n", u64::MAX).await.unwrap(), u64::MAX);
    let err = store.increment("b", "n", 1).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Overflow {
                current: u64::MAX,
                delta: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("exceeds"), "{err}");
    assert_eq!(
        store.get("b", "n").await.unwrap(),
        Some(bytes(&u64::MAX.to_string()))
    );
    // Out-of-range digits were never a valid counter.
    store
        .set("b", "huge", bytes("18446744073709551616"))
        .await
        .unwrap();
    assert!(matches!(
        store.increment("b", "huge", 0).await.unwrap_err(),
        StoreError::NotNumeric { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_increments_never_lose_an_update() {
    const TASKS: u64 = 64;
    const PER_TASK: u64 = 250;
    let store = Arc::new(MemoryStore::new());
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut seen = Vec::with_capacity(PER_TASK as usize);
                for _ in 0..PER_TASK {
                    // Deltas differ per task so that a lost update cannot cancel out.
                    seen.push(store.increment("b", "n", task + 1).await.unwrap());
                }
                seen
            })
        })
        .collect();
    let mut results = BTreeSet::new();
    for task in tasks {
        for value in task.await.unwrap() {
            assert!(results.insert(value), "two increments returned {value}");
        }
    }
    let expected = PER_TASK * (1..=TASKS).sum::<u64>();
    assert_eq!(store.increment("b", "n", 0).await.unwrap(), expected);
    assert_eq!(results.last(), Some(&expected));
}

#[tokio::test]
async fn list_keys_pages_cover_2500_keys_exactly_once_in_order() {
    let store = MemoryStore::new();
    let expected: Vec<String> = (0..2500).map(|i| format!("key-{i:05}")).collect();
    store
        .set_many(
            "big",
            expected.iter().map(|k| (k.clone(), bytes(k))).collect(),
        )
        .await
        .unwrap();
    store.set("other", "stray", bytes("x")).await.unwrap();

    for limit in [1, 7, 100, 1000, 2500, usize::MAX] {
        let keys = all_keys(&store, "big", limit).await;
        assert_eq!(keys, expected, "walk with limit {limit}");
    }
}

#[tokio::test]
async fn list_keys_clamps_oversized_and_zero_limits() {
    let store = MemoryStore::new();
    let keys: Vec<(String, Bytes)> = (0..1500).map(|i| (i.to_string(), bytes("v"))).collect();
    store.set_many("b", keys).await.unwrap();

    let page = store.list_keys("b", None, 1_000_000).await.unwrap();
    assert_eq!(page.keys.len(), MAX_PAGE_SIZE);
    let next = page.cursor.expect("more keys remain");
    let last = store.list_keys("b", Some(next), 1_000_000).await.unwrap();
    assert_eq!(last.keys.len(), 500);
    assert_eq!(last.cursor, None);

    let one = store.list_keys("b", None, 0).await.unwrap();
    assert_eq!(one.keys.len(), 1);
    assert!(one.cursor.is_some());
}

#[tokio::test]
async fn list_keys_of_missing_bucket_and_stale_cursor_are_empty() {
    let store = MemoryStore::new();
    assert_eq!(
        store.list_keys("none", None, 10).await.unwrap(),
        KeyPage::default()
    );
    assert_eq!(
        store.list_keys("none", Some(5), 10).await.unwrap(),
        KeyPage::default()
    );
    store.set("b", "k", bytes("v")).await.unwrap();
    assert_eq!(
        store.list_keys("b", Some(u64::MAX), 10).await.unwrap(),
        KeyPage::default()
    );
}

#[tokio::test]
async fn batch_operations_follow_wasi_keyvalue_batch() {
    let store = MemoryStore::new();
    store
        .set_many(
            "b",
            vec![
                ("a".into(), bytes("1")),
                ("b".into(), bytes("2")),
                ("a".into(), bytes("3")), // a later duplicate wins
            ],
        )
        .await
        .unwrap();

    let got = store
        .get_many(
            "b",
            vec!["a".into(), "missing".into(), "b".into(), "a".into()],
        )
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![
            Some(("a".to_owned(), bytes("3"))),
            None,
            Some(("b".to_owned(), bytes("2"))),
            Some(("a".to_owned(), bytes("3"))),
        ]
    );
    assert_eq!(
        store.get_many("elsewhere", vec!["a".into()]).await.unwrap(),
        vec![None]
    );
    assert!(store.get_many("b", Vec::new()).await.unwrap().is_empty());

    store
        .delete_many("b", vec!["a".into(), "never-there".into()])
        .await
        .unwrap();
    assert_eq!(all_keys(&store, "b", 10).await, ["b"]);
    store.set_many("b", Vec::new()).await.unwrap();
    store.delete_many("b", Vec::new()).await.unwrap();
}

#[tokio::test]
async fn rejected_batch_writes_nothing() {
    let store = MemoryStore::with_max_value_size(4);
    let err = store
        .set_many(
            "b",
            vec![("ok".into(), bytes("1234")), ("big".into(), bytes("12345"))],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::TooLarge { key, size: 5, max: 4, .. } if key == "big"),
        "{err:?}"
    );
    assert_eq!(store.get("b", "ok").await.unwrap(), None);
}

#[tokio::test]
async fn values_over_the_limit_are_rejected_with_sizes() {
    let store = MemoryStore::with_max_value_size(8);
    store.set("b", "fits", bytes("12345678")).await.unwrap();
    let err = store.set("b", "big", bytes("123456789")).await.unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("9 bytes") && message.contains("8 bytes"),
        "{message}"
    );
    assert_eq!(store.capabilities().max_value_size, Some(8));
}

#[tokio::test]
async fn binary_values_round_trip_byte_for_byte() {
    let store = MemoryStore::new();
    let all_bytes: Vec<u8> = (0..=255).collect();
    let value = Bytes::from(all_bytes.repeat(8));
    store.set("b", "bin", value.clone()).await.unwrap();
    store.set("b", "empty", Bytes::new()).await.unwrap();
    assert_eq!(store.get("b", "bin").await.unwrap(), Some(value));
    // An empty value is a value: the key exists.
    assert_eq!(store.get("b", "empty").await.unwrap(), Some(Bytes::new()));
    assert!(store.exists("b", "empty").await.unwrap());
}

#[tokio::test]
async fn awkward_keys_and_buckets_are_plain_strings() {
    let store = MemoryStore::new();
    let awkward = [
        "",
        " ",
        "with space",
        "slash/and\\backslash",
        "dots.and*stars?",
        "new\nline\ttab\0nul",
        "ключ",
        "キー",
        "🔑🗝️",
        "e\u{301}", // combining accent: distinct from the precomposed form below
        "\u{e9}",
    ];
    for (i, key) in awkward.iter().enumerate() {
        store
            .set("b", key, Bytes::from(i.to_string()))
            .await
            .unwrap();
        store
            .set(key, "k", Bytes::from(i.to_string()))
            .await
            .unwrap();
    }
    for (i, key) in awkward.iter().enumerate() {
        let expected = Some(Bytes::from(i.to_string()));
        assert_eq!(store.get("b", key).await.unwrap(), expected, "key {key:?}");
        assert_eq!(
            store.get(key, "k").await.unwrap(),
            expected,
            "bucket {key:?}"
        );
    }
    let mut sorted: Vec<String> = awkward.iter().map(|k| k.to_string()).collect();
    sorted.sort();
    assert_eq!(all_keys(&store, "b", 3).await, sorted);

    assert_eq!(store.increment("", "", 2).await.unwrap(), 2);
    assert_eq!(store.get("", "").await.unwrap(), Some(bytes("2")));
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

#[tokio::test]
async fn declared_capabilities_match_the_memory_store() {
    let caps = MemoryStore::new().capabilities();
    assert!(caps.atomic_increment && caps.atomic_batch && caps.sorted_keys);
    assert!(!caps.persistent);
    assert_eq!(caps.max_value_size, Some(DEFAULT_MAX_VALUE_SIZE));
    assert_eq!(caps.max_page_size, MAX_PAGE_SIZE);
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

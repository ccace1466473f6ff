//! The cases. Each takes a [`Target`] and panics, naming what went wrong, when the store
//! breaks the shared contract or its own declared capabilities.
//!
//! Cases use their own uniquely named buckets (except where a bucket's exact name is the
//! point), so they may share one backend.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use keyvalue_store::semantics::{clamp_page_limit, encode_counter};
use keyvalue_store::{Bytes, Store, StoreError, MAX_PAGE_SIZE};

use crate::support::{b, binary, is_sorted, ok, shuffled, unique_bucket, walk};
use crate::Target;

/// Keys the list-keys case writes and walks.
const MANY_KEYS: usize = 10_000;
/// Largest value the suite writes to a backend that declares no limit of its own.
const UNLIMITED_PROBE_SIZE: usize = 32 * 1024 * 1024;
/// Largest declared limit the suite is prepared to verify by writing a value that size.
const MAX_VERIFIABLE_LIMIT: usize = 256 * 1024 * 1024;

/// Keys that trip up naive encodings: separators, escapes, glob and SQL metacharacters,
/// whitespace, control characters, non-ASCII text and distinct-but-equivalent Unicode.
fn awkward_names() -> Vec<String> {
    let mut names: Vec<String> = [
        "",
        " ",
        "with space",
        ":",
        "::",
        "a:b",
        ":leading",
        "trailing:",
        "%",
        "%3A",
        "%25",
        "100%",
        "'",
        "it's",
        "''; DROP TABLE neongrid_kv; --",
        "\"quoted\"",
        ";",
        "a;b",
        "*",
        "a*",
        "?",
        "[abc]",
        "[",
        "]",
        "\\",
        "back\\slash",
        "^$.|+(){}",
        "slash/and/more",
        "new\nline\ttab\rcr",
        "nul\0byte",
        "ключ",
        "キー",
        "🔑🗝️",
        "e\u{301}", // combining accent: distinct from the precomposed form below
        "\u{e9}",
        "\u{feff}bom",
    ]
    .iter()
    .map(|name| name.to_string())
    .collect();
    // Long keys: compressible, incompressible, and multi-byte.
    names.push("k".repeat(1024));
    names.push(
        (0..8192u32)
            .map(|i| char::from(b'!' + (i * 7 % 94) as u8))
            .collect(),
    );
    names.push("é".repeat(32 * 1024));
    names
}

/// Set, get, exists, overwrite and delete, including deletes of what is not there.
pub async fn get_set_overwrite_delete(target: &Target) {
    let store = target.store();
    let bucket = unique_bucket("crud");
    assert_eq!(ok(store.get(&bucket, "k").await, "get missing"), None);
    assert!(!ok(store.exists(&bucket, "k").await, "exists missing"));

    ok(store.set(&bucket, "k", b("one")).await, "set");
    assert_eq!(ok(store.get(&bucket, "k").await, "get"), Some(b("one")));
    assert!(ok(store.exists(&bucket, "k").await, "exists"));

    ok(store.set(&bucket, "k", b("two")).await, "overwrite");
    assert_eq!(ok(store.get(&bucket, "k").await, "get"), Some(b("two")));

    ok(store.delete(&bucket, "k").await, "delete");
    assert_eq!(ok(store.get(&bucket, "k").await, "get deleted"), None);
    assert!(!ok(store.exists(&bucket, "k").await, "exists deleted"));
    // Deleting what is not there succeeds and does nothing.
    ok(store.delete(&bucket, "k").await, "delete again");
    ok(
        store.delete(&unique_bucket("never-used"), "k").await,
        "delete in an unused bucket",
    );
    assert!(ok(walk(&**store, &bucket, 10).await, "list").is_empty());
}

/// An empty value is a value: the key exists and lists.
pub async fn empty_value_is_a_value(target: &Target) {
    let store = target.store();
    let bucket = unique_bucket("empty-value");
    ok(store.set(&bucket, "empty", Bytes::new()).await, "set empty");
    assert_eq!(
        ok(store.get(&bucket, "empty").await, "get empty"),
        Some(Bytes::new())
    );
    assert!(ok(store.exists(&bucket, "empty").await, "exists empty"));
    assert_eq!(ok(walk(&**store, &bucket, 10).await, "list"), ["empty"]);
    assert_eq!(
        ok(
            store.get_many(&bucket, vec!["empty".into()]).await,
            "get_many"
        ),
        vec![Some(("empty".to_owned(), Bytes::new()))]
    );
}

/// Values are bytes, not text: every byte value, invalid UTF-8 and NULs survive unchanged.
pub async fn binary_values_round_trip(target: &Target) {
    let store = target.store();
    let bucket = unique_bucket("binary");
    let every_byte: Bytes = (0..=255u8).collect::<Vec<u8>>().repeat(16).into();
    let values = [
        ("every-byte", every_byte),
        ("invalid-utf8", binary(1000, 7)),
        ("nul", Bytes::from_static(b"\0")),
        ("nuls", Bytes::from_static(b"a\0b\0\0c")),
        ("high", Bytes::from_static(b"\xff\xfe\xfd")),
        ("megabyte", binary(1024 * 1024, 3)),
    ];
    for (key, value) in &values {
        ok(store.set(&bucket, key, value.clone()).await, ("set", key));
    }
    for (key, value) in &values {
        let got = ok(store.get(&bucket, key).await, ("get", key));
        assert!(
            got.as_ref() == Some(value),
            "{key}: value changed on the way"
        );
    }
    let keys: Vec<String> = values.iter().map(|(key, _)| key.to_string()).collect();
    let got = ok(store.get_many(&bucket, keys).await, "get_many");
    for ((key, value), found) in values.iter().zip(got) {
        assert!(
            found == Some((key.to_string(), value.clone())),
            "get_many of {key}: value changed on the way"
        );
    }
    let batch: Vec<(String, Bytes)> = (0..10u8)
        .map(|i| (format!("batch-{i}"), binary(100 + usize::from(i), i)))
        .collect();
    ok(store.set_many(&bucket, batch.clone()).await, "set_many");
    for (key, value) in batch {
        assert_eq!(ok(store.get(&bucket, &key).await, &key), Some(value));
    }
}

/// The same key in two buckets names two unrelated values, for every operation.
pub async fn buckets_are_isolated_namespaces(target: &Target) {
    let store = target.store();
    let alpha = unique_bucket("alpha");
    let beta = unique_bucket("beta");
    let gamma = unique_bucket("gamma");
    ok(store.set(&alpha, "k", b("a")).await, "set alpha");
    ok(store.set(&beta, "k", b("b")).await, "set beta");
    assert_eq!(ok(store.get(&alpha, "k").await, "get"), Some(b("a")));
    assert_eq!(ok(store.get(&beta, "k").await, "get"), Some(b("b")));
    assert_eq!(ok(store.get(&gamma, "k").await, "get"), None);
    assert!(!ok(store.exists(&gamma, "k").await, "exists"));

    ok(store.increment(&alpha, "n", 5).await, "increment alpha");
    assert_eq!(
        ok(store.increment(&beta, "n", 1).await, "increment beta"),
        1
    );

    ok(store.delete(&alpha, "k").await, "delete alpha");
    assert_eq!(ok(store.get(&beta, "k").await, "get beta"), Some(b("b")));

    assert_eq!(ok(walk(&**store, &alpha, 10).await, "list alpha"), ["n"]);
    let mut beta_keys = ok(walk(&**store, &beta, 10).await, "list beta");
    beta_keys.sort();
    assert_eq!(beta_keys, ["k", "n"]);
    assert!(ok(walk(&**store, &gamma, 10).await, "list gamma").is_empty());

    assert_eq!(
        ok(
            store.get_many(&gamma, vec!["k".into(), "n".into()]).await,
            "get_many gamma"
        ),
        vec![None, None]
    );
    ok(
        store.set_many(&gamma, vec![("k".into(), b("c"))]).await,
        "set_many gamma",
    );
    ok(
        store.delete_many(&beta, vec!["k".into(), "n".into()]).await,
        "delete_many beta",
    );
    assert_eq!(ok(store.get(&alpha, "n").await, "alpha kept"), Some(b("5")));
    assert_eq!(ok(store.get(&gamma, "k").await, "gamma kept"), Some(b("c")));
    assert!(ok(walk(&**store, &beta, 10).await, "list beta").is_empty());
}

/// Bucket/key pairs that a naive `bucket + separator + key` encoding would confuse.
pub async fn bucket_names_never_collide(target: &Target) {
    let store = target.store();
    let base = unique_bucket("collide");
    let pairs = [
        (base.clone(), "b:c".to_owned()),
        (format!("{base}:b"), "c".to_owned()),
        (format!("{base}%3Ab"), "c".to_owned()),
        (format!("{base}%253Ab"), "c".to_owned()),
        (format!("{base}:"), "b:c".to_owned()),
        (format!("{base}:b:c"), String::new()),
        (format!("{base}*"), "c".to_owned()),
        (format!("{base}?"), "c".to_owned()),
        (format!("{base}[b]"), "c".to_owned()),
        (format!("{base}\\"), "c".to_owned()),
        (format!("{base}b"), "c".to_owned()),
    ];
    for (i, (bucket, key)) in pairs.iter().enumerate() {
        ok(
            store.set(bucket, key, Bytes::from(i.to_string())).await,
            ("set", bucket, key),
        );
    }
    for (i, (bucket, key)) in pairs.iter().enumerate() {
        assert_eq!(
            ok(store.get(bucket, key).await, ("get", bucket, key)),
            Some(Bytes::from(i.to_string())),
            "bucket {bucket:?} key {key:?} sees another pair's value"
        );
        assert_eq!(
            ok(walk(&**store, bucket, 5).await, ("list", bucket)),
            std::slice::from_ref(key),
            "bucket {bucket:?} lists keys of other buckets"
        );
    }
    ok(store.delete(&pairs[0].0, &pairs[0].1).await, "delete");
    for (bucket, key) in &pairs[1..] {
        assert!(
            ok(store.exists(bucket, key).await, ("exists", bucket, key)),
            "deleting in {:?} removed {key:?} from {bucket:?}",
            pairs[0].0
        );
    }
}

/// Any UTF-8 string is a key: empty, long, non-ASCII, full of separators and metacharacters.
pub async fn awkward_keys_work_everywhere(target: &Target) {
    let store = target.store();
    let caps = store.capabilities();
    let bucket = unique_bucket("awkward-keys");
    let names = awkward_names();
    for (i, key) in names.iter().enumerate() {
        ok(
            store.set(&bucket, key, Bytes::from(i.to_string())).await,
            ("set", key),
        );
    }
    for (i, key) in names.iter().enumerate() {
        let expected = Some(Bytes::from(i.to_string()));
        assert_eq!(
            ok(store.get(&bucket, key).await, ("get", key)),
            expected,
            "key {key:?}"
        );
        assert!(
            ok(store.exists(&bucket, key).await, ("exists", key)),
            "key {key:?}"
        );
    }
    let listed = ok(walk(&**store, &bucket, 7).await, "list");
    let mut sorted_listed = listed.clone();
    sorted_listed.sort();
    let mut expected = names.clone();
    expected.sort();
    assert_eq!(
        sorted_listed, expected,
        "list-keys must return awkward keys verbatim"
    );
    if caps.sorted_keys {
        assert!(
            is_sorted(&listed),
            "declared sorted_keys but keys came back unsorted"
        );
    }
    let got = ok(store.get_many(&bucket, names.clone()).await, "get_many");
    for (i, (key, found)) in names.iter().zip(got).enumerate() {
        assert_eq!(
            found,
            Some((key.clone(), Bytes::from(i.to_string()))),
            "key {key:?}"
        );
    }
    for key in &names {
        ok(store.set(&bucket, key, b("0")).await, ("reset", key));
        assert_eq!(
            ok(store.increment(&bucket, key, 3).await, ("increment", key)),
            3
        );
    }
    ok(
        store.delete_many(&bucket, names[..10].to_vec()).await,
        "delete_many",
    );
    for key in &names[10..] {
        ok(store.delete(&bucket, key).await, ("delete", key));
    }
    assert!(ok(walk(&**store, &bucket, 100).await, "list after delete").is_empty());
}

/// Bucket names are as free as keys: each awkward name is its own namespace.
pub async fn awkward_bucket_names_work(target: &Target) {
    let store = target.store();
    // Exact names on purpose (no unique prefix): these are the names under test. Each is
    // suffixed so that two runs against one server still cannot collide with other cases.
    let suffix = unique_bucket("");
    let buckets: Vec<String> = awkward_names()
        .into_iter()
        .filter(|name| name.len() <= 1024)
        .map(|name| format!("{name}{suffix}"))
        .collect();
    for (i, bucket) in buckets.iter().enumerate() {
        ok(
            store.set(bucket, "k", Bytes::from(i.to_string())).await,
            ("set", bucket),
        );
    }
    for (i, bucket) in buckets.iter().enumerate() {
        assert_eq!(
            ok(store.get(bucket, "k").await, ("get", bucket)),
            Some(Bytes::from(i.to_string())),
            "bucket {bucket:?}"
        );
        assert_eq!(
            ok(walk(&**store, bucket, 10).await, ("list", bucket)),
            ["k"],
            "bucket {bucket:?} must list exactly its own key"
        );
    }
    for bucket in &buckets {
        ok(store.delete(bucket, "k").await, ("delete", bucket));
    }
    // The empty bucket name itself, which no suffix can make unique: leave it as found.
    let empty_before = ok(store.get("", "conformance-empty-bucket").await, "get");
    ok(
        store.set("", "conformance-empty-bucket", b("v")).await,
        "set in bucket \"\"",
    );
    assert_eq!(
        ok(store.get("", "conformance-empty-bucket").await, "get"),
        Some(b("v"))
    );
    match empty_before {
        Some(value) => ok(
            store.set("", "conformance-empty-bucket", value).await,
            "restore",
        ),
        None => ok(store.delete("", "conformance-empty-bucket").await, "delete"),
    }
}

/// A missing key starts at 0; counters are stored as ASCII decimal that `get` shows and a
/// hand-written counter increments.
pub async fn increment_follows_the_shared_semantics(target: &Target) {
    let store = target.store();
    let bucket = unique_bucket("increment");
    assert_eq!(ok(store.increment(&bucket, "n", 5).await, "first"), 5);
    assert_eq!(ok(store.increment(&bucket, "n", 0).await, "zero"), 5);
    assert_eq!(ok(store.increment(&bucket, "n", 37).await, "again"), 42);
    assert_eq!(ok(store.get(&bucket, "n").await, "get"), Some(b("42")));

    ok(store.set(&bucket, "m", b("100")).await, "set counter");
    assert_eq!(ok(store.increment(&bucket, "m", 1).await, "hand-set"), 101);
    ok(store.set(&bucket, "zero", b("0")).await, "set zero");
    assert_eq!(ok(store.increment(&bucket, "zero", 1).await, "from 0"), 1);

    // A zero delta on a missing key creates the counter, as INCRBY does.
    assert_eq!(ok(store.increment(&bucket, "z", 0).await, "zero delta"), 0);
    assert_eq!(ok(store.get(&bucket, "z").await, "get"), Some(b("0")));

    // The whole unsigned range, beyond what signed 64-bit counters hold.
    let big = u64::MAX - 10;
    assert_eq!(ok(store.increment(&bucket, "big", big).await, "big"), big);
    assert_eq!(
        ok(store.increment(&bucket, "big", 10).await, "to max"),
        u64::MAX
    );
    assert_eq!(
        ok(store.get(&bucket, "big").await, "get max"),
        Some(encode_counter(u64::MAX))
    );
    ok(
        store
            .set(&bucket, "signed-max", b(&i64::MAX.to_string()))
            .await,
        "set",
    );
    assert_eq!(
        ok(store.increment(&bucket, "signed-max", 1).await, "past i64"),
        i64::MAX as u64 + 1
    );
    assert_eq!(ok(store.get(&bucket, "m").await, "get"), Some(b("101")));

    // Across 2^53, where a double stops holding every integer.
    let edge = (1u64 << 53) - 1;
    ok(
        store.set(&bucket, "edge", b(&edge.to_string())).await,
        "set",
    );
    assert_eq!(
        ok(store.increment(&bucket, "edge", 1).await, "to 2^53"),
        edge + 1
    );
    assert_eq!(
        ok(store.increment(&bucket, "edge", 1).await, "past 2^53"),
        edge + 2
    );
    assert_eq!(
        ok(store.get(&bucket, "edge").await, "get"),
        Some(b(&(edge + 2).to_string()))
    );
    // Deltas of 15 and of 16 digits.
    let (d15, d16) = (999_999_999_999_999, 1_000_000_000_000_000);
    assert_eq!(
        ok(store.increment(&bucket, "d", d15).await, "15 digits"),
        d15
    );
    assert_eq!(
        ok(store.increment(&bucket, "d", d16).await, "16 digits"),
        d15 + d16
    );
}

/// Anything but a canonical unsigned decimal is refused with `NotNumeric`, naming bucket and
/// key, and left untouched.
pub async fn increment_rejects_non_numeric_values(target: &Target) {
    let store = target.store();
    let bucket = unique_bucket("not-numeric");
    let cases: [(&str, &[u8]); 13] = [
        ("text", b"hello"),
        ("empty", b""),
        ("negative", b"-3"),
        ("plus", b"+3"),
        ("leading-space", b" 7"),
        ("trailing-newline", b"7\n"),
        ("leading-zero", b"007"),
        ("decimal", b"1.5"),
        ("exponent", b"1e3"),
        ("hex", b"0x10"),
        ("too-big", b"18446744073709551616"),
        ("binary", b"\x00\x01"),
        ("arabic-digit", "٣".as_bytes()),
    ];
    for (key, value) in cases {
        ok(
            store.set(&bucket, key, Bytes::copy_from_slice(value)).await,
            ("set", key),
        );
        let err = store
            .increment(&bucket, key, 1)
            .await
            .expect_err(&format!("increment of {value:?} must fail"));
        assert!(
            matches!(&err, StoreError::NotNumeric { bucket: found, key: k, .. } if *found == bucket && k == key),
            "increment of {value:?}: expected NotNumeric naming the bucket and key, got {err:?}"
        );
        let message = err.to_string();
        assert!(message.contains(&format!("{key:?}")), "{message}");
        assert!(message.contains(&format!("{bucket:?}")), "{message}");
        assert_eq!(
            ok(store.get(&bucket, key).await, ("get", key)).as_deref(),
            Some(value),
            "a failed increment must not touch {key}"
        );
    }
    // A negative value stays refused and untouched, even by a delta that would lift it
    // past zero.
    ok(store.set(&bucket, "minus", b("-3")).await, "set");
    let err = store
        .increment(&bucket, "minus", 10)
        .await
        .expect_err("increment of -3 must fail");
    assert!(
        matches!(&err, StoreError::NotNumeric { .. }),
        "expected NotNumeric, got {err:?}"
    );
    assert_eq!(ok(store.get(&bucket, "minus").await, "get"), Some(b("-3")));
}

/// Going past `u64::MAX` is an `Overflow` error, never a wrap, and keeps the old value.
pub async fn increment_overflow_is_an_error(target: &Target) {
    let store = target.store();
    let bucket = unique_bucket("overflow");
    assert_eq!(
        ok(store.increment(&bucket, "n", u64::MAX).await, "to max"),
        u64::MAX
    );
    let err = store
        .increment(&bucket, "n", 1)
        .await
        .expect_err("overflow");
    assert!(
        matches!(&err, StoreError::Overflow { bucket: found, key, current: u64::MAX, delta: 1 }
            if *found == bucket && key == "n"),
        "expected Overflow {{ current: MAX, delta: 1 }}, got {err:?}"
    );
    assert!(err.to_string().contains("exceeds"), "{err}");
    assert_eq!(
        ok(store.get(&bucket, "n").await, "get"),
        Some(encode_counter(u64::MAX))
    );

    ok(store.set(&bucket, "m", b("2")).await, "set");
    let err = store
        .increment(&bucket, "m", u64::MAX - 1)
        .await
        .expect_err("2 + MAX-1 overflows");
    assert!(
        matches!(err, StoreError::Overflow { current: 2, .. }),
        "expected Overflow from 2, got {err:?}"
    );
    assert_eq!(ok(store.get(&bucket, "m").await, "get"), Some(b("2")));
    assert_eq!(
        ok(
            store.increment(&bucket, "m", u64::MAX - 2).await,
            "exactly max"
        ),
        u64::MAX
    );
}

/// N tasks × M increments add up to exactly the sum when `atomic_increment` is declared, and
/// visibly lose updates when it is not (otherwise the backend should declare it).
pub async fn concurrent_increments_match_declaration(target: &Target) {
    const TASKS: u64 = 16;
    const PER_TASK: u64 = 64;
    let store = target.store().clone();
    let declared = store.capabilities().atomic_increment;
    let bucket = Arc::new(unique_bucket("race"));
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let store = store.clone();
        let bucket = bucket.clone();
        tasks.spawn(async move {
            let mut seen = Vec::with_capacity(PER_TASK as usize);
            for _ in 0..PER_TASK {
                // Deltas differ per task so that lost updates cannot cancel out.
                seen.push(ok(
                    store.increment(&bucket, "n", task + 1).await,
                    "increment",
                ));
            }
            seen
        });
    }
    let mut results = BTreeSet::new();
    let mut duplicates = 0;
    while let Some(seen) = tasks.join_next().await {
        for value in seen.expect("increment task panicked") {
            if !results.insert(value) {
                duplicates += 1;
            }
        }
    }
    let expected = PER_TASK * (1..=TASKS).sum::<u64>();
    let total = ok(store.increment(&bucket, "n", 0).await, "read total");
    let exact = total == expected && duplicates == 0;
    if declared {
        assert_eq!(
            total, expected,
            "declared atomic_increment, but {TASKS} tasks x {PER_TASK} increments lost updates"
        );
        assert_eq!(
            duplicates, 0,
            "two increments returned the same counter value"
        );
        assert_eq!(results.last(), Some(&expected));
    } else {
        assert!(
            !exact,
            "atomic_increment is not declared, yet {} concurrent increments added up exactly; \
             declare the capability if it is guaranteed",
            TASKS * PER_TASK
        );
    }
}

/// A cursor walk over 10 000 keys yields every key exactly once, with pages bounded by the
/// limit and the declared `max_page_size`, in sorted order exactly when `sorted_keys` is
/// declared. Keys of other buckets (including prefix-sharing ones) never appear.
pub async fn list_keys_pages_over_10000_keys(target: &Target) {
    let store = target.store();
    let caps = store.capabilities();
    assert!(
        (1..=MAX_PAGE_SIZE).contains(&caps.max_page_size),
        "declared max_page_size {} is outside 1..={MAX_PAGE_SIZE}",
        caps.max_page_size
    );
    let bucket = unique_bucket("many");
    let expected: Vec<String> = (0..MANY_KEYS).map(|i| format!("key-{i:05}")).collect();
    // Written in a scrambled order, so that insertion order is not sorted order.
    let insertion = shuffled(expected.clone(), 0x5eed);
    for chunk in insertion.chunks(500) {
        let entries = chunk.iter().map(|key| (key.clone(), b(key))).collect();
        ok(store.set_many(&bucket, entries).await, "set_many");
    }
    // Neighbours that share the bucket's name as a prefix must stay out of the walk.
    for neighbour in [
        format!("{bucket}x"),
        format!("{bucket}:"),
        bucket[..bucket.len() - 1].to_owned(),
    ] {
        ok(
            store.set(&neighbour, "stray", b("x")).await,
            "set neighbour",
        );
    }

    let expected_set: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
    let mut saw_sorted = Vec::new();
    for limit in [7, 1000, usize::MAX] {
        let keys = ok(walk(&**store, &bucket, limit).await, ("walk", limit));
        let mut seen = HashSet::with_capacity(keys.len());
        for key in &keys {
            assert!(
                seen.insert(key.as_str()),
                "limit {limit}: key {key:?} listed twice"
            );
            assert!(
                expected_set.contains(key.as_str()),
                "limit {limit}: stray key {key:?}"
            );
        }
        assert_eq!(
            keys.len(),
            MANY_KEYS,
            "limit {limit}: the walk must list every key exactly once"
        );
        saw_sorted.push(is_sorted(&keys));
    }
    if caps.sorted_keys {
        assert!(
            saw_sorted.iter().all(|sorted| *sorted),
            "declared sorted_keys, but a walk came back out of order"
        );
    } else {
        assert!(
            !saw_sorted.iter().all(|sorted| *sorted),
            "sorted_keys is not declared, yet 10 000 keys written in scrambled order came back \
             sorted in every walk; declare the capability if it is guaranteed"
        );
    }
}

/// A zero limit still advances (pages of at most one key); huge limits are clamped to
/// `MAX_PAGE_SIZE` and the declared page size.
pub async fn list_keys_clamps_limits(target: &Target) {
    let store = target.store();
    let bucket = unique_bucket("clamp");
    let entries: Vec<(String, Bytes)> = (0..1500).map(|i| (i.to_string(), b("v"))).collect();
    ok(store.set_many(&bucket, entries).await, "set_many");

    let huge = ok(
        walk(&**store, &bucket, 1_000_000).await,
        "walk with a huge limit",
    );
    assert_eq!(huge.len(), 1500);
    let page = ok(store.list_keys(&bucket, None, usize::MAX).await, "list");
    assert!(page.keys.len() <= clamp_page_limit(usize::MAX));

    let small: Vec<(String, Bytes)> = (0..5).map(|i| (i.to_string(), b("v"))).collect();
    let few = unique_bucket("clamp-zero");
    ok(store.set_many(&few, small).await, "set_many");
    let mut keys = ok(walk(&**store, &few, 0).await, "walk with limit 0");
    keys.sort();
    assert_eq!(keys, ["0", "1", "2", "3", "4"]);
}

/// A bucket with no keys (never used, or emptied) walks to nothing.
pub async fn list_keys_of_an_empty_bucket(target: &Target) {
    let store = target.store();
    let never = unique_bucket("never");
    assert!(ok(walk(&**store, &never, 10).await, "walk unused").is_empty());
    let emptied = unique_bucket("emptied");
    ok(store.set(&emptied, "k", b("v")).await, "set");
    ok(store.delete(&emptied, "k").await, "delete");
    assert!(ok(walk(&**store, &emptied, 10).await, "walk emptied").is_empty());
}

/// A cursor from an earlier walk, after the bucket shrank, or one never handed out, gives a
/// page or an `InvalidCursor` error — never a panic, a hang or another bucket's keys.
pub async fn list_keys_tolerates_stale_cursors(target: &Target) {
    let store = target.store();
    let bucket = unique_bucket("stale");
    let entries: Vec<(String, Bytes)> = (0..50).map(|i| (format!("k{i}"), b("v"))).collect();
    ok(store.set_many(&bucket, entries).await, "set_many");
    let other = unique_bucket("stale-other");
    ok(store.set(&other, "foreign", b("v")).await, "set other");

    let first = ok(store.list_keys(&bucket, None, 10).await, "first page");
    let cursor = first.cursor.expect("50 keys in pages of 10 need a cursor");
    let keys: Vec<String> = (0..45).map(|i| format!("k{i}")).collect();
    ok(store.delete_many(&bucket, keys).await, "shrink");
    for cursor in [
        Some(cursor),
        Some(u64::MAX),
        Some(u64::MAX / 3),
        Some(12_345),
    ] {
        match store.list_keys(&bucket, cursor, 10).await {
            Ok(page) => {
                assert!(page.keys.len() <= 10);
                for key in &page.keys {
                    assert!(key.starts_with('k'), "cursor {cursor:?} listed {key:?}");
                }
            }
            Err(StoreError::InvalidCursor { .. }) => {}
            Err(err) => panic!("cursor {cursor:?}: expected a page or InvalidCursor, got {err:?}"),
        }
    }
}

/// `get_many` answers one entry per requested key, in request order, `None` where missing.
pub async fn batch_get_many_follows_request_order(target: &Target) {
    let store = target.store();
    let bucket = unique_bucket("get-many");
    ok(store.set(&bucket, "a", b("1")).await, "set");
    ok(store.set(&bucket, "b", b("2")).await, "set");
    let got = ok(
        store
            .get_many(
                &bucket,
                vec!["b".into(), "missing".into(), "a".into(), "b".into()],
            )
            .await,
        "get_many",
    );
    assert_eq!(
        got,
        vec![
            Some(("b".to_owned(), b("2"))),
            None,
            Some(("a".to_owned(), b("1"))),
            Some(("b".to_owned(), b("2"))),
        ]
    );
    assert!(ok(store.get_many(&bucket, Vec::new()).await, "empty").is_empty());
    assert_eq!(
        ok(
            store
                .get_many(&unique_bucket("elsewhere"), vec!["a".into()])
                .await,
            "other bucket"
        ),
        vec![None]
    );
    // A large batch in one call.
    let keys: Vec<String> = (0..2000).map(|i| format!("big-{i}")).collect();
    let entries = keys.iter().map(|key| (key.clone(), b(key))).collect();
    ok(store.set_many(&bucket, entries).await, "set_many");
    let got = ok(store.get_many(&bucket, keys.clone()).await, "get_many 2000");
    assert_eq!(got.len(), keys.len());
    for (key, found) in keys.iter().zip(got) {
        assert_eq!(found, Some((key.clone(), b(key))));
    }
}

/// `set_many` writes every entry (a later duplicate wins); `delete_many` removes the keys it
/// names and skips missing ones; empty batches are no-ops.
pub async fn batch_set_many_and_delete_many(target: &Target) {
    let store = target.store();
    let bucket = unique_bucket("set-many");
    ok(
        store
            .set_many(
                &bucket,
                vec![
                    ("a".into(), b("1")),
                    ("b".into(), b("2")),
                    ("a".into(), b("3")),
                    ("c".into(), Bytes::new()),
                ],
            )
            .await,
        "set_many",
    );
    assert_eq!(
        ok(store.get(&bucket, "a").await, "get"),
        Some(b("3")),
        "later duplicate wins"
    );
    assert_eq!(ok(store.get(&bucket, "b").await, "get"), Some(b("2")));
    assert_eq!(ok(store.get(&bucket, "c").await, "get"), Some(Bytes::new()));
    ok(store.set_many(&bucket, Vec::new()).await, "empty set_many");
    ok(
        store.delete_many(&bucket, Vec::new()).await,
        "empty delete_many",
    );

    ok(
        store
            .delete_many(&bucket, vec!["a".into(), "never-there".into(), "a".into()])
            .await,
        "delete_many",
    );
    let mut keys = ok(walk(&**store, &bucket, 10).await, "list");
    keys.sort();
    assert_eq!(keys, ["b", "c"]);
    ok(
        store
            .delete_many(&bucket, vec!["b".into(), "c".into()])
            .await,
        "delete_many rest",
    );
    assert!(ok(walk(&**store, &bucket, 10).await, "list").is_empty());
}

/// A reader racing a writer never sees a half-applied batch when `atomic_batch` is declared
/// (`get_many` reads a consistent snapshot), and does see one when it is not.
pub async fn batch_atomicity_matches_declaration(target: &Target) {
    const KEYS: usize = 32;
    const ROUNDS: usize = 400;
    let store = target.store().clone();
    let declared = store.capabilities().atomic_batch;
    let bucket = Arc::new(unique_bucket("atomic-batch"));
    let keys: Arc<Vec<String>> = Arc::new((0..KEYS).map(|i| format!("k{i:02}")).collect());
    let done = Arc::new(AtomicBool::new(false));

    let writer = {
        let (store, bucket, keys, done) =
            (store.clone(), bucket.clone(), keys.clone(), done.clone());
        tokio::spawn(async move {
            for round in 0..ROUNDS {
                let value = b(&round.to_string());
                let entries = keys
                    .iter()
                    .map(|key| (key.clone(), value.clone()))
                    .collect();
                ok(store.set_many(&bucket, entries).await, "set_many");
                if round % 8 == 7 {
                    ok(
                        store.delete_many(&bucket, keys.to_vec()).await,
                        "delete_many",
                    );
                }
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let mut readers = tokio::task::JoinSet::new();
    for _ in 0..2 {
        let (store, bucket, keys, done) =
            (store.clone(), bucket.clone(), keys.clone(), done.clone());
        readers.spawn(async move {
            let (mut reads, mut torn) = (0usize, 0usize);
            while !done.load(Ordering::SeqCst) {
                let got = ok(store.get_many(&bucket, keys.to_vec()).await, "get_many");
                let distinct: HashSet<Option<Bytes>> = got
                    .into_iter()
                    .map(|entry| entry.map(|(_, value)| value))
                    .collect();
                reads += 1;
                if distinct.len() > 1 {
                    torn += 1;
                }
                // Yield so that a single-threaded backend still lets the writer run.
                tokio::task::yield_now().await;
            }
            (reads, torn)
        });
    }
    writer.await.expect("writer panicked");
    let (mut reads, mut torn) = (0, 0);
    while let Some(result) = readers.join_next().await {
        let (r, t) = result.expect("reader panicked");
        reads += r;
        torn += t;
    }
    if declared {
        assert_eq!(
            torn, 0,
            "declared atomic_batch, but {torn} of {reads} get_many calls saw a half-applied batch"
        );
    } else {
        assert!(
            torn > 0,
            "atomic_batch is not declared, yet none of {reads} get_many calls racing {ROUNDS} \
             batches saw one half applied; declare the capability if it is guaranteed"
        );
    }
}

/// A declared `max_value_size` is exact: a value that size round-trips, one byte more fails
/// with `TooLarge` (naming sizes) and writes nothing. Without a declared limit, a large value
/// must be accepted.
pub async fn value_size_limit_matches_declaration(target: &Target) {
    let store = target.store();
    let caps = store.capabilities();
    let bucket = unique_bucket("value-size");
    let Some(max) = caps.max_value_size else {
        let value = binary(UNLIMITED_PROBE_SIZE, 1);
        ok(
            store.set(&bucket, "large", value.clone()).await,
            "no max_value_size is declared, so a 32 MiB value must be accepted",
        );
        assert!(ok(store.get(&bucket, "large").await, "get") == Some(value));
        return;
    };
    assert!(
        max <= MAX_VERIFIABLE_LIMIT,
        "declared max_value_size {max} is too large for the suite to verify; a backend that \
         only relies on its server's limit should declare None"
    );
    let fits = binary(max, 2);
    ok(
        store.set(&bucket, "fits", fits.clone()).await,
        ("set of exactly max_value_size", max),
    );
    assert!(ok(store.get(&bucket, "fits").await, "get") == Some(fits.clone()));

    let too_big = binary(max + 1, 3);
    let err = store
        .set(&bucket, "fits", too_big.clone())
        .await
        .expect_err("a value one byte over the declared max_value_size must be refused");
    assert!(
        matches!(&err, StoreError::TooLarge { bucket: found, key, size, max: m }
            if *found == bucket && key == "fits" && *size == max + 1 && *m == max),
        "expected TooLarge {{ size: {}, max: {max} }}, got {err:?}",
        max + 1
    );
    let message = err.to_string();
    assert!(
        message.contains(&format!("{} bytes", max + 1))
            && message.contains(&format!("{max} bytes")),
        "{message}"
    );
    assert!(
        ok(store.get(&bucket, "fits").await, "get") == Some(fits),
        "a refused set must leave the old value"
    );

    let err = store
        .set_many(
            &bucket,
            vec![("small".into(), b("ok")), ("big".into(), too_big)],
        )
        .await
        .expect_err("a batch with an oversized value must be refused");
    assert!(matches!(err, StoreError::TooLarge { .. }), "{err:?}");
    assert!(!ok(store.exists(&bucket, "big").await, "exists"));
    if caps.atomic_batch {
        assert!(
            !ok(store.exists(&bucket, "small").await, "exists"),
            "declared atomic_batch, but a refused batch wrote part of itself"
        );
    }
}

/// Data written through one instance is visible through an independent reopened instance
/// exactly when `persistent` is declared.
pub async fn persistence_matches_declaration(target: &Target) {
    let store = target.store();
    let declared = store.capabilities().persistent;
    let bucket = unique_bucket("persistent");
    ok(store.set(&bucket, "k", b("kept")).await, "set");
    ok(store.increment(&bucket, "n", 7).await, "increment");
    let reopened = target.reopen().await;
    let value = ok(
        reopened.get(&bucket, "k").await,
        "get through the reopened store",
    );
    let counter = ok(reopened.get(&bucket, "n").await, "get counter");
    if declared {
        assert_eq!(
            value,
            Some(b("kept")),
            "declared persistent, but the data is gone"
        );
        assert_eq!(counter, Some(b("7")));
        let listed = ok(walk(&*reopened, &bucket, 10).await, "list");
        assert_eq!(listed.len(), 2);
    } else {
        assert_eq!(
            value, None,
            "persistent is not declared, yet an independent instance sees the data; declare \
             the capability if it is guaranteed"
        );
    }
}

/// Many callers at once on distinct keys: nothing is lost or crossed (a shared connection
/// must match each reply to its request).
pub async fn concurrent_callers_on_distinct_keys(target: &Target) {
    const TASKS: usize = 16;
    const PER_TASK: usize = 50;
    let store = target.store().clone();
    let bucket = Arc::new(unique_bucket("concurrent"));
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let (store, bucket) = (store.clone(), bucket.clone());
        tasks.spawn(async move {
            for i in 0..PER_TASK {
                let key = format!("t{task}-k{i}");
                let value = binary(16 + i, task as u8);
                ok(store.set(&bucket, &key, value.clone()).await, ("set", &key));
                assert_eq!(
                    ok(store.get(&bucket, &key).await, ("get", &key)),
                    Some(value)
                );
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.expect("caller task panicked");
    }
    let keys = ok(walk(&*store, &bucket, 1000).await, "list");
    assert_eq!(keys.len(), TASKS * PER_TASK);
}

/// A store whose backend is up reports itself healthy.
pub async fn health_reports_reachable(target: &Target) {
    ok(
        target.store().health().await,
        "health of a reachable backend",
    );
    let reopened: Arc<dyn Store> = target.reopen().await;
    ok(reopened.health().await, "health of a reopened store");
}

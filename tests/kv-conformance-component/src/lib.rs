//! Key-value conformance cases, run from inside WebAssembly.
//!
//! The component imports only `wasi:keyvalue` (store, atomics, batch) and serves
//! `wasi:http`. The same binary is deployed against the memory, Redis and Postgres
//! providers, which is the point: the manifest picks the backend.
//!
//! - `GET /ready`: 200 once a call reaches the provider.
//! - `GET /run`: every case below against whichever provider the manifest links; answers
//!   `{"passed":[..],"failed":[{"case":..,"error":..}],"buckets":[..]}`, 200 only if every
//!   case passed. Each run uses fresh buckets under a per-run prefix and empties them.
//!   `GET /run?witness` leaves one key behind (reported in the answer), for a test to look
//!   for in the backend itself.
//! - `GET /increment`, `/value`, `/probe`, `/bench`: single operations that the e2e test
//!   and the bench drive from outside (concurrently, across a backend restart, with
//!   growing values, or timed). A store error is answered 503 with the provider's message.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use wasmcloud_component::http::{self, header, HeaderValue, IncomingRequest, Response, StatusCode};
use wasmcloud_component::wasi::keyvalue::{atomics, batch, store};

/// Keys written by the paging case: ten pages of the providers' 1000-key page limit.
const PAGING_KEYS: usize = 10_000;
/// `set-many` chunk size when filling the paging bucket.
const FILL_CHUNK: usize = 500;
/// The key `GET /run?witness` leaves in the first bucket, and its value.
const WITNESS_KEY: &str = "witness";
const WITNESS_VALUE: &str = "kv-conformance";

type CaseResult = Result<(), String>;

/// The buckets of one run: `a` and `b` for isolation, `paging` for the large walk.
struct Ctx {
    a: String,
    b: String,
    paging: String,
}

/// A named case: runs against the run's buckets and says what went wrong, if anything.
type Case = (&'static str, fn(&Ctx) -> CaseResult);

/// Named as in the native suite (`keyvalue_conformance::CASES`); the e2e test checks that
/// every native case either runs here, is driven by the test itself through the lattice,
/// or is listed there with the reason it cannot cross `wasi:keyvalue`.
const CASES: &[Case] = &[
    ("get_set_overwrite_delete", get_set_overwrite_delete),
    ("empty_value_is_a_value", empty_value_is_a_value),
    ("binary_values_round_trip", binary_values_round_trip),
    (
        "buckets_are_isolated_namespaces",
        buckets_are_isolated_namespaces,
    ),
    ("bucket_names_never_collide", bucket_names_never_collide),
    ("awkward_keys_work_everywhere", awkward_keys_work_everywhere),
    ("awkward_bucket_names_work", awkward_bucket_names_work),
    (
        "increment_follows_the_shared_semantics",
        increment_follows_the_shared_semantics,
    ),
    (
        "increment_rejects_non_numeric_values",
        increment_rejects_non_numeric_values,
    ),
    (
        "increment_overflow_is_an_error",
        increment_overflow_is_an_error,
    ),
    (
        "list_keys_pages_over_10000_keys",
        list_keys_pages_over_10000_keys,
    ),
    ("list_keys_of_an_empty_bucket", list_keys_of_an_empty_bucket),
    (
        "list_keys_tolerates_stale_cursors",
        list_keys_tolerates_stale_cursors,
    ),
    (
        "batch_get_many_follows_request_order",
        batch_get_many_follows_request_order,
    ),
    (
        "batch_set_many_and_delete_many",
        batch_set_many_and_delete_many,
    ),
];

struct Conformance;

http::export!(Conformance);

impl http::Server for Conformance {
    fn handle(request: IncomingRequest) -> http::Result<Response<impl http::OutgoingBody>> {
        let query = request.uri().query().unwrap_or("").to_string();
        let single = |f: fn(&str) -> Result<serde_json::Value, Failure>| match f(&query) {
            Ok(body) => (StatusCode::OK, body),
            Err(Failure::BadRequest(error)) => (StatusCode::BAD_REQUEST, json!({"error": error})),
            Err(Failure::Store(error)) => {
                (StatusCode::SERVICE_UNAVAILABLE, json!({"error": error}))
            }
        };
        let (status, body) = if request.method().as_str() != "GET" {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"error": "only GET is served"}),
            )
        } else {
            match request.uri().path() {
                "/ready" => ready(),
                "/run" => run(query.split('&').any(|p| p == "witness")),
                "/increment" => single(increment_times),
                "/value" => single(value_round_trip),
                "/probe" => single(probe),
                "/bench" => single(bench),
                other => (
                    StatusCode::NOT_FOUND,
                    json!({"error": format!(
                        "no route {other}: GET /run, /ready, /increment, /value, /probe or /bench"
                    )}),
                ),
            }
        };
        let mut response = Response::new(body.to_string().into_bytes());
        *response.status_mut() = status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Ok(response)
    }
}

/// Why a single operation failed: the caller's query (400) or the store (503).
enum Failure {
    BadRequest(String),
    Store(String),
}

impl From<String> for Failure {
    fn from(error: String) -> Self {
        Failure::Store(error)
    }
}

/// One cheap round trip to the provider: 200 once the key-value link answers.
fn ready() -> (StatusCode, serde_json::Value) {
    match open("kvc-ready").and_then(|b| op("get", b.get("ready"))) {
        Ok(_) => (StatusCode::OK, json!({"ready": true})),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"ready": false, "error": error}),
        ),
    }
}

fn run(witness: bool) -> (StatusCode, serde_json::Value) {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let prefix = format!("kvc-{nanos:x}");
    let ctx = Ctx {
        a: format!("{prefix}-a"),
        b: format!("{prefix}-b"),
        paging: format!("{prefix}-paging"),
    };

    let mut passed = Vec::new();
    let mut failed = Vec::new();
    let mut record = |name: &str, result: CaseResult| match result {
        Ok(()) => passed.push(name.to_string()),
        Err(error) => failed.push(json!({"case": name, "error": error})),
    };
    for (name, case) in CASES {
        record(name, case(&ctx));
    }
    // Runs last, whatever failed before: leaves every bucket of the run empty.
    record("cleanup_leaves_buckets_empty", cleanup(&ctx));
    let mut body = json!({"buckets": [&ctx.a, &ctx.b, &ctx.paging]});
    if witness {
        record("witness_written", leave_witness(&ctx));
        body["witness"] = json!({"bucket": &ctx.a, "key": WITNESS_KEY, "value": WITNESS_VALUE});
    }

    let status = if failed.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    body["passed"] = json!(passed);
    body["failed"] = json!(failed);
    (status, body)
}

// ---------------------------------------------------------------------------------------
// Helpers

fn open(bucket: &str) -> Result<store::Bucket, String> {
    store::open(bucket).map_err(|e| format!("open({bucket:?}): {}", describe(&e)))
}

fn describe(err: &store::Error) -> String {
    match err {
        store::Error::NoSuchStore => "no such store".to_string(),
        store::Error::AccessDenied => "access denied".to_string(),
        store::Error::Other(detail) => detail.clone(),
    }
}

/// Names the operation in the error of a failed call.
fn op<T>(what: &str, result: Result<T, store::Error>) -> Result<T, String> {
    result.map_err(|e| format!("{what}: {}", describe(&e)))
}

/// `len` deterministic bytes that look random (xorshift), so that a value truncated,
/// reordered or mixed up with another one never compares equal by accident.
fn noise(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn ensure(cond: bool, msg: impl FnOnce() -> String) -> CaseResult {
    if cond {
        Ok(())
    } else {
        Err(msg())
    }
}

fn expect_value(bucket: &store::Bucket, key: &str, want: Option<&[u8]>) -> CaseResult {
    let got = op(&format!("get({key:?})"), bucket.get(key))?;
    ensure(got.as_deref() == want, || {
        format!("get({key:?}): expected {want:?}, got {got:?}")
    })
}

fn expect_exists(bucket: &store::Bucket, key: &str, want: bool) -> CaseResult {
    let got = op(&format!("exists({key:?})"), bucket.exists(key))?;
    ensure(got == want, || {
        format!("exists({key:?}): expected {want}, got {got}")
    })
}

/// Every key of a bucket, walking list-keys to the end, and the number of pages.
fn all_keys(bucket: &store::Bucket) -> Result<(Vec<String>, usize), String> {
    let mut keys = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = op("list-keys", bucket.list_keys(cursor))?;
        pages += 1;
        keys.extend(page.keys);
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => return Ok((keys, pages)),
        }
        if pages > 100_000 {
            return Err("list-keys never returned a final page".to_string());
        }
    }
}

// ---------------------------------------------------------------------------------------
// Cases

fn get_set_overwrite_delete(ctx: &Ctx) -> CaseResult {
    let b = open(&ctx.a)?;
    let k = "ops/key";
    expect_value(&b, k, None)?;
    expect_exists(&b, k, false)?;
    op("set", b.set(k, b"one"))?;
    expect_value(&b, k, Some(b"one"))?;
    expect_exists(&b, k, true)?;
    op("set (overwrite)", b.set(k, b"two"))?;
    expect_value(&b, k, Some(b"two"))?;
    op("delete", b.delete(k))?;
    expect_value(&b, k, None)?;
    expect_exists(&b, k, false)?;
    // Deleting a missing key does nothing.
    op("delete (missing)", b.delete(k))?;
    expect_exists(&b, k, false)
}

fn empty_value_is_a_value(ctx: &Ctx) -> CaseResult {
    let b = open(&ctx.a)?;
    let k = "empty/value";
    op("set", b.set(k, b""))?;
    expect_value(&b, k, Some(b""))?;
    expect_exists(&b, k, true)?;
    op("delete", b.delete(k))?;
    expect_exists(&b, k, false)
}

fn buckets_are_isolated_namespaces(ctx: &Ctx) -> CaseResult {
    let (a, b) = (open(&ctx.a)?, open(&ctx.b)?);
    let k = "iso/shared";
    op("set a", a.set(k, b"in a"))?;
    op("set b", b.set(k, b"in b"))?;
    expect_value(&a, k, Some(b"in a"))?;
    expect_value(&b, k, Some(b"in b"))?;

    // A key only in b is invisible from a, for every read.
    op("set b only", b.set("iso/only-b", b"x"))?;
    expect_value(&a, "iso/only-b", None)?;
    expect_exists(&a, "iso/only-b", false)?;
    let (a_keys, _) = all_keys(&a)?;
    ensure(!a_keys.iter().any(|k| k == "iso/only-b"), || {
        format!("bucket a lists bucket b's key: {a_keys:?}")
    })?;
    let many = op(
        "get-many a",
        batch::get_many(&a, &["iso/only-b".to_string()]),
    )?;
    ensure(many == vec![None], || {
        format!("get-many in a sees b's key: {many:?}")
    })?;

    // Counters and deletes stay in their bucket.
    let n = op("increment a", atomics::increment(&a, "iso/counter", 5))?;
    ensure(n == 5, || format!("increment in a: expected 5, got {n}"))?;
    let n = op("increment b", atomics::increment(&b, "iso/counter", 1))?;
    ensure(n == 1, || {
        format!("increment in b saw a's counter: expected 1, got {n}")
    })?;
    op("delete a", a.delete(k))?;
    expect_exists(&a, k, false)?;
    expect_value(&b, k, Some(b"in b"))?;

    op(
        "delete-many a",
        batch::delete_many(&a, &["iso/counter".to_string()]),
    )?;
    op(
        "delete-many b",
        batch::delete_many(
            &b,
            &[k.to_string(), "iso/only-b".into(), "iso/counter".into()],
        ),
    )
}

fn list_keys_of_an_empty_bucket(ctx: &Ctx) -> CaseResult {
    let b = open(&format!("{}-never-written", ctx.a))?;
    expect_value(&b, "anything", None)?;
    expect_exists(&b, "anything", false)?;
    let (keys, _) = all_keys(&b)?;
    ensure(keys.is_empty(), || {
        format!("a bucket never written to lists {keys:?}")
    })
}

fn binary_values_round_trip(ctx: &Ctx) -> CaseResult {
    let b = open(&ctx.a)?;
    let every_byte: Vec<u8> = (0..=255u8).collect();
    let not_utf8 = vec![0xff, 0xfe, 0x00, 0xc3, 0x28, 0x00];
    let noise = noise(0x1234_5678, 64 * 1024);
    for (k, v) in [
        ("bin/every-byte", &every_byte),
        ("bin/not-utf8", &not_utf8),
        ("bin/noise-64k", &noise),
    ] {
        op(&format!("set({k:?})"), b.set(k, v))?;
        expect_value(&b, k, Some(v))?;
        op(&format!("delete({k:?})"), b.delete(k))?;
    }
    Ok(())
}

fn awkward_keys_work_everywhere(ctx: &Ctx) -> CaseResult {
    let b = open(&ctx.b)?;
    let keys: Vec<String> = [
        "",
        "é",
        "e\u{301}",
        "日本語/キー",
        "🦀",
        ":%'*;",
        ":",
        "%3A",
        "a:b:c",
        "key with spaces",
        "\"?[\\]",
        "line\nbreak",
        "nul\0inside",
        "*",
    ]
    .into_iter()
    .map(str::to_string)
    .chain([":%'*;".repeat(800)])
    .collect();
    for (i, k) in keys.iter().enumerate() {
        op(&format!("set({k:?})"), b.set(k, i.to_string().as_bytes()))?;
    }
    for (i, k) in keys.iter().enumerate() {
        expect_value(&b, k, Some(i.to_string().as_bytes()))?;
        expect_exists(&b, k, true)?;
    }
    let (mut listed, _) = all_keys(&b)?;
    listed.sort();
    let mut want = keys.clone();
    want.sort();
    ensure(listed == want, || {
        format!("list-keys: expected {want:?}, got {listed:?}")
    })?;
    for k in &keys {
        op(&format!("delete({k:?})"), b.delete(k))?;
        expect_exists(&b, k, false)?;
    }
    Ok(())
}

fn increment_follows_the_shared_semantics(ctx: &Ctx) -> CaseResult {
    increment_missing_starts_at_zero(ctx)?;
    increment_accumulates(ctx)
}

fn increment_missing_starts_at_zero(ctx: &Ctx) -> CaseResult {
    let b = open(&ctx.a)?;
    let n = op("increment by 0", atomics::increment(&b, "inc/zero", 0))?;
    ensure(n == 0, || {
        format!("increment(missing, 0): expected 0, got {n}")
    })?;
    expect_value(&b, "inc/zero", Some(b"0"))?;
    let n = op("increment by 7", atomics::increment(&b, "inc/seven", 7))?;
    ensure(n == 7, || {
        format!("increment(missing, 7): expected 7, got {n}")
    })?;
    op(
        "delete-many",
        batch::delete_many(&b, &["inc/zero".to_string(), "inc/seven".into()]),
    )
}

fn increment_accumulates(ctx: &Ctx) -> CaseResult {
    let b = open(&ctx.a)?;
    let k = "inc/sum";
    for delta in 1..=10u64 {
        let n = op("increment", atomics::increment(&b, k, delta))?;
        let want = delta * (delta + 1) / 2;
        ensure(n == want, || {
            format!("after adding 1..={delta}: expected {want}, got {n}")
        })?;
    }
    expect_value(&b, k, Some(b"55"))?;
    // A counter written by hand as decimal can be incremented.
    op("set", b.set(k, b"41"))?;
    let n = op("increment", atomics::increment(&b, k, 1))?;
    ensure(n == 42, || format!("41 + 1: expected 42, got {n}"))?;
    op("delete", b.delete(k))
}

fn increment_rejects_non_numeric_values(ctx: &Ctx) -> CaseResult {
    let b = open(&ctx.a)?;
    let k = "inc/text";
    op("set", b.set(k, b"not a number"))?;
    match atomics::increment(&b, k, 1) {
        Ok(n) => return Err(format!("increment of a non-numeric value returned {n}")),
        Err(store::Error::Other(msg)) if !msg.is_empty() => {}
        Err(e) => return Err(format!("expected error::other, got {e:?}")),
    }
    expect_value(&b, k, Some(b"not a number"))?;
    op("delete", b.delete(k))
}

fn list_keys_pages_over_10000_keys(ctx: &Ctx) -> CaseResult {
    let b = open(&ctx.paging)?;
    let keys: Vec<String> = (0..PAGING_KEYS).map(|i| format!("page/{i:05}")).collect();
    for chunk in keys.chunks(FILL_CHUNK) {
        let entries: Vec<(String, Vec<u8>)> = chunk
            .iter()
            .map(|k| (k.clone(), k.as_bytes().to_vec()))
            .collect();
        op("set-many", batch::set_many(&b, &entries))?;
    }

    let (listed, pages) = all_keys(&b)?;
    ensure(pages >= 10, || {
        format!("{PAGING_KEYS} keys came back in {pages} page(s); pages hold at most 1000")
    })?;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for k in &listed {
        *seen.entry(k.as_str()).or_default() += 1;
    }
    let dupes: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    ensure(dupes.is_empty(), || format!("keys listed twice: {dupes:?}"))?;
    let missing: Vec<_> = keys
        .iter()
        .filter(|k| !seen.contains_key(k.as_str()))
        .take(5)
        .collect();
    ensure(missing.is_empty(), || {
        format!("keys never listed: {missing:?}")
    })?;
    ensure(listed.len() == PAGING_KEYS, || {
        format!("expected {PAGING_KEYS} keys, listed {}", listed.len())
    })?;

    for chunk in keys.chunks(FILL_CHUNK) {
        op("delete-many", batch::delete_many(&b, chunk))?;
    }
    let (left, _) = all_keys(&b)?;
    ensure(left.is_empty(), || {
        format!("{} keys left after delete-many", left.len())
    })
}

fn batch_set_many_and_delete_many(ctx: &Ctx) -> CaseResult {
    let b = open(&ctx.b)?;
    let s = |k: &str| k.to_string();
    // A later duplicate of a key wins.
    op(
        "set-many",
        batch::set_many(
            &b,
            &[
                (s("batch/1"), b"first".to_vec()),
                (s("batch/2"), b"two".to_vec()),
                (s("batch/1"), b"one".to_vec()),
            ],
        ),
    )?;
    let got = op(
        "get-many",
        batch::get_many(&b, &[s("batch/1"), s("batch/missing"), s("batch/2")]),
    )?;
    let want = vec![
        Some((s("batch/1"), b"one".to_vec())),
        None,
        Some((s("batch/2"), b"two".to_vec())),
    ];
    ensure(got == want, || {
        format!("get-many: expected {want:?}, got {got:?}")
    })?;
    // Missing keys are skipped.
    op(
        "delete-many",
        batch::delete_many(&b, &[s("batch/1"), s("batch/missing")]),
    )?;
    let got = op(
        "get-many",
        batch::get_many(&b, &[s("batch/1"), s("batch/2")]),
    )?;
    let want = vec![None, Some((s("batch/2"), b"two".to_vec()))];
    ensure(got == want, || {
        format!("get-many after delete-many: expected {want:?}, got {got:?}")
    })?;
    let got = op("get-many (empty)", batch::get_many(&b, &[]))?;
    ensure(got.is_empty(), || format!("get-many of no keys: {got:?}"))?;
    op("delete-many", batch::delete_many(&b, &[s("batch/2")]))
}

/// Deletes whatever the cases left (a failed case may stop half way), then checks that
/// every bucket of the run lists no keys.
fn cleanup(ctx: &Ctx) -> CaseResult {
    for name in [&ctx.a, &ctx.b, &ctx.paging] {
        let b = open(name)?;
        let (keys, _) = all_keys(&b)?;
        for chunk in keys.chunks(FILL_CHUNK) {
            op("delete-many", batch::delete_many(&b, chunk))?;
        }
        let (left, _) = all_keys(&b)?;
        ensure(left.is_empty(), || {
            format!("bucket {name:?} still lists {left:?}")
        })?;
    }
    Ok(())
}

fn leave_witness(ctx: &Ctx) -> CaseResult {
    let b = open(&ctx.a)?;
    op("set witness", b.set(WITNESS_KEY, WITNESS_VALUE.as_bytes()))?;
    expect_value(&b, WITNESS_KEY, Some(WITNESS_VALUE.as_bytes()))
}

fn bucket_names_never_collide(ctx: &Ctx) -> CaseResult {
    // Bucket "x:y" + key "z" and bucket "x" + key "y:z" would share a naive
    // "bucket:key" encoding.
    let outer = open(&format!("{}:y", ctx.b))?;
    let inner = open(&ctx.b)?;
    op("set x:y / z", outer.set("z", b"outer"))?;
    op("set x / y:z", inner.set("y:z", b"inner"))?;
    expect_value(&outer, "z", Some(b"outer"))?;
    expect_value(&inner, "y:z", Some(b"inner"))?;
    expect_value(&outer, "y:z", None)?;
    expect_value(&inner, "z", None)?;
    let (outer_keys, _) = all_keys(&outer)?;
    ensure(outer_keys == ["z"], || {
        format!("bucket {:?} lists {outer_keys:?}", format!("{}:y", ctx.b))
    })?;
    op("delete", outer.delete("z"))?;
    op("delete", inner.delete("y:z"))
}

fn awkward_bucket_names_work(ctx: &Ctx) -> CaseResult {
    let names: Vec<String> = [
        "",
        ":",
        "%",
        "'; DROP TABLE x; --",
        "*",
        "日本語",
        "🦀",
        "a b",
    ]
    .iter()
    .map(|suffix| format!("{}-{suffix}", ctx.a))
    .collect();
    for (i, name) in names.iter().enumerate() {
        let b = open(name)?;
        op(
            &format!("set in {name:?}"),
            b.set("k", i.to_string().as_bytes()),
        )?;
    }
    for (i, name) in names.iter().enumerate() {
        let b = open(name)?;
        expect_value(&b, "k", Some(i.to_string().as_bytes()))?;
        let (keys, _) = all_keys(&b)?;
        ensure(keys == ["k"], || format!("bucket {name:?} lists {keys:?}"))?;
    }
    for name in &names {
        op(&format!("delete in {name:?}"), open(name)?.delete("k"))?;
    }
    Ok(())
}

fn increment_overflow_is_an_error(ctx: &Ctx) -> CaseResult {
    let b = open(&ctx.a)?;
    let k = "inc/max";
    let max = u64::MAX.to_string();
    op("set", b.set(k, max.as_bytes()))?;
    match atomics::increment(&b, k, 1) {
        Ok(n) => return Err(format!("u64::MAX + 1 returned {n}")),
        Err(store::Error::Other(msg)) if !msg.is_empty() => {}
        Err(e) => return Err(format!("expected error::other, got {e:?}")),
    }
    // The failed increment wrote nothing.
    expect_value(&b, k, Some(max.as_bytes()))?;
    op("delete", b.delete(k))
}

fn batch_get_many_follows_request_order(ctx: &Ctx) -> CaseResult {
    let b = open(&ctx.b)?;
    let s = |k: &str| k.to_string();
    let entries: Vec<(String, Vec<u8>)> = (0..5)
        .map(|i| (format!("order/{i}"), vec![b'0' + i]))
        .collect();
    op("set-many", batch::set_many(&b, &entries))?;
    let asked = [
        s("order/3"),
        s("order/missing"),
        s("order/0"),
        s("order/3"),
        s("order/4"),
    ];
    let got = op("get-many", batch::get_many(&b, &asked))?;
    let want = vec![
        Some((s("order/3"), b"3".to_vec())),
        None,
        Some((s("order/0"), b"0".to_vec())),
        Some((s("order/3"), b"3".to_vec())),
        Some((s("order/4"), b"4".to_vec())),
    ];
    ensure(got == want, || {
        format!("get-many: expected {want:?}, got {got:?}")
    })?;
    let keys: Vec<String> = entries.into_iter().map(|(k, _)| k).collect();
    op("delete-many", batch::delete_many(&b, &keys))
}

// ---------------------------------------------------------------------------------------
// Single operations the e2e test and the bench drive from outside, so that they can run
// concurrently, across a backend restart, or time the calls.

/// The query parameter `name`, if present.
fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|p| p.split_once('=').or(Some((p, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn number(query: &str, name: &str, default: u64) -> Result<u64, Failure> {
    match param(query, name) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| {
            Failure::BadRequest(format!(
                "query parameter {name}={v:?} is not a whole number"
            ))
        }),
    }
}

/// Query values are used as bucket and key names; only `[A-Za-z0-9_./-]` is accepted so
/// that no decoding is needed.
fn name(query: &str, param_name: &str, default: &str) -> Result<String, Failure> {
    let v = param(query, param_name).unwrap_or(default);
    if v.is_empty()
        || !v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c))
    {
        return Err(Failure::BadRequest(format!(
            "query parameter {param_name}={v:?} must be non-empty [A-Za-z0-9_./-]"
        )));
    }
    Ok(v.to_string())
}

/// `GET /increment?bucket=B&key=K&times=N`: N increments by 1, answering the last value.
fn increment_times(query: &str) -> Result<serde_json::Value, Failure> {
    let b = open(&name(query, "bucket", "kvc-increment")?)?;
    let key = name(query, "key", "counter")?;
    let times = number(query, "times", 1)?;
    let mut last = 0;
    for _ in 0..times {
        last = op("increment", atomics::increment(&b, &key, 1))?;
    }
    Ok(json!({"value": last}))
}

/// `GET /value?size=N`: sets a value of N pseudo-random bytes, reads it back, compares,
/// deletes it. Any error is answered as the error the provider sent.
fn value_round_trip(query: &str) -> Result<serde_json::Value, Failure> {
    let size = number(query, "size", 0)? as usize;
    let b = open(&name(query, "bucket", "kvc-values")?)?;
    let key = "value/round-trip";
    let value = noise(0x9e37_79b9 ^ size as u32, size);
    op("set", b.set(key, &value))?;
    let back = op("get", b.get(key))?;
    let same = back.as_deref() == Some(value.as_slice());
    op("delete", b.delete(key))?;
    if !same {
        return Err(Failure::Store(format!(
            "a {size}-byte value came back as {:?} bytes with other content",
            back.map(|v| v.len())
        )));
    }
    Ok(json!({"size": size, "round_trip": true}))
}

/// `GET /probe?bucket=B`: set, get and increment once; what the restart test polls.
fn probe(query: &str) -> Result<serde_json::Value, Failure> {
    let b = open(&name(query, "bucket", "kvc-probe")?)?;
    op("set", b.set("probe/value", b"alive"))?;
    let got = op("get", b.get("probe/value"))?;
    let n = op("increment", atomics::increment(&b, "probe/count", 1))?;
    Ok(json!({"value": got.map(|v| String::from_utf8_lossy(&v).into_owned()), "count": n}))
}

/// `GET /bench?op=get|set|increment|get_many&n=N&bucket=B`: N calls, each timed inside
/// the component, so the figures are the lattice path as a component sees it
/// (wasi:keyvalue, the host, wRPC over NATS, the provider and its backend). `get` and
/// `get_many` read keys `bench/0`..`bench/99`, which `op=fill` writes.
fn bench(query: &str) -> Result<serde_json::Value, Failure> {
    let b = open(&name(query, "bucket", "kvc-bench")?)?;
    let n = number(query, "n", 100)?;
    let what = param(query, "op").unwrap_or("get");
    let keys: Vec<String> = (0..100).map(|i| format!("bench/{i}")).collect();
    if what == "fill" {
        let entries: Vec<(String, Vec<u8>)> =
            keys.iter().map(|k| (k.clone(), vec![b'x'; 64])).collect();
        op("set-many", batch::set_many(&b, &entries))?;
        return Ok(json!({"filled": keys.len()}));
    }
    let value = vec![b'x'; 64];
    let mut micros = Vec::with_capacity(n as usize);
    for i in 0..n as usize {
        let key = &keys[i % keys.len()];
        let start = std::time::Instant::now();
        match what {
            "get" => {
                op("get", b.get(key))?;
            }
            "set" => op("set", b.set(key, &value))?,
            "increment" => {
                op("increment", atomics::increment(&b, "bench/counter", 1))?;
            }
            "get_many" => {
                let got = op("get-many", batch::get_many(&b, &keys))?;
                if got.iter().any(Option::is_none) {
                    return Err(Failure::BadRequest(
                        "get-many missed keys: run op=fill first".to_string(),
                    ));
                }
            }
            other => {
                return Err(Failure::BadRequest(format!(
                    "op={other:?}: expected get, set, increment, get_many or fill"
                )))
            }
        }
        micros.push(start.elapsed().as_micros() as u64);
    }
    Ok(json!({"op": what, "n": n, "micros": micros}))
}

fn list_keys_tolerates_stale_cursors(ctx: &Ctx) -> CaseResult {
    let b = open(&ctx.b)?;
    let other = open(&ctx.a)?;
    op("set foreign", other.set("stale-foreign", b"v"))?;
    // More than one page (1000 keys), so that the first page hands out a cursor.
    let keys: Vec<String> = (0..1500).map(|i| format!("stale/{i:04}")).collect();
    for chunk in keys.chunks(FILL_CHUNK) {
        let entries: Vec<(String, Vec<u8>)> =
            chunk.iter().map(|k| (k.clone(), b"v".to_vec())).collect();
        op("set-many", batch::set_many(&b, &entries))?;
    }
    let first = op("list-keys", b.list_keys(None))?;
    let cursor = first
        .cursor
        .ok_or("1500 keys came back in one page without a cursor")?;
    // Shrink the bucket under the cursor.
    for chunk in keys[..1400].chunks(FILL_CHUNK) {
        op("delete-many", batch::delete_many(&b, chunk))?;
    }
    for stale in [cursor, u64::MAX, u64::MAX / 3, 12_345] {
        match b.list_keys(Some(stale)) {
            Ok(page) => ensure(
                page.keys.len() <= 1000 && page.keys.iter().all(|k| k.starts_with("stale/")),
                || {
                    format!(
                        "cursor {stale}: listed {} keys: {:?}",
                        page.keys.len(),
                        page.keys
                    )
                },
            )?,
            Err(store::Error::Other(msg)) if !msg.is_empty() => {}
            Err(e) => {
                return Err(format!(
                    "cursor {stale}: expected a page or an error, got {e:?}"
                ))
            }
        }
    }
    op("delete-many", batch::delete_many(&b, &keys[1400..]))?;
    op("delete foreign", other.delete("stale-foreign"))
}

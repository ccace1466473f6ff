//! Key-value conformance cases, run from inside WebAssembly.
//!
//! The component imports only `wasi:keyvalue` (store, atomics, batch) and serves
//! `wasi:http`: `GET /ready` answers 200 once a call reaches the provider; `GET /run` runs every case against whichever provider the manifest
//! links, and answers `{"passed":[..],"failed":[{"case":..,"error":..}],"buckets":[..]}`,
//! with 200 only if every case passed. The same binary is deployed against the memory,
//! Redis and Postgres providers, which is the point: the manifest picks the backend.
//!
//! Every run uses fresh buckets named after a per-run prefix and empties them at the end.
//! `GET /run?witness` additionally leaves one key behind (reported in the answer) so that
//! a test can look for it in the backend itself.
//!
//! The host turns provider errors into traps for everything but `get` and `increment`,
//! so the cases only expect error values from those two.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use wasmcloud_component::http::{self, header, HeaderValue, IncomingRequest, Response, StatusCode};
use wasmcloud_component::wasi::keyvalue::{atomics, batch, store};

/// Keys written by the paging case; more than two pages of the lattice's 1000-key limit.
const PAGING_KEYS: usize = 2_500;
/// `set-many` chunk size when filling the paging bucket.
const FILL_CHUNK: usize = 250;
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

const CASES: &[Case] = &[
    ("get_set_delete_exists", get_set_delete_exists),
    ("empty_value_is_a_value", empty_value_is_a_value),
    ("bucket_isolation", bucket_isolation),
    ("unwritten_bucket_is_empty", unwritten_bucket_is_empty),
    ("binary_values", binary_values),
    ("awkward_keys", awkward_keys),
    (
        "increment_missing_starts_at_zero",
        increment_missing_starts_at_zero,
    ),
    ("increment_accumulates", increment_accumulates),
    (
        "increment_non_numeric_is_error",
        increment_non_numeric_is_error,
    ),
    (
        "list_keys_pages_every_key_once",
        list_keys_pages_every_key_once,
    ),
    ("batch_get_set_delete_many", batch_get_set_delete_many),
];

struct Conformance;

http::export!(Conformance);

impl http::Server for Conformance {
    fn handle(request: IncomingRequest) -> http::Result<Response<impl http::OutgoingBody>> {
        let (status, body) = if request.method().as_str() != "GET" {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"error": "only GET is served"}),
            )
        } else if request.uri().path() == "/ready" {
            ready()
        } else if request.uri().path() != "/run" {
            (
                StatusCode::NOT_FOUND,
                json!({"error": "only GET /run and GET /ready are served"}),
            )
        } else {
            let witness = request
                .uri()
                .query()
                .is_some_and(|q| q.split('&').any(|p| p == "witness"));
            run(witness)
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

fn get_set_delete_exists(ctx: &Ctx) -> CaseResult {
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

fn bucket_isolation(ctx: &Ctx) -> CaseResult {
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

fn unwritten_bucket_is_empty(ctx: &Ctx) -> CaseResult {
    let b = open(&format!("{}-never-written", ctx.a))?;
    expect_value(&b, "anything", None)?;
    expect_exists(&b, "anything", false)?;
    let (keys, _) = all_keys(&b)?;
    ensure(keys.is_empty(), || {
        format!("a bucket never written to lists {keys:?}")
    })
}

fn binary_values(ctx: &Ctx) -> CaseResult {
    let b = open(&ctx.a)?;
    let every_byte: Vec<u8> = (0..=255u8).collect();
    let not_utf8 = vec![0xff, 0xfe, 0x00, 0xc3, 0x28, 0x00];
    // 64 KiB of deterministic, non-repeating-looking bytes.
    let mut x: u32 = 0x1234_5678;
    let noise: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
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

fn awkward_keys(ctx: &Ctx) -> CaseResult {
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

fn increment_non_numeric_is_error(ctx: &Ctx) -> CaseResult {
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

fn list_keys_pages_every_key_once(ctx: &Ctx) -> CaseResult {
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
    ensure(pages >= 3, || {
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

fn batch_get_set_delete_many(ctx: &Ctx) -> CaseResult {
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

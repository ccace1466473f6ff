use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use keyvalue_store::semantics::{apply_increment, encode_counter, page_by_offset};
use keyvalue_store::{Capabilities, KeyPage, StoreConfig};

use super::*;
use crate::bindings::exports::wrpc::keyvalue::atomics::Handler as _;
use crate::bindings::exports::wrpc::keyvalue::batch::Handler as _;
use crate::bindings::exports::wrpc::keyvalue::store::Handler as _;

/// Config entry that makes [`TestFactory`] refuse to open a store.
const FAIL_OPEN: &str = "fail-open";
/// Config entry that makes the opened store report itself unhealthy.
const UNHEALTHY: &str = "unhealthy";

/// A plain map store, enough to watch the adapter route and map errors.
#[derive(Default)]
struct MapStore {
    entries: Mutex<BTreeMap<(String, String), Bytes>>,
    unhealthy: bool,
}

#[async_trait]
impl Store for MapStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            atomic_increment: true,
            atomic_batch: false,
            sorted_keys: true,
            persistent: false,
            max_value_size: None,
            max_page_size: MAX_PAGE_SIZE,
        }
    }

    async fn get(&self, bucket: &str, key: &str) -> StoreResult<Option<Bytes>> {
        let entries = self.entries.lock().unwrap();
        Ok(entries.get(&(bucket.into(), key.into())).cloned())
    }

    async fn set(&self, bucket: &str, key: &str, value: Bytes) -> StoreResult<()> {
        if bucket == "forbidden" {
            return Err(StoreError::AccessDenied {
                bucket: bucket.into(),
                reason: "test".into(),
            });
        }
        if bucket == "broken" {
            return Err(StoreError::backend("test", "set", "disk on fire"));
        }
        let mut entries = self.entries.lock().unwrap();
        entries.insert((bucket.into(), key.into()), value);
        Ok(())
    }

    async fn delete(&self, bucket: &str, key: &str) -> StoreResult<()> {
        self.entries
            .lock()
            .unwrap()
            .remove(&(bucket.into(), key.into()));
        Ok(())
    }

    async fn exists(&self, bucket: &str, key: &str) -> StoreResult<bool> {
        Ok(self.get(bucket, key).await?.is_some())
    }

    async fn list_keys(
        &self,
        bucket: &str,
        cursor: Option<u64>,
        limit: usize,
    ) -> StoreResult<KeyPage> {
        if bucket == "missing" {
            return Err(StoreError::NoSuchStore {
                bucket: bucket.into(),
            });
        }
        let entries = self.entries.lock().unwrap();
        let keys = entries
            .keys()
            .filter(|(b, _)| b == bucket)
            .map(|(_, k)| k.clone());
        page_by_offset(bucket, keys, cursor, limit)
    }

    async fn increment(&self, bucket: &str, key: &str, delta: u64) -> StoreResult<u64> {
        let mut entries = self.entries.lock().unwrap();
        let slot = (bucket.to_owned(), key.to_owned());
        let next = apply_increment(bucket, key, entries.get(&slot).map(|v| &v[..]), delta)?;
        entries.insert(slot, encode_counter(next));
        Ok(next)
    }

    async fn health(&self) -> StoreResult<()> {
        if self.unhealthy {
            return Err(StoreError::backend("test", "ping", "no answer"));
        }
        Ok(())
    }
}

/// Opens a fresh [`MapStore`] per call, counting the calls.
#[derive(Default)]
struct TestFactory {
    opened: Arc<AtomicUsize>,
}

#[async_trait]
impl StoreFactory for TestFactory {
    fn backend(&self) -> &'static str {
        "test"
    }

    async fn open(&self, config: &StoreConfig) -> StoreResult<Arc<dyn Store>> {
        if let Some(reason) = config.value(FAIL_OPEN) {
            return Err(StoreError::InvalidConfig {
                key: FAIL_OPEN.into(),
                reason: reason.into(),
            });
        }
        self.opened.fetch_add(1, Ordering::SeqCst);
        Ok(Arc::new(MapStore {
            unhealthy: config.value(UNHEALTHY).is_some(),
            ..MapStore::default()
        }))
    }
}

fn provider() -> (KeyValueProvider<TestFactory>, Arc<AtomicUsize>) {
    let factory = TestFactory::default();
    let opened = factory.opened.clone();
    (KeyValueProvider::new(factory), opened)
}

/// A provider that knows one link, component "comp"'s `default` link, with no settings.
async fn linked_provider() -> KeyValueProvider<TestFactory> {
    let (provider, _) = provider();
    provider
        .put_link(LinkKey::new("comp", DEFAULT_LINK), &config(&[]))
        .await
        .unwrap();
    provider
}

const DEFAULT_LINK: &str = "default";

/// The context the host attaches to a call from `component` over link `link_name`.
fn cx(component: &str, link_name: &str) -> Option<Context> {
    Some(Context {
        component: Some(component.into()),
        tracing: HashMap::from([("link-name".to_owned(), link_name.to_owned())]),
    })
}

fn config(entries: &[(&str, &str)]) -> StoreConfig {
    StoreConfig::from_values(entries.iter().copied())
}

fn other_message(err: WitError) -> String {
    match err {
        WitError::Other(message) => message,
        other => panic!("expected error::other, got {other:?}"),
    }
}

#[tokio::test]
async fn links_with_identical_config_share_one_store() {
    let (provider, opened) = provider();
    let shared = config(&[("url", "a")]);
    provider
        .put_link(LinkKey::new("comp-1", "default"), &shared)
        .await
        .unwrap();
    provider
        .put_link(LinkKey::new("comp-2", "default"), &shared)
        .await
        .unwrap();
    assert_eq!(opened.load(Ordering::SeqCst), 1);

    provider
        .set(cx("comp-1", "default"), "b".into(), "k".into(), "v".into())
        .await
        .unwrap()
        .unwrap();
    let seen = provider
        .get(cx("comp-2", "default"), "b".into(), "k".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen, Some(Bytes::from("v")));
}

#[tokio::test]
async fn calls_route_to_their_own_links_store() {
    let (provider, opened) = provider();
    provider
        .put_link(LinkKey::new("comp", "default"), &config(&[("url", "a")]))
        .await
        .unwrap();
    provider
        .put_link(LinkKey::new("comp", "cache"), &config(&[("url", "b")]))
        .await
        .unwrap();
    assert_eq!(opened.load(Ordering::SeqCst), 2);

    provider
        .set(cx("comp", "default"), "b".into(), "k".into(), "main".into())
        .await
        .unwrap()
        .unwrap();
    let in_cache = provider
        .get(cx("comp", "cache"), "b".into(), "k".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(in_cache, None, "the two links must not share data");
}

#[tokio::test]
async fn link_config_is_laid_over_provider_config() {
    let (provider, opened) = provider();
    provider
        .set_provider_config(config(&[("url", "base"), ("pool", "4")]))
        .await;
    // An empty link config takes the provider's own; comp-2 names the same values.
    provider
        .put_link(LinkKey::new("comp-1", "default"), &config(&[]))
        .await
        .unwrap();
    provider
        .put_link(
            LinkKey::new("comp-2", "default"),
            &config(&[("url", "base")]),
        )
        .await
        .unwrap();
    assert_eq!(opened.load(Ordering::SeqCst), 1);
    provider
        .put_link(
            LinkKey::new("comp-3", "default"),
            &config(&[("url", "other")]),
        )
        .await
        .unwrap();
    assert_eq!(opened.load(Ordering::SeqCst), 2);
}

/// A call on a link the provider was never told about waits for it, then fails with an
/// error naming the component, the link and what was expected; no store is opened, not even
/// one from the provider-wide configuration (it could be someone else's database).
#[tokio::test(start_paused = true)]
async fn a_call_on_an_unknown_link_gets_a_clear_error_and_touches_no_store() {
    let (provider, opened) = provider();
    provider
        .set_provider_config(config(&[("url", "provider-wide")]))
        .await;
    // Another component's link exists; the caller's does not.
    provider
        .put_link(LinkKey::new("other", "hot"), &config(&[("url", "theirs")]))
        .await
        .unwrap();
    let before = opened.load(Ordering::SeqCst);

    let started = tokio::time::Instant::now();
    let err = provider
        .set(cx("stranger", "hot"), "b".into(), "k".into(), "v".into())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(started.elapsed(), crate::provider::UNKNOWN_LINK_WAIT);
    let message = other_message(err);
    for part in [
        "test key-value store",
        "set failed",
        "no link named \"hot\" from component \"stranger\"",
        "expected a link from that component to this provider (wasi:keyvalue)",
        "try the call again",
    ] {
        assert!(message.contains(part), "{message:?} lacks {part:?}");
    }
    for err in [
        provider
            .get(cx("stranger", "hot"), "b".into(), "k".into())
            .await
            .unwrap()
            .unwrap_err(),
        provider
            .increment(None, "b".into(), "n".into(), 1)
            .await
            .unwrap()
            .unwrap_err(),
    ] {
        assert!(other_message(err).contains("is known to this provider"));
    }
    assert_eq!(
        opened.load(Ordering::SeqCst),
        before,
        "no store may be opened"
    );
    let theirs = provider
        .get(cx("other", "hot"), "b".into(), "k".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        theirs, None,
        "the stranger's set must not land in another link's store"
    );
}

/// A link that arrives while a call waits for it serves that very call.
#[tokio::test(start_paused = true)]
async fn a_call_waits_for_a_link_that_arrives_late() {
    let (provider, _) = provider();
    let waiting = tokio::spawn({
        let provider = provider.clone();
        async move {
            provider
                .increment(cx("comp", "hot"), "b".into(), "n".into(), 7)
                .await
        }
    });
    tokio::time::sleep(crate::provider::UNKNOWN_LINK_WAIT / 2).await;
    assert!(
        !waiting.is_finished(),
        "the call should still wait for its link"
    );
    provider
        .put_link(LinkKey::new("comp", "hot"), &config(&[("url", "a")]))
        .await
        .unwrap();
    assert_eq!(waiting.await.unwrap().unwrap().unwrap(), 7);
    let n = provider
        .get(cx("comp", "hot"), "b".into(), "n".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, Some(Bytes::from("7")));
}

/// A deleted link is unknown again: its calls fail instead of reaching its old store.
#[tokio::test(start_paused = true)]
async fn a_deleted_link_is_refused() {
    let (provider, _) = provider();
    let link = LinkKey::new("comp", "default");
    provider.put_link(link.clone(), &config(&[])).await.unwrap();
    provider.remove_link(&link).await;
    let err = provider
        .get(cx("comp", "default"), "b".into(), "k".into())
        .await
        .unwrap()
        .unwrap_err();
    assert!(other_message(err).contains("no link named \"default\" from component \"comp\""));
}

#[tokio::test]
async fn a_link_whose_store_cannot_open_fails_its_calls_with_the_reason() {
    let (provider, _) = provider();
    let err = provider
        .put_link(
            LinkKey::new("comp", "default"),
            &config(&[(FAIL_OPEN, "bad url")]),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidConfig { .. }), "{err:?}");

    let err = provider
        .get(cx("comp", "default"), "b".into(), "k".into())
        .await
        .unwrap()
        .unwrap_err();
    let message = other_message(err);
    for part in ["test key-value store", "get failed", "\"comp\"", "bad url"] {
        assert!(message.contains(part), "{message:?} lacks {part:?}");
    }

    // Re-putting the link with a good config repairs it.
    provider
        .put_link(LinkKey::new("comp", "default"), &config(&[]))
        .await
        .unwrap();
    provider
        .get(cx("comp", "default"), "b".into(), "k".into())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn stores_close_when_their_last_link_goes() {
    let (provider, opened) = provider();
    let link_a = LinkKey::new("a", "default");
    let link_b = LinkKey::new("b", "default");
    let shared = config(&[("url", "x")]);
    provider.put_link(link_a.clone(), &shared).await.unwrap();
    provider.put_link(link_b.clone(), &shared).await.unwrap();

    provider.remove_link(&link_a).await;
    assert_eq!(provider.open_store_count().await, 1);
    provider.remove_link(&link_b).await;
    assert_eq!(provider.open_store_count().await, 0);

    provider.put_link(link_a, &shared).await.unwrap();
    assert_eq!(
        opened.load(Ordering::SeqCst),
        2,
        "a closed store is opened afresh"
    );

    provider.close_all().await;
    assert_eq!(provider.open_store_count().await, 0);
}

#[tokio::test]
async fn store_errors_map_to_wit_variants_naming_backend_and_operation() {
    let provider = linked_provider().await;
    let caller = || cx("comp", "default");

    provider
        .set(caller(), "b".into(), "n".into(), "ten".into())
        .await
        .unwrap()
        .unwrap();
    let message = other_message(
        provider
            .increment(caller(), "b".into(), "n".into(), 1)
            .await
            .unwrap()
            .unwrap_err(),
    );
    assert!(
        message.starts_with("test key-value store: increment failed:"),
        "{message}"
    );
    assert!(message.contains("not an unsigned 64-bit"), "{message}");

    let message = other_message(
        provider
            .set(caller(), "broken".into(), "k".into(), "v".into())
            .await
            .unwrap()
            .unwrap_err(),
    );
    assert!(
        message.contains("set failed") && message.contains("disk on fire"),
        "{message}"
    );

    assert!(matches!(
        provider
            .set(caller(), "forbidden".into(), "k".into(), "v".into())
            .await
            .unwrap(),
        Err(WitError::AccessDenied)
    ));
    assert!(matches!(
        provider
            .list_keys(caller(), "missing".into(), None)
            .await
            .unwrap(),
        Err(WitError::NoSuchStore)
    ));
}

#[tokio::test]
async fn every_export_works_through_the_handlers() {
    let provider = linked_provider().await;
    let caller = || cx("comp", "default");

    provider
        .set_many(
            caller(),
            "b".into(),
            vec![("x".into(), "1".into()), ("y".into(), "2".into())],
        )
        .await
        .unwrap()
        .unwrap();
    assert!(provider
        .exists(caller(), "b".into(), "x".into())
        .await
        .unwrap()
        .unwrap());
    let many = provider
        .get_many(caller(), "b".into(), vec!["y".into(), "nope".into()])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(many, vec![Some(("y".to_owned(), Bytes::from("2"))), None]);

    let page = provider
        .list_keys(caller(), "b".into(), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(page.keys, ["x", "y"]);
    assert_eq!(page.cursor, None);

    provider
        .delete_many(caller(), "b".into(), vec!["x".into()])
        .await
        .unwrap()
        .unwrap();
    provider
        .delete(caller(), "b".into(), "y".into())
        .await
        .unwrap()
        .unwrap();
    let page = provider
        .list_keys(caller(), "b".into(), None)
        .await
        .unwrap()
        .unwrap();
    assert!(page.keys.is_empty());
}

#[tokio::test]
async fn list_keys_pages_are_bounded_and_cover_every_key() {
    let provider = linked_provider().await;
    let caller = || cx("comp", "default");
    let entries: Vec<(String, Bytes)> = (0..2345)
        .map(|i| (format!("{i:04}"), Bytes::new()))
        .collect();
    provider
        .set_many(caller(), "b".into(), entries.clone())
        .await
        .unwrap()
        .unwrap();

    let mut keys = Vec::new();
    let mut cursor = None;
    loop {
        let page = provider
            .list_keys(caller(), "b".into(), cursor)
            .await
            .unwrap()
            .unwrap();
        assert!(page.keys.len() <= MAX_PAGE_SIZE);
        keys.extend(page.keys);
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let expected: Vec<String> = entries.into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, expected);
}

#[tokio::test]
async fn health_reports_unhealthy_stores() {
    let (provider, _) = provider();
    assert!(provider.check_health().await.healthy, "no stores: healthy");
    provider
        .put_link(LinkKey::new("a", "default"), &config(&[]))
        .await
        .unwrap();
    assert!(provider.check_health().await.healthy);
    provider
        .put_link(LinkKey::new("b", "default"), &config(&[(UNHEALTHY, "yes")]))
        .await
        .unwrap();
    let report = provider.check_health().await;
    assert!(!report.healthy);
    let message = report.message.unwrap();
    assert!(
        message.contains("test") && message.contains("no answer"),
        "{message}"
    );
}

/// Client bindings for the same interfaces, as the host has them.
mod client {
    wit_bindgen_wrpc::generate!({
        world: "wrpc:keyvalue/imports",
        path: "../../wit/provider",
        with: {
            "wrpc:keyvalue/store@0.2.0-draft": generate,
            "wrpc:keyvalue/atomics@0.2.0-draft": generate,
            "wrpc:keyvalue/batch@0.2.0-draft": generate,
        },
    });
}

/// Drives the generated `serve` over a loopback TCP transport with generated client calls:
/// the exports answer under the instance and function names the host invokes.
#[tokio::test]
async fn exports_are_served_over_wrpc() {
    use client::wrpc::keyvalue::{atomics as c_atomics, batch as c_batch, store as c_store};
    use futures::StreamExt as _;
    use wrpc_transport::frame::{AcceptExt as _, Server};

    let provider = linked_provider().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Every connection looks like a call from component "comp" over the default link.
    let listener = listener.map_context(|_| cx("comp", "default"));

    let server = Arc::new(Server::default());
    let invocations = crate::bindings::serve(server.as_ref(), provider.clone())
        .await
        .unwrap();
    let mut instances: Vec<_> = invocations
        .iter()
        .map(|(instance, name, _)| format!("{instance}.{name}"))
        .collect();
    instances.sort();
    assert_eq!(
        instances,
        [
            "wrpc:keyvalue/atomics@0.2.0-draft.increment",
            "wrpc:keyvalue/batch@0.2.0-draft.delete-many",
            "wrpc:keyvalue/batch@0.2.0-draft.get-many",
            "wrpc:keyvalue/batch@0.2.0-draft.set-many",
            "wrpc:keyvalue/store@0.2.0-draft.delete",
            "wrpc:keyvalue/store@0.2.0-draft.exists",
            "wrpc:keyvalue/store@0.2.0-draft.get",
            "wrpc:keyvalue/store@0.2.0-draft.list-keys",
            "wrpc:keyvalue/store@0.2.0-draft.set",
        ]
    );

    let accept = tokio::spawn({
        let server = server.clone();
        async move {
            loop {
                if let Err(err) = server.accept(&listener).await {
                    eprintln!("accept failed: {err}");
                }
            }
        }
    });
    let serve = tokio::spawn(async move {
        let mut all = futures::stream::select_all(invocations.into_iter().map(|(_, _, s)| s));
        while let Some(invocation) = all.next().await {
            tokio::spawn(invocation.expect("invocation accepted"));
        }
    });

    let wrpc = wrpc_transport::frame::tcp::Client::from(addr);
    c_store::set(&wrpc, (), "b", "k", &Bytes::from_static(b"\x00\xffv"))
        .await
        .unwrap()
        .unwrap();
    let value = c_store::get(&wrpc, (), "b", "k").await.unwrap().unwrap();
    assert_eq!(value.as_deref(), Some(&b"\x00\xffv"[..]));
    assert!(c_store::exists(&wrpc, (), "b", "k").await.unwrap().unwrap());
    assert_eq!(
        c_atomics::increment(&wrpc, (), "b", "n", 7)
            .await
            .unwrap()
            .unwrap(),
        7
    );
    let err = c_atomics::increment(&wrpc, (), "b", "k", 1)
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&err, c_store::Error::Other(message) if message.contains("increment failed")),
        "{err:?}"
    );
    let many = c_batch::get_many(&wrpc, (), "b", &["n", "nope"])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(many, vec![Some(("n".to_owned(), Bytes::from("7"))), None]);
    c_batch::set_many(&wrpc, (), "b", &[("m", &Bytes::from("1"))])
        .await
        .unwrap()
        .unwrap();
    let keys = c_store::list_keys(&wrpc, (), "b", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(keys.keys, ["k", "m", "n"]);
    assert_eq!(keys.cursor, None);
    c_batch::delete_many(&wrpc, (), "b", &["k", "m"])
        .await
        .unwrap()
        .unwrap();
    c_store::delete(&wrpc, (), "b", "n").await.unwrap().unwrap();
    let keys = c_store::list_keys(&wrpc, (), "b", None)
        .await
        .unwrap()
        .unwrap();
    assert!(keys.keys.is_empty());

    accept.abort();
    serve.abort();
}

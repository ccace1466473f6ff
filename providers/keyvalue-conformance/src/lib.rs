//! The conformance suite every neongrid key-value backend passes: one set of cases, written
//! once against [`Store`], run against memory, Redis and Postgres alike.
//!
//! A backend's tests run the whole suite with one line, which generates one `#[tokio::test]`
//! per case so that a failure names the case:
//!
//! ```text
//! keyvalue_conformance::suite!(my_target());
//! ```
//!
//! where `my_target()` is a future resolving to a [`Target`] (for a server-backed store it
//! also starts the server and keeps it alive with [`Target::keep_alive`]). The calling crate
//! needs `tokio` (with `macros` and `rt-multi-thread`) as a dev-dependency.
//!
//! The suite holds each backend to its declared [`Capabilities`] in both directions: a
//! backend fails when it claims something it does not do, and also when it visibly does
//! something it does not declare (its keys come back sorted, say, or its data survives a
//! reopen), because an undeclared guarantee is one callers cannot rely on and a declaration
//! that nobody checks drifts.
//!
//! [`Capabilities`]: keyvalue_store::Capabilities

pub mod cases;
mod support;

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use keyvalue_store::{Store, StoreConfig, StoreFactory};

type Reopen = Box<dyn Fn() -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send>> + Send + Sync>;

/// The store under test, plus what the suite needs around it.
///
/// Fields drop in order: the store and any reopened handles go first, the guards kept alive
/// (servers, temporary directories) last, so connections close before their server stops.
pub struct Target {
    store: Arc<dyn Store>,
    reopen: Reopen,
    keep_alive: Vec<Box<dyn Any + Send + Sync>>,
}

impl Target {
    /// A target for `store`. `reopen` must open a second, independent instance from the same
    /// configuration, as a restarted provider process would (new connections, no in-process
    /// state shared with `store`): the suite uses it to check [`Capabilities::persistent`].
    ///
    /// [`Capabilities::persistent`]: keyvalue_store::Capabilities::persistent
    pub fn new<R, Fut>(store: Arc<dyn Store>, reopen: R) -> Self
    where
        R: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Arc<dyn Store>> + Send + 'static,
    {
        Self {
            store,
            reopen: Box::new(move || Box::pin(reopen())),
            keep_alive: Vec::new(),
        }
    }

    /// A target whose store is opened from `config` by a factory `make_factory` builds, and
    /// reopened by a fresh factory from the same configuration. Panics (failing the case)
    /// when the store cannot be opened.
    pub async fn from_factory<F, M>(make_factory: M, config: StoreConfig) -> Self
    where
        F: StoreFactory,
        M: Fn() -> F + Send + Sync + 'static,
    {
        let make_factory = Arc::new(make_factory);
        let config = Arc::new(config);
        let store = open_with(&*make_factory, &config).await;
        Self::new(store, move || {
            let make_factory = make_factory.clone();
            let config = config.clone();
            async move { open_with(&*make_factory, &config).await }
        })
    }

    /// Keeps `guard` (a test server, say) alive as long as this target, dropping it last.
    pub fn keep_alive(mut self, guard: impl Any + Send + Sync) -> Self {
        self.keep_alive.push(Box::new(guard));
        self
    }

    /// The store under test.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// A second, independent instance of the store under test.
    pub async fn reopen(&self) -> Arc<dyn Store> {
        (self.reopen)().await
    }
}

async fn open_with<F: StoreFactory, M: Fn() -> F>(
    make_factory: &M,
    config: &StoreConfig,
) -> Arc<dyn Store> {
    let factory = make_factory();
    match factory.open(config).await {
        Ok(store) => store,
        Err(err) => panic!(
            "the {} factory could not open a store for the conformance suite: {err}",
            factory.backend()
        ),
    }
}

/// Generates one `#[tokio::test]` per conformance case, each running the case against the
/// [`Target`] that `$target` (an expression evaluating to a future of a `Target`) yields.
/// The expression is evaluated once per case, so each case gets its own target.
#[macro_export]
macro_rules! suite {
    ($target:expr) => {
        $crate::__for_each_case!($crate::__conformance_test; $target);
    };
}

/// Calls `$callback!($args; case, case, ...)` with every case name: the one list of cases.
#[doc(hidden)]
#[macro_export]
macro_rules! __for_each_case {
    ($($callback:tt)::+ ; $($args:tt)*) => {
        $($callback)::+! { $($args)*;
            get_set_overwrite_delete,
            empty_value_is_a_value,
            binary_values_round_trip,
            buckets_are_isolated_namespaces,
            bucket_names_never_collide,
            awkward_keys_work_everywhere,
            awkward_bucket_names_work,
            increment_follows_the_shared_semantics,
            increment_rejects_non_numeric_values,
            increment_overflow_is_an_error,
            concurrent_increments_match_declaration,
            list_keys_pages_over_10000_keys,
            list_keys_clamps_limits,
            list_keys_of_an_empty_bucket,
            list_keys_tolerates_stale_cursors,
            batch_get_many_follows_request_order,
            batch_set_many_and_delete_many,
            batch_atomicity_matches_declaration,
            value_size_limit_matches_declaration,
            persistence_matches_declaration,
            concurrent_callers_on_distinct_keys,
            health_reports_reachable,
        }
    };
}

/// One generated test per case.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_test {
    ($target:expr; $($case:ident),* $(,)?) => {
        $(
            // Several worker threads so that races and concurrent readers really interleave.
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let target: $crate::Target = $target.await;
                $crate::cases::$case(&target).await;
            }
        )*
    };
}

/// Names of every case, in suite order.
pub const CASES: &[&str] = {
    macro_rules! names {
        (; $($case:ident),* $(,)?) => {
            &[$(stringify!($case)),*]
        };
    }
    __for_each_case!(names;)
};

#[cfg(test)]
mod tests {
    use super::CASES;

    /// A case written but missing from the list would silently never run.
    #[test]
    fn every_case_function_is_in_the_case_list() {
        let source = include_str!("cases.rs");
        let defined: Vec<&str> = source
            .lines()
            .filter_map(|line| line.strip_prefix("pub async fn "))
            .map(|rest| rest.split('(').next().unwrap_or_default())
            .collect();
        assert_eq!(defined.len(), CASES.len(), "defined: {defined:?}");
        for case in &defined {
            assert!(CASES.contains(case), "case {case} is not in the list");
        }
    }
}

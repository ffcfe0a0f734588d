//! Read results remembered for a few seconds, for pages that many visitors read and few change
//! (a tenant's departments, the marketplace). A miss runs the one read that answers it; a hit
//! returns that read's remembered result, so there is no second copy of any query's logic.
//!
//! Results are grouped by a *scope* (a tenant, or the whole marketplace). A change made through
//! this server calls [`Memo::forget`] for its scope after it committed, which drops the scope's
//! results at once; a per-scope generation keeps a read that such a change overtook from
//! remembering what it read. A change made by another replica or the CLI is seen within [`TTL`].

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{AppError, AppResult};

pub const TTL: Duration = Duration::from_secs(5);
/// Bound on remembered results (all scopes); past it the memory starts over.
const MAX_ENTRIES: usize = 10_000;

pub struct Memo<S, K, V> {
    inner: Mutex<Entries<S, K, V>>,
}

impl<S, K, V> std::fmt::Debug for Memo<S, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memo").finish_non_exhaustive()
    }
}

struct Entries<S, K, V> {
    /// Bumped by every change in a scope.
    generation: HashMap<S, u64>,
    values: HashMap<S, HashMap<K, Remembered<V>>>,
    len: usize,
}

struct Remembered<V> {
    at: Instant,
    generation: u64,
    value: V,
}

impl<S, K, V> Default for Memo<S, K, V> {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Entries {
                generation: HashMap::new(),
                values: HashMap::new(),
                len: 0,
            }),
        }
    }
}

fn poisoned() -> AppError {
    AppError::internal("memo", anyhow::anyhow!("lock poisoned"))
}

impl<S: Eq + Hash + Copy, K: Eq + Hash, V: Clone> Memo<S, K, V> {
    /// The result for `key` in `scope`: remembered, or read by `read` and then remembered unless
    /// the scope changed meanwhile. A failed read is not remembered.
    pub async fn get_or_read<F, Fut>(&self, scope: S, key: K, read: F) -> AppResult<V>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = AppResult<V>>,
    {
        let generation = {
            let entries = self.inner.lock().map_err(|_| poisoned())?;
            let generation = entries.generation.get(&scope).copied().unwrap_or_default();
            if let Some(r) = entries.values.get(&scope).and_then(|v| v.get(&key))
                && r.generation == generation
                && r.at.elapsed() < TTL
            {
                return Ok(r.value.clone());
            }
            generation
        };
        let value = read().await?;
        let mut entries = self.inner.lock().map_err(|_| poisoned())?;
        if entries.generation.get(&scope).copied().unwrap_or_default() == generation {
            if entries.len >= MAX_ENTRIES {
                entries.values.clear();
                entries.len = 0;
            }
            let remembered = Remembered {
                at: Instant::now(),
                generation,
                value: value.clone(),
            };
            if entries
                .values
                .entry(scope)
                .or_default()
                .insert(key, remembered)
                .is_none()
            {
                entries.len += 1;
            }
        }
        Ok(value)
    }

    /// Drops what `scope` remembers; call after a change in it committed.
    pub fn forget(&self, scope: S) -> AppResult<()> {
        let mut entries = self.inner.lock().map_err(|_| poisoned())?;
        *entries.generation.entry(scope).or_default() += 1;
        if let Some(dropped) = entries.values.remove(&scope) {
            entries.len -= dropped.len();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Pages = Memo<u32, &'static str, String>;

    async fn read(memo: &Pages, scope: u32, key: &'static str, value: &str) -> String {
        let value = value.to_owned();
        memo.get_or_read(scope, key, || async { Ok(value) })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_result_is_read_once_then_remembered_until_its_scope_changes() {
        let memo = Pages::default();
        assert_eq!(read(&memo, 1, "page", "first").await, "first");
        assert_eq!(read(&memo, 1, "page", "read again").await, "first");
        assert_eq!(
            read(&memo, 2, "page", "two").await,
            "two",
            "scopes never share"
        );
        assert_eq!(
            read(&memo, 1, "other", "other").await,
            "other",
            "other key, other result"
        );

        memo.forget(1).unwrap();
        assert_eq!(read(&memo, 1, "page", "new").await, "new");
        assert_eq!(read(&memo, 1, "other", "new other").await, "new other");
        assert_eq!(
            read(&memo, 2, "page", "unread").await,
            "two",
            "other scopes stay"
        );
    }

    #[tokio::test]
    async fn a_read_overtaken_by_a_change_is_not_remembered() {
        let memo = Pages::default();
        let stale = memo
            .get_or_read(1, "page", || async {
                // The change commits while this read is under way.
                memo.forget(1).unwrap();
                Ok("before the change".to_owned())
            })
            .await
            .unwrap();
        assert_eq!(stale, "before the change");
        assert_eq!(read(&memo, 1, "page", "after").await, "after");
    }

    #[tokio::test]
    async fn a_failed_read_is_not_remembered() {
        let memo = Pages::default();
        let failed = memo
            .get_or_read(1, "page", || async { Err(AppError::NotFound("page")) })
            .await;
        assert!(failed.is_err());
        assert_eq!(read(&memo, 1, "page", "ok").await, "ok");
    }
}

//! A bounded map of per-key state, for the limiters (the update pace, the login throttle,
//! known clients): at most [`CAPACITY`] keys, the least recently used forgotten first, so no
//! flood of distinct keys (addresses, logins, hosts) grows memory without bound.

use std::hash::Hash;
use std::num::NonZeroUsize;
use std::sync::Mutex;

/// How many keys each limiter remembers.
pub const CAPACITY: usize = 100_000;

/// A bounded map of per-key state.
#[derive(Debug)]
pub struct Bounded<K: Hash + Eq, V> {
    /// Least recently used keys are forgotten first.
    pub entries: Mutex<lru::LruCache<K, V>>,
}

impl<K: Hash + Eq, V> Default for Bounded<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Hash + Eq, V> Bounded<K, V> {
    /// An empty map of [`CAPACITY`] keys.
    pub fn new() -> Self {
        Self {
            entries: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(CAPACITY).expect("non-zero"),
            )),
        }
    }

    /// Runs `read` on the state of `key`, if there is one, without touching its recency.
    pub fn peek<T>(&self, key: &K, read: impl FnOnce(&V) -> T) -> Option<T> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .peek(key)
            .map(read)
    }

    /// Runs `update` on the state of `key`, created with `default` if missing.
    pub fn with<T>(
        &self,
        key: K,
        default: impl FnOnce() -> V,
        update: impl FnOnce(&mut V) -> T,
    ) -> T {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        update(entries.get_or_insert_mut(key, default))
    }
}

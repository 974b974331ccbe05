//! Memos of the reads every update request makes (the API key by hash, a user's domains at a
//! name), so that a router repeating its address costs no SQLite statement at all.
//!
//! An entry is only as good as the moment it was read: each carries the served index's stamp
//! from just before its read (see [`ServedIndex::stamp`](super::served::ServedIndex::stamp)),
//! and is used only while the stamp is unchanged. Any commit by another process (a key revoked
//! or a user disabled with the admin CLI) moves the stamp once the index notices it, which is
//! at the next read; any write of this process that touches a domain moves it at that write.
//! Without an index (the CLI) nothing is memoised.

use std::hash::Hash;
use std::num::NonZeroUsize;
use std::sync::{Mutex, PoisonError};

use super::domains::Domain;
use super::keys::ApiKey;
use super::served::Stamp;
use super::users::User;

/// Entries kept per memo: the routers active in the last few minutes, roughly.
const CAPACITY: NonZeroUsize = NonZeroUsize::new(16_384).expect("not zero");

/// One bounded memo.
#[derive(Debug)]
pub(super) struct Memo<K: Hash + Eq, V> {
    entries: Mutex<lru::LruCache<K, (Stamp, V)>>,
}

impl<K: Hash + Eq, V: Clone> Memo<K, V> {
    fn new() -> Self {
        Self {
            entries: Mutex::new(lru::LruCache::new(CAPACITY)),
        }
    }

    /// The value read under `stamp`, if any.
    pub(super) fn get(&self, key: &K, stamp: Stamp) -> Option<V> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match entries.get(key) {
            Some((read_under, value)) if *read_under == stamp => Some(value.clone()),
            _ => None,
        }
    }

    /// Remembers `value`, read after `stamp` was taken.
    pub(super) fn put(&self, key: K, stamp: Stamp, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.put(key, (stamp, value));
    }
}

/// The store's memos.
#[derive(Debug)]
pub(super) struct Memos {
    /// API keys (with their owner) by key hash; unknown hashes are not kept.
    pub(super) keys: Memo<String, (ApiKey, User)>,
    /// A user's domains at a name, by (user id, name).
    pub(super) owned: Memo<(i64, String), Vec<Domain>>,
}

impl Default for Memos {
    fn default() -> Self {
        Self {
            keys: Memo::new(),
            owned: Memo::new(),
        }
    }
}

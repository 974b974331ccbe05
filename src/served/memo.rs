//! Memos of the reads every update request makes (the API key by hash, a user's domains at a
//! name), so that a router repeating its address costs no SQLite statement at all.
//!
//! An entry is only as good as the moment it was read: each carries the served index's stamp
//! from just before its read (see `ServedIndex::stamp`),
//! and is used only while the stamp is unchanged. Any commit by another process (a key revoked
//! or a user disabled with the admin CLI) moves the stamp once the index notices it, which is
//! at the next read; any write of this process that touches a domain moves it at that write.
//! Without an index (the CLI) nothing is memoised.

use std::hash::Hash;
use std::num::NonZeroUsize;
use std::sync::Mutex;

use super::index::Stamp;
use super::lock;
use crate::store::StoreError;
use crate::store::domains::Domain;
use crate::store::keys::ApiKey;
use crate::store::users::User;

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

    /// The value for `key`: remembered if it was read under `stamp`, else `read` (and then
    /// remembered under `stamp` if `keep` says so). Without a stamp, always `read`.
    pub(super) fn get_or_read(
        &self,
        key: K,
        stamp: Option<Stamp>,
        read: impl FnOnce() -> Result<V, StoreError>,
        keep: impl FnOnce(&V) -> bool,
    ) -> Result<V, StoreError> {
        let Some(stamp) = stamp else {
            return read();
        };
        if let Some((read_under, value)) = lock(&self.entries).get(&key) {
            if *read_under == stamp {
                return Ok(value.clone());
            }
        }
        let value = read()?;
        if keep(&value) {
            lock(&self.entries).put(key, (stamp, value.clone()));
        }
        Ok(value)
    }
}

/// The store's memos.
#[derive(Debug)]
pub(super) struct Memos {
    /// API keys (with their owner) by key hash.
    pub(super) keys: Memo<String, Option<(ApiKey, User)>>,
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

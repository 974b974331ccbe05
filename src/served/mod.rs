//! The store as `serve` uses it: the same SQLite data behind the verbs the protocols need,
//! with what `serve` adds for speed. The protocols (`dyndns`, `backend`) call only these verbs,
//! on typed values; they never see SQL or a connection. The admin CLI uses the plain
//! [`Store`] instead.
//!
//! What is added, none of which can show a client anything older than the last commit:
//! * `index`: the in-memory served index that backend lookups read, kept exact by SQLite's
//!   commit counter (`counter`) and the served-change log (`store::changes`);
//! * `memo`: the update path's reads, remembered under the index's stamp;
//! * `batch`: group commit of concurrent writes on one writer thread;
//! * `seen`: the write-behind for "last seen" times and abuse episodes.

mod account;
mod batch;
mod challenges;
mod counter;
mod dnssec;
mod dnsupdate;
pub mod history;
mod index;
mod memo;
mod seen;
mod state;
mod transfers;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rusqlite::Transaction;

/// The store's failure, as every verb here returns it: the protocols map it to their answer
/// once (`dnserr`, SERVFAIL, a 500 page) and never see SQL.
pub use crate::store::StoreError;
pub use crate::store::keys::{KeyRefusal, MAX_ACTIVE_KEYS, MAX_KEYS_CREATED_PER_HOUR};
/// What a lookup reads, from memory or SQLite alike (see [`Served::lookup`]).
pub use crate::store::view::ServedView;

use self::batch::GroupCommit;
use self::index::{ServedIndex, Stamp};
use self::memo::Memos;
use self::seen::Seen;
pub use self::transfers::ZoneItem;
use crate::store::abuse::Episode;
use crate::store::changes::forget_changes;
use crate::store::domains::{Domain, find_owned_domains};
use crate::store::keys::{ApiKey, find_key_by_hash};
use crate::store::logins::{self, Blocked, LoginBlock};
use crate::store::records::{ServedRecord, zone_records};
use crate::store::updates::{self, Applied, HostOutcome, UpdatePlan};
use crate::store::users::{User, find_user_by_login};
use crate::store::zones::{self, Zone};
use crate::store::{Store, timestamp};

/// The store with the machinery of `serve`. Cheap to clone (everything is shared).
#[derive(Clone, Debug)]
pub struct Served {
    /// The SQLite store.
    store: Store,
    /// The in-memory served records (see `index`); none when the file system has no WAL
    /// index to watch, or for [`Served::without_index`].
    index: Option<Arc<ServedIndex>>,
    /// Concurrent writes commit together (see `batch`).
    group: Arc<GroupCommit>,
    /// "Last seen" times waiting for [`Served::flush_seen`] (see `seen`).
    seen: Arc<Seen>,
    /// The serial each zone's secondaries were notified of, as pdns said (`set_notified`):
    /// what `updated_zones` leaves out while the write is behind.
    notified: Arc<std::sync::Mutex<std::collections::HashMap<i64, u32>>>,
    /// The update path's reads, memoised while the served index is current (see `memo`).
    memos: Arc<Memos>,
}

/// Most change-log rows forgotten per flush (a second): each flush holds the write lock for a
/// few milliseconds at most.
const FORGET_AT_ONCE: usize = 5_000;

/// When [`Served::open_loading`] loads the served index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexLoad {
    /// Before returning (a cold start: nothing is waiting for an answer yet).
    Now,
    /// On a thread of its own; lookups read SQLite until it is loaded (1 s at 1M names).
    Background,
}

/// See [`Served::read_stamp`]: what one request's memoised reads are checked against.
#[derive(Debug, Clone, Copy)]
pub struct ReadStamp(Option<Stamp>);

/// What [`Served::preview`] finds: the outcome per host, and the domains checked.
pub type Preview = (Vec<HostOutcome>, Vec<i64>);

/// An API key with its owner, as authentication reads them.
pub type KeyAndOwner = (ApiKey, User);

impl Served {
    /// `store` with its served index loaded (`serve` does this at start-up). Without a WAL
    /// index to watch, it warns and lookups read SQLite.
    pub fn open(store: Store) -> Result<Self, StoreError> {
        Self::open_loading(store, IndexLoad::Now)
    }

    /// `store` with its served index, loaded now or (`IndexLoad::Background`, a restart under
    /// pdns that must answer at once) on a thread of its own while lookups read SQLite.
    pub fn open_loading(store: Store, load: IndexLoad) -> Result<Self, StoreError> {
        let mut served = Self::without_index(store);
        let opened = match load {
            IndexLoad::Now => ServedIndex::open(served.store.path(), served.store.connect()?),
            IndexLoad::Background => {
                ServedIndex::open_unloaded(served.store.path(), served.store.connect()?)
            }
        };
        match opened {
            Ok(index) => served.index = Some(index),
            Err(StoreError::Create(error)) => {
                tracing::warn!(%error, "no served index: lookups read SQLite");
            }
            Err(error) => return Err(error),
        }
        Ok(served)
    }

    /// `store` without an index: every lookup reads SQLite and nothing is memoised (tests, and
    /// the fallback of [`Served::open`]).
    pub fn without_index(store: Store) -> Self {
        Self {
            store,
            index: None,
            group: Arc::default(),
            seen: Arc::default(),
            notified: Arc::default(),
            memos: Arc::default(),
        }
    }

    /// Runs `lookup` on what lookups read: the served index when it is current, else SQLite.
    pub fn lookup<T>(
        &self,
        lookup: impl FnOnce(&dyn ServedView) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if let Some(state) = self.index.as_ref().and_then(ServedIndex::snapshot) {
            return lookup(&*state);
        }
        // `snapshot` has checked the -shm file.
        self.store.read(|conn| lookup(conn))
    }

    /// The zone whose apex is `name` (lower case, no final dot).
    pub fn zone(&self, name: &str) -> Result<Option<Zone>, StoreError> {
        self.read(|conn| zones::get_zone_by_name(conn, name))
    }

    /// Every zone.
    pub fn zones(&self) -> Result<Vec<Zone>, StoreError> {
        self.read(zones::list_zones)
    }

    /// The zones whose serial secondaries have not been notified of.
    pub fn updated_zones(&self) -> Result<Vec<Zone>, StoreError> {
        let mut zones = self.read(zones::list_updated_zones)?;
        // Notified already, the write still behind: not again.
        let notified = self
            .notified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        zones.retain(|zone| notified.get(&zone.id) != Some(&zone.serial));
        Ok(zones)
    }

    /// The zone at apex `name` with every record it serves, SOA first; `None` for a zone we
    /// do not have. Blocking (a whole zone): async code calls it from a blocking thread.
    pub fn zone_listing(
        &self,
        name: &str,
    ) -> Result<Option<(Zone, Vec<ServedRecord>)>, StoreError> {
        self.read(|conn| {
            let Some(zone) = zones::get_zone_by_name(conn, name)? else {
                return Ok(None);
            };
            let records = zone_records(conn, &zone)?;
            Ok(Some((zone, records)))
        })
    }

    /// Records that secondaries of zone `zone_id` were notified of `serial`; false for an
    /// unknown zone. Answered from memory and written behind (within a second, and at the
    /// stop): pdns's communicator calls it with a timeout, and a write that waits on a slow
    /// disk (an fsync of seconds under load) must not end pdns. A write lost in a crash
    /// costs one NOTIFY again. A read (never behind a write in WAL mode).
    pub fn set_notified(&self, zone_id: i64, serial: u32) -> Result<bool, StoreError> {
        if self
            .store
            .read(|conn| zones::get_zone_by_id(conn, zone_id))?
            .is_none()
        {
            return Ok(false);
        }
        self.notified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(zone_id, serial);
        self.seen.note_notified(zone_id, serial);
        Ok(true)
    }

    /// Lifts every abuse flag and forgets every login block (they live in memory: a host
    /// flagged or a login blocked before this start is not any more); how many flags were
    /// lifted.
    pub async fn lift_limits_of_previous_run(&self) -> Result<usize, StoreError> {
        self.write(|tx| {
            crate::store::logins::clear_all(tx)?;
            crate::store::abuse::lift_all(tx, &timestamp())
        })
        .await
    }

    /// Writes the login blocks that started, for `user blocked` and `user unlock`.
    pub async fn record_login_blocks(&self, blocks: Vec<LoginBlock>) -> Result<(), StoreError> {
        self.write(move |tx| logins::record_blocks(tx, &blocks, std::time::SystemTime::now()))
            .await
    }

    /// The login blocks an admin asked to lift (`user unlock`). A read.
    pub fn login_unlock_requests(&self) -> Result<Vec<Blocked>, StoreError> {
        self.read(logins::unlock_requests)
    }

    /// Forgets the login blocks lifted on request.
    pub async fn forget_login_blocks(&self, lifted: Vec<Blocked>) -> Result<(), StoreError> {
        self.write(move |tx| logins::forget(tx, &lifted)).await
    }

    /// The held names that break the one-name-one-owner rule (a store made before it), each
    /// once with why. Blocking (a read of every domain): async code calls it from a blocking
    /// thread.
    pub fn ownership_conflicts(
        &self,
    ) -> Result<Vec<crate::model::ownership::OwnershipConflict>, StoreError> {
        self.read(crate::store::domains::ownership_conflicts)
    }

    /// A stamp for the memoised reads of one request ([`Served::key`],
    /// [`Served::owned_domains`], [`Served::preview`]), taken before them: one look at
    /// SQLite's commit counter (a system call) per request instead of one per read. The reads
    /// it vouches for are as of the moment it was taken; a change committed later is
    /// concurrent with the request.
    pub fn read_stamp(&self) -> ReadStamp {
        ReadStamp(self.index.as_ref().and_then(ServedIndex::stamp))
    }

    /// The API key with SHA-256 hash `hash` and its owner, memoised (unknown hashes are not
    /// kept).
    pub fn key(&self, hash: &str, stamp: ReadStamp) -> Result<Option<KeyAndOwner>, StoreError> {
        self.memos.keys.get_or_read(
            hash.to_string(),
            stamp.0,
            || self.read(|conn| find_key_by_hash(conn, hash)),
            Option::is_some,
        )
    }

    /// The user with username or email `login`, and the API key with hash `key_hash` (a
    /// password that looks like a key) if there is one: what Basic authentication checks.
    pub fn login(
        &self,
        login: &str,
        key_hash: Option<&str>,
        stamp: ReadStamp,
    ) -> Result<(Option<User>, Option<KeyAndOwner>), StoreError> {
        let user = self.read(|conn| find_user_by_login(conn, login))?;
        let key = match key_hash {
            Some(hash) => self.key(hash, stamp)?,
            None => None,
        };
        Ok((user, key))
    }

    /// The domains of `user_id` at `fqdn`, memoised. For decisions that a write re-checks
    /// inside its transaction.
    pub fn owned_domains(
        &self,
        user_id: i64,
        fqdn: &str,
        stamp: ReadStamp,
    ) -> Result<Vec<Domain>, StoreError> {
        self.memos.owned.get_or_read(
            (user_id, fqdn.to_string()),
            stamp.0,
            || {
                self.store
                    .read(|conn| find_owned_domains(conn, user_id, fqdn))
            },
            |_| true,
        )
    }

    /// What `plan` comes to if it changes nothing, from (memoised) reads and without the
    /// writer: the outcome per host and the domains checked. `None` as soon as one host needs
    /// a change, which only [`Served::apply`] decides.
    pub fn preview(
        &self,
        plan: &UpdatePlan,
        stamp: ReadStamp,
    ) -> Result<Option<Preview>, StoreError> {
        // A prefix may move hosts that follow the ones named: the writer decides those.
        if plan.prefix.is_some() {
            return Ok(None);
        }
        let mut outcomes = Vec::with_capacity(plan.hosts.len());
        let mut checked = Vec::new();
        for host in &plan.hosts {
            let Some(host) = host else {
                outcomes.push(HostOutcome::Skipped);
                continue;
            };
            let owned = self.owned_domains(plan.user_id, host.as_str(), stamp)?;
            let decision = updates::decide(&owned, &plan.addresses, None);
            if !decision.changes.is_empty() {
                return Ok(None);
            }
            checked.extend(decision.unchanged);
            outcomes.push(decision.outcome);
        }
        Ok(Some((outcomes, checked)))
    }

    /// Applies `plan` in one transaction (see [`updates::apply`]), answered after its commit,
    /// when lookups already serve it.
    pub async fn apply(&self, plan: UpdatePlan) -> Result<Applied, StoreError> {
        self.write(move |tx| updates::apply(tx, &plan, &timestamp()))
            .await
    }

    /// Whether this process's view of the database is broken beyond repair while it runs: its
    /// `-shm` file was deleted or replaced (by hand, or a tool), so other processes (the CLI,
    /// `sqlite3`) open another one. Their commits would then go unseen here, and writers on
    /// both sides would no longer exclude each other: only closing every connection (a
    /// restart) joins the others again. `serve` checks this every second.
    pub fn shm_replaced(&self) -> bool {
        self.index
            .as_ref()
            .is_some_and(|index| index.shm_replaced())
    }

    /// Notes that API key `key_id` (if any) was used and `domain_ids` were checked at `now`,
    /// for the next [`Served::flush_seen`].
    pub fn note_seen(&self, key_id: Option<i64>, domain_ids: &[i64], now: &str) {
        self.seen.note(key_id, domain_ids, now);
    }

    /// Whether lookups come from the in-memory index (else they read SQLite): it exists and
    /// has been loaded.
    pub fn has_index(&self) -> bool {
        self.index.as_ref().is_some_and(|index| index.is_loaded())
    }

    /// Whether the writer can commit now: an empty write through the group commit.
    pub async fn check_writable(&self) -> Result<(), StoreError> {
        self.write(|_| Ok(())).await
    }

    /// Notes the state of an abuse episode of `user_id`'s `host`, for the next
    /// [`Served::flush_seen`] (a flood of refused requests costs one row write a second).
    pub fn note_abuse(&self, user_id: i64, host: &str, episode: &Episode) {
        self.seen.note_abuse(user_id, host, episode);
    }

    /// Writes the noted "last seen" times and abuse episodes in one transaction (on failure
    /// they stay noted), and forgets some of the change log the index has applied.
    pub async fn flush_seen(&self) -> Result<(), StoreError> {
        let forget = self
            .index
            .as_ref()
            .map(|index| index.position())
            .filter(|applied| self.seen.to_forget(*applied));
        let pending = self.seen.take();
        if pending.is_none() && forget.is_none() {
            return Ok(());
        }
        let pending = Arc::new(pending.unwrap_or_default());
        let written = Arc::clone(&pending);
        let result = self
            .write(move |tx| {
                written.write(tx)?;
                match forget {
                    Some(applied) => Ok(Some((
                        applied,
                        forget_changes(tx, applied, FORGET_AT_ONCE)?,
                    ))),
                    None => Ok(None),
                }
            })
            .await;
        match result {
            Ok(Some((applied, forgotten))) if forgotten < FORGET_AT_ONCE => {
                self.seen.forgotten(applied);
            }
            Ok(_) => {}
            Err(_) => {
                self.seen
                    .restore(Arc::into_inner(pending).unwrap_or_default());
            }
        }
        result.map(|_| ())
    }

    /// Runs `operation` on a connection of the pool, after the served index has checked the
    /// `-shm` file (see `counter`): a file truncated under the service is put back before
    /// SQLite's memory map touches it, which would end the process (SIGBUS). Every read of
    /// `serve` goes through here, or through a lookup's snapshot, which checks the same.
    fn read<T>(
        &self,
        operation: impl FnOnce(&rusqlite::Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if let Some(index) = &self.index {
            index.check_shm();
        }
        self.store.read(operation)
    }

    /// Runs `operation` in one transaction on the writer thread: writes that arrive together
    /// share one transaction and one commit, each in a savepoint of its own (see `batch`).
    /// Each returns after the commit that holds it, with the served index already showing it.
    async fn write<T: Send + 'static>(
        &self,
        operation: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.group.write(self.committer(), operation).await
    }

    /// How this handle commits.
    fn committer(&self) -> Committer {
        Committer {
            store: self.store.clone(),
            index: self.index.clone(),
        }
    }
}

/// How the writer thread commits: through the index when there is one, so that it stays
/// current.
#[derive(Clone, Debug)]
struct Committer {
    store: Store,
    index: Option<Arc<ServedIndex>>,
}

impl Committer {
    /// Runs `operation` in one `BEGIN IMMEDIATE` transaction and commits it.
    fn write<T>(
        &self,
        operation: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match &self.index {
            Some(index) => self
                .store
                .with_connection(|conn| index.write(conn, operation)),
            None => self.store.write(operation),
        }
    }
}

/// Locks `mutex`, ignoring poisoning: the in-memory state behind mutexes here (queues, maps of
/// times or memos) stays consistent even if a holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

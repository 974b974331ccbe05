//! The served index: what the PowerDNS backend's `lookup` answers, held in memory, and never
//! behind what SQLite has committed.
//!
//! Why: pdns asks three or four lookups per DNS query when its caches are off, and three
//! SQLite statements per lookup cost more than the rest of the remote-backend round trip
//! together (BENCHMARKS.md). So `serve` keeps the zones and every record at a name in a hash
//! map, loaded at start-up, and answers lookups from it. SQLite stays the one source of truth;
//! the index is a read model of it, and only lookups read it.
//!
//! How it stays exact, with writers in this process and in others (the admin CLI, `sqlite3`):
//! * SQLite counts commits in the WAL-index header (see [`ChangeCounter`]). The index
//!   remembers the count it reflects (`validated`); a lookup first compares the two: one
//!   system call.
//! * Every change to what DNS answers is logged by triggers in its own transaction
//!   (`store::changes`), whoever makes it. The index remembers the log position it reflects.
//! * Writes of this process go through [`ServedIndex::write`]: under one mutex, it notes the
//!   count after `BEGIN IMMEDIATE` (no one else can commit until we do), lets the operation
//!   run, reads the log rows it added and the rows they name from inside the transaction (and
//!   deletes those log rows there), commits, and applies that to the map before the caller can
//!   answer anyone. If the count moved by exactly our commit, the map is current again.
//! * Any other commit (the CLI, `sqlite3`) leaves the count ahead of `validated`: lookups then
//!   read SQLite directly, which is always current, while a background thread catches up: it
//!   reads the log after its position and re-reads only the names it lists (milliseconds,
//!   whatever the size of the index). Only what a delta cannot express reloads everything: a
//!   schema change, a log that does not continue (a restored file), or a change of more than
//!   [`MAX_DELTA`] names.
//!
//! If the `-shm` file cannot be read as a WAL index (no WAL on this file system), there is no
//! index and every lookup reads SQLite.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::counter::ChangeCounter;
use super::history::{HistoryLimits, Since as HistorySince};
use super::lock;
use super::state::{Delta, ServedState};
use crate::store::StoreError;
use crate::store::changes::{LogPosition, Since, changes_since, forget_own_changes};
use crate::store::zones::Zone;

/// How long an IXFR waits for the index to catch up with another writer's commit.
pub(super) const CATCH_UP_WAIT: Duration = Duration::from_secs(2);

/// Most changes applied as a delta; more reload everything (a bulk edit by hand).
pub(super) const MAX_DELTA: usize = 10_000;

/// What memoised reads are checked against (see `served::memo`): the number of catch-ups
/// (each may follow any change by another writer), and of this process's writes that changed
/// what is served, both as of a moment the index was current.
pub(super) type Stamp = (u64, u64);

/// No commit count: `expected` when no write of ours is in flight.
const NONE: u64 = u64::MAX;

/// The in-memory read model of the served records; see the module docs.
#[derive(Debug)]
pub(super) struct ServedIndex {
    state: RwLock<ServedState>,
    counter: ChangeCounter,
    /// The commit count `state` reflects.
    validated: AtomicU64,
    /// The count our in-flight commit will produce: the state is not stale for it, since no
    /// one has been answered about that write yet.
    expected: AtomicU64,
    /// The change-log position `state` reflects; written only under `writer`.
    position: AtomicI64,
    /// SQLite's `schema_version` when `state` was loaded; written only under `writer`.
    schema: AtomicI64,
    /// Serialises this process's writes with each other and with catch-ups.
    writer: Mutex<()>,
    /// A catch-up thread is running.
    catching_up: AtomicBool,
    /// Catch-ups so far.
    catch_ups: AtomicU64,
    /// Catch-ups that had to load everything (the first one included).
    full_loads: AtomicU64,
    /// Writes of this process that changed (or may have changed) what is served.
    served_writes: AtomicU64,
    /// A connection of the index's own, for catch-ups. Also keeps the `-shm` file open.
    conn: Mutex<Connection>,
}

impl ServedIndex {
    /// Loads the index from `conn` (a connection to `database`, kept for catch-ups).
    pub(super) fn open(database: &Path, conn: Connection) -> Result<Arc<Self>, StoreError> {
        let index = Self::unloaded(database, conn)?;
        index.catch_up()?;
        Ok(Arc::new(index))
    }

    /// The index, loading on a thread of its own: until it is loaded it is not current, so
    /// lookups read SQLite, and writes commit without it (the load then includes them).
    pub(super) fn open_unloaded(
        database: &Path,
        conn: Connection,
    ) -> Result<Arc<Self>, StoreError> {
        let index = Arc::new(Self::unloaded(database, conn)?);
        index.request_catch_up();
        Ok(index)
    }

    /// Whether the first load is done.
    pub(super) fn is_loaded(&self) -> bool {
        self.catch_ups.load(Ordering::Acquire) > 0
    }

    /// The index with nothing loaded yet.
    fn unloaded(database: &Path, conn: Connection) -> Result<Self, StoreError> {
        // A read makes SQLite create and initialise the -shm file before we read it.
        conn.query_row("SELECT count(*) FROM zones", [], |_| Ok(()))?;
        let counter = ChangeCounter::open(database).map_err(StoreError::Create)?;
        let index = Self {
            state: RwLock::new(ServedState::default()),
            counter,
            validated: AtomicU64::new(NONE),
            expected: AtomicU64::new(NONE),
            position: AtomicI64::new(0),
            schema: AtomicI64::new(-1),
            writer: Mutex::new(()),
            catching_up: AtomicBool::new(false),
            catch_ups: AtomicU64::new(0),
            full_loads: AtomicU64::new(0),
            served_writes: AtomicU64::new(0),
            conn: Mutex::new(conn),
        };
        Ok(index)
    }

    /// Whether the index reflects every commit so far (or all but our own commit in flight,
    /// which no one has been answered about yet). If not, asks for a catch-up.
    fn is_current(self: &Arc<Self>) -> bool {
        // What the index vouched for before the count is read, and again after: a write of
        // ours that completes in between moves `validated` past the count just read, and the
        // count then matches the value from before. (The read is a system call, after which
        // the thread may be preempted for a while; comparing only with the later value made
        // update floods look like outside writers and catch up again and again.)
        let validated_before = self.validated.load(Ordering::Acquire);
        let expected_before = self.expected.load(Ordering::Acquire);
        let Some(count) = self.counter.get() else {
            // The header was unreadable: whatever count comes back once SQLite rebuilds it
            // says nothing about what the index holds. Only a full reload can vouch for it
            // again.
            self.validated.store(NONE, Ordering::Release);
            self.schema.store(-1, Ordering::Release);
            self.request_catch_up();
            return false;
        };
        let current = count == validated_before
            || count == expected_before
            || count == self.validated.load(Ordering::Acquire)
            || count == self.expected.load(Ordering::Acquire);
        if !current {
            self.request_catch_up();
        }
        current
    }

    /// Checks the `-shm` file before a read of SQLite outside a lookup: a truncated file is
    /// put back (and the index stops vouching for itself), as for every lookup.
    pub(super) fn check_shm(self: &Arc<Self>) {
        let _ = self.is_current();
    }

    /// The index's state if it is current, else `None` (read SQLite).
    pub(super) fn snapshot(self: &Arc<Self>) -> Option<RwLockReadGuard<'_, ServedState>> {
        self.is_current()
            .then(|| self.state.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The stamp for memoised reads if the index is current, else `None` (read SQLite). Taken
    /// before the read it vouches for.
    pub(super) fn stamp(self: &Arc<Self>) -> Option<Stamp> {
        self.is_current().then(|| {
            (
                self.catch_ups.load(Ordering::Acquire),
                self.served_writes.load(Ordering::Acquire),
            )
        })
    }

    /// Keeps zone histories for IXFR from now on (see `history`), or stops.
    pub(super) fn keep_history(&self, limits: Option<HistoryLimits>) {
        self.state
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .keep_history(limits);
    }

    /// What IXFR can tell a secondary of zone `zone_id` at `serial`. Blocking: after a commit
    /// by another writer it waits for the catch-up (milliseconds) that brings that commit's
    /// step into the history, at most [`CATCH_UP_WAIT`]; a secondary told of the new serial
    /// must never hear that the older one is current. Still behind after that: the whole zone
    /// (read from SQLite, always current).
    pub(super) fn history_since(
        self: &Arc<Self>,
        zone_id: i64,
        serial: u32,
    ) -> Option<(Zone, HistorySince)> {
        let deadline = Instant::now() + CATCH_UP_WAIT;
        let mut current = self.is_current();
        while !current && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            current = self.is_current();
        }
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let (zone, since) = state.history_since(zone_id, serial)?;
        Some((
            zone,
            if current {
                since
            } else {
                HistorySince::Unknown
            },
        ))
    }

    /// The change-log position the index reflects: the log up to it may be forgotten.
    pub(super) fn position(&self) -> LogPosition {
        LogPosition(self.position.load(Ordering::Acquire))
    }

    /// Whether the `-shm` file was deleted or replaced under this process (checked now, at
    /// most once a second): its SQLite connections then share a WAL index no other process
    /// sees, so they can neither see others' commits nor keep a writer out.
    pub(super) fn shm_replaced(&self) -> bool {
        self.counter.is_replaced()
    }

    /// Starts a background catch-up unless one is running.
    fn request_catch_up(self: &Arc<Self>) {
        if self.catching_up.swap(true, Ordering::AcqRel) {
            return;
        }
        let index = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("served-catch-up".into())
            .spawn(move || {
                if let Err(error) = index.catch_up() {
                    tracing::error!(%error, "served index: catch-up failed; lookups read SQLite");
                    // Do not retry in a tight loop; lookups are answered from SQLite meanwhile.
                    std::thread::sleep(Duration::from_secs(1));
                }
                index.catching_up.store(false, Ordering::Release);
            });
        if let Err(error) = spawned {
            tracing::error!(%error, "served index: cannot start a catch-up thread");
            self.catching_up.store(false, Ordering::Release);
        }
    }

    /// Brings the index up to what SQLite has committed: the logged changes since its
    /// position, or everything when a delta cannot say what changed. Holds off this process's
    /// writes meanwhile (milliseconds for a delta).
    fn catch_up(&self) -> Result<(), StoreError> {
        let _writer = lock(&self.writer);
        let started = Instant::now();
        let conn = lock(&self.conn);
        // Read before the snapshot: whatever commits later shows as a newer count. An
        // unreadable header (a -shm file put back after a truncation) is rebuilt by SQLite at
        // its next read; no count even then, no index: lookups keep reading SQLite.
        let count = match self.counter.get() {
            Some(count) => count,
            None => {
                conn.query_row("SELECT count(*) FROM zones", [], |_| Ok(()))?;
                self.counter.get().ok_or_else(|| {
                    StoreError::Create(std::io::Error::other(
                        "the -shm file holds no readable WAL-index header",
                    ))
                })?
            }
        };
        let tx = conn.unchecked_transaction()?;
        let schema: i64 = tx.query_row("PRAGMA schema_version", [], |row| row.get(0))?;
        let since = if schema == self.schema.load(Ordering::Acquire) {
            changes_since(&tx, self.position(), MAX_DELTA)?
        } else {
            Since::Broken
        };
        let (how, names) = match since {
            Since::Changes { changes, end } => {
                let delta = Delta::read(&tx, &changes)?;
                tx.commit()?;
                self.state
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .apply(delta);
                self.position.store(end.0, Ordering::Release);
                ("delta", changes.len())
            }
            reason @ (Since::TooMany | Since::Broken) => {
                drop(tx);
                let loading = Instant::now();
                let (mut state, end) = ServedState::load(&conn)?;
                let metrics = crate::metrics::metrics();
                metrics.index_loads.inc();
                crate::metrics::observe(&metrics.index_load_duration, loading.elapsed());
                let names = state.name_count();
                let mut current = self.state.write().unwrap_or_else(|e| e.into_inner());
                // Every history starts again: nothing says what the reload changed.
                state.keep_history(current.history_limits());
                *current = state;
                drop(current);
                self.position.store(end.0, Ordering::Release);
                self.schema.store(schema, Ordering::Release);
                self.full_loads.fetch_add(1, Ordering::AcqRel);
                (
                    if reason == Since::TooMany {
                        "reload (many changes)"
                    } else {
                        "reload"
                    },
                    names,
                )
            }
        };
        drop(conn);
        // Before `validated`: whoever sees the index current again sees the new stamp.
        let first = self.catch_ups.fetch_add(1, Ordering::AcqRel) == 0;
        self.validated.store(count, Ordering::Release);
        if first {
            tracing::info!(
                zones = self
                    .state
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .zone_count(),
                names,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "served index loaded"
            );
        } else {
            tracing::debug!(
                how,
                names,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "served index caught up after a change by another writer"
            );
        }
        Ok(())
    }

    /// Runs `operation` in one `BEGIN IMMEDIATE` transaction on `conn`, commits it, and brings
    /// the index up to date before returning.
    pub(super) fn write<T>(
        &self,
        conn: &mut Connection,
        operation: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _writer = lock(&self.writer);
        // Before SQLite touches the -shm file: a truncated one is put back first, and the
        // index stops vouching for itself until a full reload.
        if self.counter.get().is_none() {
            self.validated.store(NONE, Ordering::Release);
            self.schema.store(-1, Ordering::Release);
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // We hold SQLite's write lock: the count cannot move until our commit.
        // No count (the -shm file unreadable): not in step, so no delta; lookups read SQLite.
        let before = self.counter.get();
        let in_step = before.is_some_and(|before| before == self.validated.load(Ordering::Acquire));
        let before = before.unwrap_or(NONE);
        let value = operation(&tx)?;
        // In step, every log row after our position is ours: read back, and taken out again.
        let delta = if in_step {
            let after = self.position();
            match changes_since(&tx, after, MAX_DELTA)? {
                Since::Changes { changes, end } => {
                    let delta = Delta::read(&tx, &changes)?;
                    if end > after {
                        forget_own_changes(&tx, after, end)?;
                    }
                    Some((delta, end))
                }
                Since::TooMany | Since::Broken => None,
            }
        } else {
            None
        };
        let next = u64::from((before as u32).wrapping_add(1));
        if delta.is_some() {
            self.expected.store(next, Ordering::Release);
        }
        let committed = tx.commit();
        let after = self.counter.get().unwrap_or(NONE);
        if delta.as_ref().is_none_or(|(delta, _)| !delta.is_empty()) {
            // Before `validated`, as in `catch_up`.
            self.served_writes.fetch_add(1, Ordering::AcqRel);
        }
        if let (Some((delta, end)), Ok(())) = (delta, &committed) {
            // Our changes are committed and taken out of the log: they go into the map now,
            // whatever else happened. Someone else committing right after us left their rows
            // after `end`; then the count is ahead and the next lookup catches up on those.
            self.state
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .apply(delta);
            self.position.store(end.0, Ordering::Release);
            if after == next {
                self.validated.store(after, Ordering::Release);
            }
        }
        self.expected.store(NONE, Ordering::Release);
        committed?;
        Ok(value)
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::model::DomainName;
    use crate::model::rdata::StaticType;
    use crate::served::Served;
    use crate::store::view::ServedView;
    use crate::store::zones::{SoaTimers, get_zone_by_id, insert_zone};
    use crate::store::{Store, StoreOptions};

    fn name(text: &str) -> DomainName {
        text.parse().unwrap()
    }

    fn add_zone(store: &Store, zone: &str) -> i64 {
        store
            .write(|tx| {
                insert_zone(
                    tx,
                    &name(zone),
                    &[name("ns1.example.net")],
                    None,
                    SoaTimers::default(),
                    "t",
                )
            })
            .unwrap()
    }

    fn zone_known(served: &Served, zone: &str) -> bool {
        served
            .lookup(|view| Ok(view.zone_by_name(zone)?.is_some()))
            .unwrap()
    }

    /// A store with the index, zone `dyn.example` with static records, and a user with two
    /// DDNS domains at one name.
    fn seeded() -> (tempfile::TempDir, Store, Served) {
        use crate::model::{Plan, RecordType};
        use crate::store::domains::insert_domain;
        use crate::store::records::insert_record;
        use crate::store::users::insert_user;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db"), &StoreOptions::default()).unwrap();
        let zone = add_zone(&store, "dyn.example");
        store
            .write(|tx| {
                let user = insert_user(tx, "alice", "a@example.com", "$phc", Plan::Plus, "t")?;
                for record_type in [RecordType::Aaaa, RecordType::A] {
                    insert_domain(tx, &name("home.dyn.example"), user, zone, record_type, "t")?;
                }
                tx.execute(
                    "UPDATE domains SET ip = '2001:db8::1' WHERE record_type = 'AAAA'",
                    [],
                )?;
                tx.execute(
                    "UPDATE domains SET ip = '192.0.2.1' WHERE record_type = 'A'",
                    [],
                )?;
                let zone = get_zone_by_id(tx, zone)?.unwrap();
                for (name, record_type, content) in [
                    ("home.dyn.example", StaticType::Txt, "\"b\""),
                    ("home.dyn.example", StaticType::Mx, "10 mx.example.net."),
                    ("dyn.example", StaticType::Mx, "5 mx.example.net."),
                ] {
                    insert_record(tx, &zone, name, record_type, content, 300, "t")?;
                }
                Ok(())
            })
            .unwrap();
        let served = Served::open(store.clone()).unwrap();
        (dir, store, served)
    }

    #[test]
    fn the_index_answers_exactly_what_sqlite_answers() {
        let (_dir, store, served) = seeded();
        let index = served.index.as_ref().unwrap();
        let state = index.snapshot().expect("current after loading");
        let conn = store.connect().unwrap();
        for asked in [
            "dyn.example",
            "home.dyn.example",
            "nothing.dyn.example",
            "x.home.dyn.example",
        ] {
            let zone = conn.enclosing_zone(asked).unwrap().unwrap();
            assert_eq!(state.enclosing_zone(asked).unwrap().unwrap(), zone);
            assert_eq!(
                state.records_at(&zone, asked).unwrap(),
                conn.records_at(&zone, asked).unwrap(),
                "{asked}"
            );
        }
        let home = state.records_at(&state.zone_by_id(1).unwrap().unwrap(), "home.dyn.example");
        let types: Vec<&str> = home
            .unwrap()
            .into_iter()
            .map(|r| r.record_type.as_str())
            .collect();
        assert_eq!(
            types,
            ["TXT", "MX", "A", "AAAA"],
            "statics as added, then DDNS by type"
        );
        assert!(state.zone_by_name("example").unwrap().is_none());
        assert!(state.enclosing_zone("other.test").unwrap().is_none());
    }

    /// Sets the A address of `home.dyn.example` (of `seeded`) through the daemon's own writer.
    fn set_home_a(
        served: &Served,
        context: &crate::store::audit::ChangeContext,
        ip: std::net::IpAddr,
    ) {
        use crate::store::domains::{change_address, find_owned_domains};
        served
            .committer()
            .write(|tx| {
                let owned = find_owned_domains(tx, 1, "home.dyn.example")?;
                let a = owned
                    .iter()
                    .find(|d| d.record_type.as_str() == "A")
                    .unwrap();
                change_address(tx, a, ip, context, "t")
            })
            .unwrap();
    }

    #[test]
    fn the_daemons_own_writes_keep_the_index_current_without_a_reload() {
        use crate::model::AuthMethod;
        use crate::store::audit::ChangeContext;
        let (_dir, store, served) = seeded();
        let index = served.index.as_ref().unwrap();
        let context = ChangeContext {
            auth_method: AuthMethod::Bearer,
            ..ChangeContext::admin()
        };
        let logged = || -> i64 {
            store
                .read(|conn| {
                    Ok(conn.query_row("SELECT count(*) FROM served_changes", [], |r| r.get(0))?)
                })
                .unwrap()
        };
        let logged_at_start = logged();
        for last in 2..5 {
            let ip: std::net::IpAddr = format!("192.0.2.{last}").parse().unwrap();
            set_home_a(&served, &context, ip);
            let state = index.snapshot().expect("in step: no reload, no SQL");
            let zone = state.zone_by_id(1).unwrap().unwrap();
            let records = state.records_at(&zone, "home.dyn.example").unwrap();
            assert!(records.iter().any(|r| r.content == ip.to_string()));
            let serial: u32 = store
                .read(|conn| Ok(conn.query_row("SELECT serial FROM zones", [], |r| r.get(0))?))
                .unwrap();
            assert_eq!(zone.serial, serial, "the SOA serial follows");
            assert_eq!(logged(), logged_at_start, "own changes leave no log behind");
        }
    }

    #[test]
    fn every_commit_is_a_history_step_that_leads_from_its_serial_to_the_next() {
        use crate::model::AuthMethod;
        use crate::served::history::{HistoryLimits, Since};
        use crate::store::audit::ChangeContext;
        let (_dir, store, served) = seeded();
        served.keep_zone_history(HistoryLimits {
            age: Duration::from_secs(3600),
            records: 1000,
        });
        let index = served.index.as_ref().unwrap();
        let context = ChangeContext {
            auth_method: AuthMethod::Bearer,
            ..ChangeContext::admin()
        };
        let serial = || {
            index
                .snapshot()
                .unwrap()
                .zone_by_id(1)
                .unwrap()
                .unwrap()
                .serial
        };
        let start = serial();
        // Our own write: one step, the old address out, the new in.
        set_home_a(&served, &context, "192.0.2.9".parse().unwrap());
        // An outside writer (the CLI): the catch-up makes its step.
        store
            .read(|conn| {
                conn.execute_batch(
                    "DELETE FROM records WHERE type = 'MX' AND name = 'dyn.example';
                     UPDATE zones SET serial = serial + 1;",
                )?;
                Ok(())
            })
            .unwrap();
        while index.snapshot().is_none() {
            std::thread::sleep(Duration::from_millis(5));
        }
        let now = serial();
        let Some((zone, Since::Steps(steps))) = index.history_since(1, start) else {
            panic!("steps from the first serial");
        };
        assert_eq!(zone.serial, now);
        let shown: Vec<(u32, u32, Vec<String>, Vec<String>)> = steps
            .iter()
            .map(|step| {
                let contents = |records: &[crate::store::records::ServedRecord]| {
                    records.iter().map(|r| r.content.clone()).collect()
                };
                (
                    step.from,
                    step.to,
                    contents(&step.removed),
                    contents(&step.added),
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                (
                    start,
                    start + 1,
                    vec!["192.0.2.1".into()],
                    vec!["192.0.2.9".into()]
                ),
                (start + 1, now, vec!["5 mx.example.net.".into()], vec![]),
            ]
        );
        assert!(matches!(
            index.history_since(1, now),
            Some((_, Since::Current))
        ));
        assert!(matches!(
            index.history_since(1, start - 1),
            Some((_, Since::Unknown))
        ));
        // A reload starts every history again: no step says what it changed.
        index.schema.store(-1, Ordering::Release);
        store
            .read(|conn| Ok(conn.execute("UPDATE zones SET serial = serial + 1", [])?))
            .unwrap();
        while index.snapshot().is_none() {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(matches!(
            index.history_since(1, start),
            Some((_, Since::Unknown))
        ));
        assert!(matches!(
            index.history_since(1, now),
            Some((_, Since::Unknown))
        ));
    }

    #[test]
    fn a_write_around_the_index_is_noticed_and_caught_up() {
        let (_dir, store, served) = seeded();
        let index = served.index.as_ref().unwrap();
        // A statement on a connection of the plain store, as the CLI or `sqlite3` would: the
        // index learns of it from the commit counter and the change log.
        store
            .read(|conn| Ok(conn.execute("DELETE FROM records WHERE type = 'MX'", [])?))
            .unwrap();
        assert!(index.snapshot().is_none(), "stale: lookups read SQLite");
        let fresh = served
            .lookup(|view| {
                let zone = view.zone_by_id(1)?.unwrap();
                view.records_at(&zone, "dyn.example")
            })
            .unwrap();
        assert!(fresh.iter().all(|r| r.record_type.as_str() != "MX"));
        let deadline = Instant::now() + Duration::from_secs(10);
        let state = loop {
            if let Some(state) = index.snapshot() {
                break state;
            }
            assert!(Instant::now() < deadline, "the reload never finished");
            std::thread::yield_now();
        };
        let zone = state.zone_by_id(1).unwrap().unwrap();
        let records = state.records_at(&zone, "dyn.example").unwrap();
        assert!(records.iter().all(|r| r.record_type.as_str() != "MX"));
    }

    /// Waits until the index vouches for itself again.
    fn caught_up(served: &Served) -> RwLockReadGuard<'_, ServedState> {
        let index = served.index.as_ref().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(state) = index.snapshot() {
                return state;
            }
            assert!(Instant::now() < deadline, "the catch-up never finished");
            std::thread::yield_now();
        }
    }

    /// Whether the index answers exactly what SQLite answers, for every name SQLite has and
    /// every name in `gone` (names that were there before).
    fn same_as_sqlite(store: &Store, state: &ServedState, gone: &[&str]) {
        let conn = store.connect().unwrap();
        let mut names: Vec<String> = conn
            .prepare(
                "SELECT name FROM zones UNION SELECT name FROM records
                 UNION SELECT fqdn FROM domains",
            )
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        names.extend(gone.iter().map(|name| name.to_string()));
        for id in 1..=3 {
            assert_eq!(state.zone_by_id(id).unwrap(), conn.zone_by_id(id).unwrap());
        }
        for name in names {
            let zone = conn.enclosing_zone(&name).unwrap();
            assert_eq!(state.enclosing_zone(&name).unwrap(), zone, "{name}");
            if let Some(zone) = zone {
                assert_eq!(
                    state.records_at(&zone, &name).unwrap(),
                    conn.records_at(&zone, &name).unwrap(),
                    "{name}"
                );
                // SQLite makes the chain anew for each call: not for every bulk name.
                if !name.starts_with("bulk") {
                    assert_eq!(
                        state.nsec_neighbours(&zone, &name).unwrap(),
                        conn.nsec_neighbours(&zone, &name).unwrap(),
                        "NSEC neighbours of {name}"
                    );
                }
                // The apex always exists: only names below it can be empty non-terminals.
                let own = (name != zone.name).then_some(name.as_str());
                for above in own
                    .into_iter()
                    .chain(crate::model::names_between(&name, &zone.name))
                {
                    assert_eq!(
                        state.has_names_below(&zone, above).unwrap(),
                        conn.has_names_below(&zone, above).unwrap(),
                        "below {above}"
                    );
                }
            }
        }
    }

    #[test]
    fn outside_changes_are_applied_as_deltas_unless_the_schema_changes() {
        let (_dir, store, served) = seeded();
        let index = served.index.as_ref().unwrap();
        let loads = || index.full_loads.load(Ordering::Acquire);
        assert_eq!(loads(), 1, "the start");
        // What the CLI or `sqlite3` may do, each in a commit of its own.
        for statement in [
            "UPDATE users SET plan = 'free'",
            "DELETE FROM records WHERE name = 'dyn.example'",
            "UPDATE domains SET ip = '192.0.2.77' WHERE record_type = 'A'",
            "INSERT INTO records (zone_id, name, type, content, ttl, created_at)
             VALUES (1, 'x.deep.dyn.example', 'TXT', '\"e\"', 60, 't'),
                    (1, 'y.x.deep.dyn.example', 'TXT', '\"e\"', 60, 't')",
            "DELETE FROM records WHERE name = 'x.deep.dyn.example'",
            "DELETE FROM records WHERE name = 'y.x.deep.dyn.example'",
            "INSERT INTO records (zone_id, name, type, content, ttl, created_at)
             VALUES (1, 'ns.sub.dyn.example', 'A', '192.0.2.9', 60, 't')",
            "INSERT INTO records (zone_id, name, type, content, ttl, created_at)
             VALUES (1, 'sub.dyn.example', 'NS', 'ns.sub.dyn.example.', 60, 't')",
            "INSERT INTO records (zone_id, name, type, content, ttl, created_at)
             VALUES (1, 'a.b.sub.dyn.example', 'A', '192.0.2.9', 60, 't')",
            "DELETE FROM records WHERE name = 'sub.dyn.example'",
            "DELETE FROM records WHERE name LIKE '%sub.dyn.example'",
            "INSERT INTO zones (name, nameservers, hostmaster, serial, created_at, updated_at)
             VALUES ('other.test', '[\"ns1.other.test\"]', 'h.other.test', 7, 't', 't')",
            "INSERT INTO records (zone_id, name, type, content, ttl, created_at)
             VALUES (2, 'www.other.test', 'A', '198.51.100.1', 60, 't')",
            "UPDATE zones SET serial = 8 WHERE name = 'other.test'",
            "DELETE FROM domains WHERE record_type = 'AAAA'",
            "DELETE FROM records WHERE zone_id = 2",
            "DELETE FROM zones WHERE name = 'other.test'",
        ] {
            store.read(|conn| Ok(conn.execute(statement, [])?)).unwrap();
            let state = caught_up(&served);
            same_as_sqlite(
                &store,
                &state,
                &[
                    "other.test",
                    "www.other.test",
                    "x.deep.dyn.example",
                    "y.x.deep.dyn.example",
                    "ns.sub.dyn.example",
                    "a.b.sub.dyn.example",
                    "b.sub.dyn.example",
                    "sub.dyn.example",
                ],
            );
        }
        assert_eq!(loads(), 1, "deltas only");
        // A schema change is not a delta.
        store
            .read(|conn| Ok(conn.execute("CREATE INDEX extra ON records (ttl)", [])?))
            .unwrap();
        same_as_sqlite(&store, &caught_up(&served), &[]);
        assert_eq!(loads(), 2);
        // Nor is a log that does not continue (changes deleted before they were applied).
        store
            .read(|conn| {
                Ok(conn.execute_batch(
                    "BEGIN; UPDATE zones SET serial = serial + 1; DELETE FROM served_changes; COMMIT",
                )?)
            })
            .unwrap();
        same_as_sqlite(&store, &caught_up(&served), &[]);
        assert_eq!(loads(), 3);
        // A bulk edit by hand, more names than a delta takes: everything is read again.
        let bulk = MAX_DELTA + 1;
        store
            .read(|conn| {
                Ok(conn.execute(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
                     INSERT INTO records (zone_id, name, type, content, ttl, created_at)
                     SELECT 1, 'bulk' || i || '.dyn.example', 'A', '198.51.100.1', 60, 't' FROM n",
                    [i64::try_from(bulk).unwrap()],
                )?)
            })
            .unwrap();
        let state = caught_up(&served);
        assert_eq!(loads(), 4, "too many changes for a delta");
        let zone = state.zone_by_id(1).unwrap().unwrap();
        for name in ["bulk1.dyn.example", &format!("bulk{bulk}.dyn.example")] {
            assert_eq!(state.records_at(&zone, name).unwrap().len(), 1, "{name}");
        }
        drop(state);
        same_as_sqlite(&store, &caught_up(&served), &[]);
        // Those log rows are forgotten a bounded batch at a time, and the log still continues.
        let left = |store: &Store| -> i64 {
            store
                .read(|conn| {
                    Ok(conn.query_row("SELECT count(*) FROM served_changes", [], |r| r.get(0))?)
                })
                .unwrap()
        };
        let before = left(&store);
        let forgotten = store
            .write(|tx| crate::store::changes::forget_changes(tx, index.position(), 5_000))
            .unwrap();
        assert_eq!(forgotten, 5_000);
        assert_eq!(left(&store), before - 5_000);
        store
            .read(|conn| Ok(conn.execute("UPDATE zones SET serial = serial + 1", [])?))
            .unwrap();
        same_as_sqlite(&store, &caught_up(&served), &[]);
        assert_eq!(loads(), 4, "a delta again after the forgetting");
    }

    #[test]
    fn another_writers_commit_is_seen_by_the_next_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let served = Served::open(Store::open(&path, &StoreOptions::default()).unwrap()).unwrap();
        assert!(served.index.is_some());
        let cli = Store::open(&path, &StoreOptions::default()).unwrap();
        add_zone(&cli, "a.example");
        assert!(zone_known(&served, "a.example"));
    }
}

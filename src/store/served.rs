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
//! * SQLite counts commits in the WAL-index header (`iChange`, offset 8 of the `-shm` file,
//!   documented in <https://sqlite.org/walformat.html>, written before a commit returns). The
//!   index reads that word (`pread`, never a mapping a truncated file could turn into SIGBUS)
//!   and remembers the count it reflects (`validated`). A lookup first compares the two: one
//!   system call.
//! * Writes of this process go through `ServedIndex::write`: under one mutex, it notes the
//!   count after `BEGIN IMMEDIATE` (no one else can commit until we do), lets the operation
//!   run, reads back from inside the transaction the rows it touched (an SQLite update hook
//!   names them), commits, and applies that to the map before the caller can answer anyone.
//!   If the count moved by exactly our commit, the map is current again.
//! * Any other commit (the CLI, a hand edit, a write that bypassed this path) leaves the count
//!   ahead of `validated`: lookups then read SQLite directly, which is always current, while a
//!   background thread reloads the whole index; once it is swapped in, lookups use it again.
//!
//! If the `-shm` file cannot be read as a WAL index (no WAL on this file system), there is no
//! index and every lookup reads SQLite.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use rusqlite::hooks::Action;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::records::{
    RecordSource, ServedRecord, dynamic_from_row, records_at, static_from_row, stored_records_at,
};
use super::zones::{
    Zone, find_enclosing_zone, get_zone_by_id, get_zone_by_name, list_zones, nearest_suffix,
};
use super::{StoreError, lock};
use crate::model::rdata::StaticType;

/// What a lookup reads: zones and the records at a name. Implemented by a SQLite connection
/// (always current) and by the in-memory [`ServedState`].
pub trait ServedView {
    /// The zone with row id `id`.
    fn zone_by_id(&self, id: i64) -> Result<Option<Cow<'_, Zone>>, StoreError>;
    /// The zone whose apex is exactly `name` (lower case, no final dot).
    fn zone_by_name(&self, name: &str) -> Result<Option<Cow<'_, Zone>>, StoreError>;
    /// The most specific zone `name` lies in.
    fn enclosing_zone(&self, name: &str) -> Result<Option<Cow<'_, Zone>>, StoreError>;
    /// Every record at `name` in `zone`, as [`records_at`] orders them.
    fn records_at(&self, zone: &Zone, name: &str) -> Result<Vec<ServedRecord>, StoreError>;
}

impl ServedView for Connection {
    fn zone_by_id(&self, id: i64) -> Result<Option<Cow<'_, Zone>>, StoreError> {
        Ok(get_zone_by_id(self, id)?.map(Cow::Owned))
    }

    fn zone_by_name(&self, name: &str) -> Result<Option<Cow<'_, Zone>>, StoreError> {
        Ok(get_zone_by_name(self, name)?.map(Cow::Owned))
    }

    fn enclosing_zone(&self, name: &str) -> Result<Option<Cow<'_, Zone>>, StoreError> {
        Ok(find_enclosing_zone(self, name)?.map(Cow::Owned))
    }

    fn records_at(&self, zone: &Zone, name: &str) -> Result<Vec<ServedRecord>, StoreError> {
        records_at(self, zone, name)
    }
}

/// A record type: the known ones take no allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Known(StaticType),
    Other(Box<str>),
}

impl Kind {
    fn as_str(&self) -> &str {
        match self {
            Self::Known(known) => known.as_str(),
            Self::Other(other) => other,
        }
    }
}

/// Record content: addresses inline (most of the index), anything else as text.
#[derive(Debug, Clone)]
enum Content {
    Ip(IpAddr),
    Text(Box<str>),
}

/// One record in the index; its owner name is the map key. Kept small: a million names are
/// a million of these.
#[derive(Debug, Clone)]
struct Entry {
    record_type: Kind,
    content: Content,
    /// TTL in seconds.
    ttl: u32,
    /// Static record or DDNS address.
    source: RecordSource,
}

impl Entry {
    fn from_record(record: ServedRecord) -> Self {
        let record_type = match record.record_type.parse::<StaticType>() {
            Ok(known) => Kind::Known(known),
            Err(_) => Kind::Other(record.record_type.into_boxed_str()),
        };
        // Inline only when the text comes back exactly as stored.
        let content = match record.content.parse::<IpAddr>() {
            Ok(ip) if ip.to_string() == record.content => Content::Ip(ip),
            _ => Content::Text(record.content.into_boxed_str()),
        };
        Self {
            record_type,
            content,
            ttl: record.ttl,
            source: record.source,
        }
    }

    fn to_record(&self, name: &str) -> ServedRecord {
        ServedRecord {
            name: name.to_string(),
            record_type: self.record_type.as_str().to_string(),
            content: match &self.content {
                Content::Ip(ip) => ip.to_string(),
                Content::Text(text) => text.to_string(),
            },
            ttl: self.ttl,
            source: self.source,
        }
    }
}

/// One zone in the index: its row and the records below it.
#[derive(Debug)]
struct ZoneEntry {
    zone: Zone,
    names: HashMap<Box<str>, Vec<Entry>>,
}

/// The index's content: every zone and every stored record, by name.
#[derive(Debug, Default)]
pub struct ServedState {
    /// Zones by row id.
    zones: HashMap<i64, ZoneEntry>,
    /// Zone row ids by apex name.
    ids: HashMap<String, i64>,
}

impl ServedState {
    /// Reads everything in one read transaction of `conn`.
    ///
    /// Built in place, in the final maps, with one-element vectors for the usual one record
    /// per name: building twice or letting vectors grow would double the peak at a million
    /// names, and the allocator keeps the peak.
    fn load(conn: &Connection) -> Result<Self, StoreError> {
        let tx = conn.unchecked_transaction()?;
        let mut state = Self::default();
        for zone in list_zones(&tx)? {
            state.ids.insert(zone.name.clone(), zone.id);
            state.zones.insert(
                zone.id,
                ZoneEntry {
                    zone,
                    names: HashMap::new(),
                },
            );
        }
        let mut counts: HashMap<i64, i64> = HashMap::new();
        {
            let mut per_zone =
                tx.prepare("SELECT zone_id, count(*) FROM domains GROUP BY zone_id")?;
            let mut rows = per_zone.query([])?;
            while let Some(row) = rows.next()? {
                counts.insert(row.get(0)?, row.get(1)?);
            }
        }
        for (zone_id, entry) in &mut state.zones {
            let count = counts.get(zone_id).copied().unwrap_or(0);
            entry.names.reserve(usize::try_from(count).unwrap_or(0));
        }
        let mut add = |zone_id: i64, mut record: ServedRecord| {
            let Some(zone) = state.zones.get_mut(&zone_id) else {
                return;
            };
            let name = std::mem::take(&mut record.name);
            let entry = Entry::from_record(record);
            match zone.names.get_mut(name.as_str()) {
                Some(entries) => entries.push(entry),
                None => {
                    // Exactly one slot: the usual one record per name.
                    zone.names.insert(name.into_boxed_str(), vec![entry]);
                }
            }
        };
        {
            let mut statics =
                tx.prepare("SELECT name, type, content, ttl, zone_id FROM records ORDER BY id")?;
            let mut rows = statics.query([])?;
            while let Some(row) = rows.next()? {
                add(row.get(4)?, static_from_row(row)?);
            }
        }
        {
            let mut dynamic = tx.prepare(
                "SELECT d.fqdn, d.record_type, d.ip, u.plan, d.zone_id
                 FROM domains d JOIN users u ON u.id = d.user_id WHERE d.ip IS NOT NULL",
            )?;
            let mut rows = dynamic.query([])?;
            while let Some(row) = rows.next()? {
                add(row.get(4)?, dynamic_from_row(row)?);
            }
        }
        tx.commit()?;
        for zone in state.zones.values_mut() {
            for entries in zone.names.values_mut().filter(|entries| entries.len() > 1) {
                // As records_at orders them: statics by id (loaded so), then DDNS by type.
                entries.sort_by(|a, b| {
                    fn key(e: &Entry) -> (u8, &str) {
                        match e.source {
                            RecordSource::Dynamic => (1, e.record_type.as_str()),
                            _ => (0, ""),
                        }
                    }
                    key(a).cmp(&key(b))
                });
                entries.shrink_to_fit();
            }
        }
        Ok(state)
    }

    /// How many names hold records, over all zones.
    fn name_count(&self) -> usize {
        self.zones.values().map(|zone| zone.names.len()).sum()
    }

    /// Applies what a write of this process changed.
    fn apply(&mut self, delta: Delta) {
        for zone in delta.zones {
            if let Some(entry) = self.zones.get_mut(&zone.id) {
                entry.zone = zone;
            }
        }
        for (zone_id, name, records) in delta.names {
            let Some(entry) = self.zones.get_mut(&zone_id) else {
                continue;
            };
            if records.is_empty() {
                entry.names.remove(name.as_str());
            } else {
                let entries = records.into_iter().map(Entry::from_record).collect();
                entry.names.insert(name.into_boxed_str(), entries);
            }
        }
    }
}

impl ServedView for ServedState {
    fn zone_by_id(&self, id: i64) -> Result<Option<Cow<'_, Zone>>, StoreError> {
        Ok(self.zones.get(&id).map(|entry| Cow::Borrowed(&entry.zone)))
    }

    fn zone_by_name(&self, name: &str) -> Result<Option<Cow<'_, Zone>>, StoreError> {
        Ok(self.ids.get(name).and_then(|id| self.zone_by_id(*id).ok()?))
    }

    fn enclosing_zone(&self, name: &str) -> Result<Option<Cow<'_, Zone>>, StoreError> {
        nearest_suffix(name, |suffix| self.zone_by_name(suffix))
    }

    fn records_at(&self, zone: &Zone, name: &str) -> Result<Vec<ServedRecord>, StoreError> {
        let mut records = if name == zone.name {
            zone.apex_records()
        } else {
            Vec::new()
        };
        if let Some(entries) = self
            .zones
            .get(&zone.id)
            .and_then(|entry| entry.names.get(name))
        {
            records.extend(entries.iter().map(|entry| entry.to_record(name)));
        }
        Ok(records)
    }
}

/// A row changed by the current write, as SQLite's update hook reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Touch {
    /// A `domains` row inserted or updated: the records at its name may have changed.
    Domain(i64),
    /// A `zones` row updated: its SOA (serial) may have changed.
    Zone(i64),
    /// A row of a table lookups never read (API keys, the audit trail).
    Unserved,
    /// Anything else (a deletion, a static record, a user's plan): reload everything.
    Other,
}

impl Touch {
    fn of(action: Action, table: &str, rowid: i64) -> Self {
        let changed = matches!(action, Action::SQLITE_INSERT | Action::SQLITE_UPDATE);
        match table {
            "api_keys" | "domain_updates" | "abuse_episodes" => Self::Unserved,
            "domains" if changed => Self::Domain(rowid),
            "zones" if action == Action::SQLITE_UPDATE => Self::Zone(rowid),
            _ => Self::Other,
        }
    }
}

/// The rows changed by the write in progress, filled by the update hook of every pooled
/// connection while an index is attached. Writes are serialised by [`ServedIndex::write`], so
/// one list serves all connections.
#[derive(Debug, Default)]
pub(super) struct Touches {
    enabled: AtomicBool,
    list: Mutex<Vec<Touch>>,
}

impl Touches {
    /// Installs the hook on `conn`.
    pub(super) fn watch(self: &Arc<Self>, conn: &Connection) -> rusqlite::Result<()> {
        let touches = Arc::clone(self);
        conn.update_hook(Some(
            move |action: Action, _db: &str, table: &str, rowid: i64| {
                if touches.enabled.load(Ordering::Relaxed) {
                    lock(&touches.list).push(Touch::of(action, table, rowid));
                }
            },
        ))
    }

    fn take(&self) -> Vec<Touch> {
        std::mem::take(&mut *lock(&self.list))
    }
}

/// What a write changed, read back inside its transaction.
#[derive(Debug, Default)]
struct Delta {
    zones: Vec<Zone>,
    names: Vec<(i64, String, Vec<ServedRecord>)>,
}

impl Delta {
    /// Reads the current rows behind `touches`; `None` when only a full reload will do.
    fn read(tx: &Transaction<'_>, touches: &[Touch]) -> Result<Option<Self>, StoreError> {
        let mut delta = Self::default();
        let mut zone_ids = Vec::new();
        let mut names: Vec<(i64, String)> = Vec::new();
        for touch in touches {
            match *touch {
                Touch::Unserved => {}
                Touch::Other => return Ok(None),
                Touch::Zone(id) => zone_ids.push(id),
                Touch::Domain(id) => {
                    let row = tx
                        .prepare_cached("SELECT zone_id, fqdn FROM domains WHERE id = ?1")?
                        .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))
                        .optional()?;
                    match row {
                        Some(name) => names.push(name),
                        None => return Ok(None),
                    }
                }
            }
        }
        zone_ids.sort_unstable();
        zone_ids.dedup();
        for id in zone_ids {
            match get_zone_by_id(tx, id)? {
                Some(zone) => delta.zones.push(zone),
                None => return Ok(None),
            }
        }
        names.sort_unstable();
        names.dedup();
        for (zone_id, name) in names {
            let records = stored_records_at(tx, zone_id, &name)?;
            delta.names.push((zone_id, name, records));
        }
        Ok(Some(delta))
    }
}

/// The commit counter SQLite keeps in the WAL-index header, read from the `-shm` file with
/// `pread`. Not through a memory map: a mapped file truncated under us (by hand, or by a
/// tool) turns the next read into SIGBUS and ends the process; a `pread` of a short file just
/// comes back short. Any read that does not find a WAL-index header of the known version
/// counts as "not current": lookups read SQLite, and the index reloads once the header is back.
///
/// SQLite itself maps the `-shm` file, so a truncated one would crash it on its next access.
/// A short read therefore also puts the file back to its length (zeros: an invalid header,
/// from which SQLite rebuilds the WAL index itself). Every lookup and every write of `serve`
/// reads the counter before it uses SQLite, and the length is also checked once a second, so
/// the window in which SQLite could touch a truncated file is as short as it can be made from
/// outside SQLite.
#[derive(Debug)]
struct ChangeCounter {
    /// Never closed: closing any descriptor of a file drops every POSIX lock this process holds
    /// on it, SQLite's included. Without SQLite's lock on the `-shm` file, the next process to
    /// open the database would re-initialise it under our connections (counter back to 0).
    file: std::mem::ManuallyDrop<std::fs::File>,
    /// Where the file is, to notice it being deleted or replaced.
    path: PathBuf,
    /// The longest the file has been seen: what a truncated file is put back to.
    len: AtomicU64,
    /// When the path was last compared with the open file (seconds since `opened`).
    checked_at: AtomicU64,
    /// When the counter was opened.
    opened: Instant,
    /// The path no longer names the open file: the counter cannot be trusted again.
    replaced: AtomicBool,
}

impl ChangeCounter {
    /// The first bytes of the WAL-index header: version 3007000 (the only one SQLite has used).
    const VERSION: u32 = 3_007_000;
    /// Offset of `iChange` in the first copy of the header, which SQLite writes last.
    const CHANGE_OFFSET: usize = 8;
    /// How often (seconds) the path is compared with the open file.
    const CHECK_EVERY_SECS: u64 = 1;

    fn open(database: &Path) -> std::io::Result<Self> {
        let mut shm = database.as_os_str().to_owned();
        shm.push("-shm");
        let path = PathBuf::from(shm);
        // Read-write, to put back the length of a file truncated under SQLite.
        let file = std::mem::ManuallyDrop::new(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)?,
        );
        let len = file.metadata()?.len();
        let counter = Self {
            file,
            path,
            len: AtomicU64::new(len),
            checked_at: AtomicU64::new(0),
            opened: Instant::now(),
            replaced: AtomicBool::new(false),
        };
        if counter.get().is_none() {
            return Err(std::io::Error::other("the -shm file holds no WAL index"));
        }
        Ok(counter)
    }

    /// SQLite's commit count, or None when the file holds no readable WAL-index header (or is
    /// no longer the file SQLite uses).
    fn get(&self) -> Option<u64> {
        use std::os::unix::fs::FileExt as _;
        self.check_path();
        if self.replaced.load(Ordering::Relaxed) {
            return None;
        }
        let mut header = [0_u8; Self::CHANGE_OFFSET + 4];
        if self.file.read_exact_at(&mut header, 0).is_err() {
            self.restore_length();
            return None;
        }
        let word = |offset: usize| {
            u32::from_ne_bytes(header[offset..offset + 4].try_into().expect("four bytes"))
        };
        (word(0) == Self::VERSION).then(|| u64::from(word(Self::CHANGE_OFFSET)))
    }

    /// Puts a truncated file back to the longest length seen (see the type's docs).
    fn restore_length(&self) {
        let len = self.len.load(Ordering::Relaxed);
        match self.file.metadata() {
            Ok(metadata) if metadata.len() < len => {
                let restored = self.file.set_len(len);
                tracing::error!(
                    path = %self.path.display(),
                    from = metadata.len(),
                    to = len,
                    ok = restored.is_ok(),
                    "the -shm file was truncated while the service ran; its length is put back \
                     (SQLite rebuilds its contents) and lookups read SQLite until the index reloads"
                );
            }
            _ => {}
        }
    }

    /// At most once a second: whether the path still names the open file. A `-shm` file
    /// deleted or replaced under a running SQLite is a broken database set-up; the index then
    /// stops trusting the counter for good, and lookups read SQLite.
    fn check_path(&self) {
        use std::os::unix::fs::MetadataExt as _;
        let now = self.opened.elapsed().as_secs();
        let last = self.checked_at.load(Ordering::Relaxed);
        if now < last + Self::CHECK_EVERY_SECS
            || self
                .checked_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let same = match (self.file.metadata(), std::fs::metadata(&self.path)) {
            (Ok(open), Ok(named)) => {
                if open.len() < self.len.load(Ordering::Relaxed) {
                    self.restore_length();
                } else {
                    self.len.fetch_max(open.len(), Ordering::Relaxed);
                }
                open.dev() == named.dev() && open.ino() == named.ino()
            }
            _ => false,
        };
        if !same && !self.replaced.swap(true, Ordering::Relaxed) {
            tracing::error!(
                path = %self.path.display(),
                "the -shm file was deleted or replaced while the service ran; the served index \
                 is off and lookups read SQLite until the restart `serve` now does"
            );
        }
    }
}

/// What memoised reads are checked against (see `store::memo`): the number of reloads, and of
/// this process's writes that touched a domain, both as of a moment the index was current.
pub(super) type Stamp = (u64, u64);

/// No commit count: `expected` when no write of ours is in flight.
const NONE: u64 = u64::MAX;

/// The in-memory read model of the served records; see the module docs.
#[derive(Debug)]
pub struct ServedIndex {
    state: RwLock<ServedState>,
    counter: ChangeCounter,
    /// The commit count `state` reflects.
    validated: AtomicU64,
    /// The count our in-flight commit will produce: the state is not stale for it, since no
    /// one has been answered about that write yet.
    expected: AtomicU64,
    /// Serialises this process's writes with each other and with reloads.
    writer: Mutex<()>,
    /// A reload thread is running.
    reloading: AtomicBool,
    /// Reloads so far: each may follow any change by another writer.
    reloads: AtomicU64,
    /// Writes of this process that touched a `domains` row.
    domain_writes: AtomicU64,
    /// The rows each write touches.
    touches: Arc<Touches>,
    /// A connection of the index's own, for reloads. Also keeps the `-shm` file open, and with
    /// it the mapping's meaning.
    conn: Mutex<Connection>,
}

impl ServedIndex {
    /// Loads the index from `conn` (a connection to `database`, kept for reloads).
    pub(super) fn open(
        database: &Path,
        conn: Connection,
        touches: Arc<Touches>,
    ) -> Result<Self, StoreError> {
        // A read makes SQLite create and initialise the -shm file before we map it.
        conn.query_row("SELECT count(*) FROM zones", [], |_| Ok(()))?;
        let counter = ChangeCounter::open(database).map_err(StoreError::Create)?;
        let index = Self {
            state: RwLock::new(ServedState::default()),
            counter,
            validated: AtomicU64::new(NONE),
            expected: AtomicU64::new(NONE),
            writer: Mutex::new(()),
            reloading: AtomicBool::new(false),
            reloads: AtomicU64::new(0),
            domain_writes: AtomicU64::new(0),
            touches,
            conn: Mutex::new(conn),
        };
        // Hooks first: a write that starts after the load must be recorded.
        index.touches.enabled.store(true, Ordering::Relaxed);
        let started = Instant::now();
        index.reload()?;
        let state = index.state.read().unwrap_or_else(PoisonError::into_inner);
        tracing::info!(
            zones = state.zones.len(),
            names = state.name_count(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "served index loaded"
        );
        drop(state);
        Ok(index)
    }

    /// Whether the index reflects every commit so far (or all but our own commit in flight,
    /// which no one has been answered about yet). If not, asks for a reload.
    fn is_current(self: &Arc<Self>) -> bool {
        // What the index vouched for before the count is read, and again after: a write of
        // ours that completes in between moves `validated` past the count just read, and the
        // count then matches the value from before. (The read is a system call, after which
        // the thread may be preempted for a while; comparing only with the later value made
        // update floods look like outside writers and reload the index again and again.)
        let validated_before = self.validated.load(Ordering::Acquire);
        let expected_before = self.expected.load(Ordering::Acquire);
        let Some(count) = self.counter.get() else {
            // The header was unreadable: whatever count comes back once SQLite rebuilds it
            // says nothing about what the index holds. Only a reload can vouch for it again.
            self.validated.store(NONE, Ordering::Release);
            self.request_reload();
            return false;
        };
        let current = count == validated_before
            || count == expected_before
            || count == self.validated.load(Ordering::Acquire)
            || count == self.expected.load(Ordering::Acquire);
        if !current {
            self.request_reload();
        }
        current
    }

    /// The index's state if it is current, else `None` (read SQLite).
    pub(super) fn snapshot(self: &Arc<Self>) -> Option<RwLockReadGuard<'_, ServedState>> {
        self.is_current()
            .then(|| self.state.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The stamp for memoised reads if the index is current, else `None` (read SQLite). Taken
    /// before the read it vouches for.
    /// Whether the `-shm` file was deleted or replaced under this process (checked now, at
    /// most once a second): its SQLite connections then share a WAL index no other process
    /// sees, so they can neither see others' commits nor keep a writer out.
    pub(super) fn shm_replaced(&self) -> bool {
        self.counter.check_path();
        self.counter.replaced.load(Ordering::Relaxed)
    }

    pub(super) fn stamp(self: &Arc<Self>) -> Option<Stamp> {
        self.is_current().then(|| {
            (
                self.reloads.load(Ordering::Acquire),
                self.domain_writes.load(Ordering::Acquire),
            )
        })
    }

    /// Starts a background reload unless one is running.
    fn request_reload(self: &Arc<Self>) {
        if self.reloading.swap(true, Ordering::AcqRel) {
            return;
        }
        let index = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("served-reload".into())
            .spawn(move || {
                if let Err(error) = index.reload() {
                    tracing::error!(%error, "served index: reload failed; lookups read SQLite");
                    // Do not retry in a tight loop; lookups are answered from SQLite meanwhile.
                    std::thread::sleep(Duration::from_secs(1));
                }
                index.reloading.store(false, Ordering::Release);
            });
        if let Err(error) = spawned {
            tracing::error!(%error, "served index: cannot start a reload thread");
            self.reloading.store(false, Ordering::Release);
        }
    }

    /// Reloads everything, holding off this process's writes meanwhile.
    fn reload(&self) -> Result<(), StoreError> {
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
        let state = ServedState::load(&conn)?;
        drop(conn);
        *self.state.write().unwrap_or_else(PoisonError::into_inner) = state;
        // Before `validated`: whoever sees the index current again sees the new stamp.
        self.reloads.fetch_add(1, Ordering::AcqRel);
        self.validated.store(count, Ordering::Release);
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "served index reloaded after a change by another writer"
        );
        Ok(())
    }

    /// Runs `operation` in one `BEGIN IMMEDIATE` transaction on `conn`, commits it, and brings
    /// the index up to date before returning.
    pub(super) fn write<T>(
        self: &Arc<Self>,
        conn: &mut Connection,
        operation: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _writer = lock(&self.writer);
        // Before SQLite touches the -shm file: a truncated one is put back first, and the
        // index stops vouching for itself until a reload.
        if self.counter.get().is_none() {
            self.validated.store(NONE, Ordering::Release);
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // We hold SQLite's write lock: the count cannot move until our commit.
        // No count (the -shm file unreadable): not in step, so no delta; lookups read SQLite.
        let before = self.counter.get();
        let in_step = before.is_some_and(|before| before == self.validated.load(Ordering::Acquire));
        let before = before.unwrap_or(NONE);
        self.touches.take();
        let value = operation(&tx)?;
        let touches = self.touches.take();
        let delta = if in_step {
            Delta::read(&tx, &touches)?
        } else {
            None
        };
        if delta.is_some() {
            self.expected.store(
                u64::from((before as u32).wrapping_add(1)),
                Ordering::Release,
            );
        }
        let committed = tx.commit();
        let after = self.counter.get().unwrap_or(NONE);
        if touches
            .iter()
            .any(|touch| matches!(touch, Touch::Domain(_)))
        {
            // Before `validated`, as in `reload`.
            self.domain_writes.fetch_add(1, Ordering::AcqRel);
        }
        match delta {
            Some(delta) if committed.is_ok() => {
                if after == before || after == NONE {
                    // Nothing was written, or the count cannot be read.
                } else if after == u64::from((before as u32).wrapping_add(1)) {
                    self.state
                        .write()
                        .unwrap_or_else(PoisonError::into_inner)
                        .apply(delta);
                    self.validated.store(after, Ordering::Release);
                }
                // Else someone else committed right after us: the count is ahead and the
                // next lookup asks for a reload.
            }
            _ => {}
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
    use crate::store::zones::{SoaTimers, insert_zone};
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

    fn zone_known(store: &Store, zone: &str) -> bool {
        store
            .read_served(|view| Ok(view.zone_by_name(zone)?.is_some()))
            .unwrap()
    }

    /// A store with the index, zone `dyn.example` with static records, and a user with two
    /// DDNS domains at one name.
    fn seeded() -> (tempfile::TempDir, Store) {
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
        (dir, store.with_served_index().unwrap())
    }

    #[test]
    fn the_index_answers_exactly_what_sqlite_answers() {
        let (_dir, store) = seeded();
        let index = store.index.as_ref().unwrap();
        let state = index.snapshot().expect("current after loading");
        let conn = store.pool.get().unwrap();
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
        let types: Vec<String> = home.unwrap().into_iter().map(|r| r.record_type).collect();
        assert_eq!(
            types,
            ["TXT", "MX", "A", "AAAA"],
            "statics as added, then DDNS by type"
        );
        assert!(state.zone_by_name("example").unwrap().is_none());
        assert!(state.enclosing_zone("other.test").unwrap().is_none());
    }

    #[test]
    fn the_daemons_own_writes_keep_the_index_current_without_a_reload() {
        use crate::model::AuthMethod;
        use crate::store::audit::ChangeContext;
        use crate::store::domains::{change_address, find_owned_domains};
        let (_dir, store) = seeded();
        let index = store.index.as_ref().unwrap();
        let context = ChangeContext {
            source_ip: None,
            peer_ip: None,
            user_agent: None,
            auth_method: AuthMethod::Bearer,
        };
        for last in 2..5 {
            let ip: std::net::IpAddr = format!("192.0.2.{last}").parse().unwrap();
            store
                .write(|tx| {
                    let owned = find_owned_domains(tx, 1, "home.dyn.example")?;
                    let a = owned
                        .iter()
                        .find(|d| d.record_type.as_str() == "A")
                        .unwrap();
                    change_address(tx, a, ip, &context, "t")
                })
                .unwrap();
            let state = index.snapshot().expect("in step: no reload, no SQL");
            let zone = state.zone_by_id(1).unwrap().unwrap();
            let records = state.records_at(&zone, "home.dyn.example").unwrap();
            assert!(records.iter().any(|r| r.content == ip.to_string()));
            let serial: u32 = store
                .read(|conn| Ok(conn.query_row("SELECT serial FROM zones", [], |r| r.get(0))?))
                .unwrap();
            assert_eq!(zone.serial, serial, "the SOA serial follows");
        }
    }

    #[test]
    fn a_write_around_the_index_is_noticed_and_reloaded() {
        let (_dir, store) = seeded();
        let index = store.index.as_ref().unwrap();
        // A statement on a pooled connection, not through Store::write: the index cannot know
        // what changed, only that something did.
        store
            .read(|conn| Ok(conn.execute("DELETE FROM records WHERE type = 'MX'", [])?))
            .unwrap();
        assert!(index.snapshot().is_none(), "stale: lookups read SQLite");
        let fresh = store
            .read_served(|view| {
                let zone = view.zone_by_id(1)?.unwrap();
                view.records_at(&zone, "dyn.example")
            })
            .unwrap();
        assert!(fresh.iter().all(|r| r.record_type != "MX"));
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
        assert!(records.iter().all(|r| r.record_type != "MX"));
    }

    #[test]
    fn another_writers_commit_is_seen_by_the_next_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let served = Store::open(&path, &StoreOptions::default())
            .unwrap()
            .with_served_index()
            .unwrap();
        assert!(served.index.is_some());
        let cli = Store::open(&path, &StoreOptions::default()).unwrap();
        add_zone(&cli, "a.example");
        assert!(zone_known(&served, "a.example"));
    }
}

//! The served index's content: every zone and every stored record, by name, kept compact (a
//! million names are a million entries), and how it is loaded and changed.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;

use rusqlite::Connection;

use super::history::{History, HistoryLimits, Since, difference};
use crate::model::dnssec::NsecChain;
use crate::model::rdata::{ServedType, StaticType};
use crate::store::StoreError;
use crate::store::changes::{Change, LogPosition, log_end};
use crate::store::records::{RecordSource, Scope, ServedRecord, each_stored, stored_records_at};
use crate::store::view::ServedView;
use crate::store::zones::{Zone, domain_counts, get_zone_by_id, list_zones, nearest_suffix};

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
    record_type: ServedType,
    content: Content,
    /// TTL in seconds.
    ttl: u32,
    /// Static record or DDNS address.
    source: RecordSource,
}

impl Entry {
    /// Whether this is an NS record.
    fn is_ns(&self) -> bool {
        self.record_type == ServedType::Stored(StaticType::Ns)
    }

    fn from_record(record: ServedRecord) -> Self {
        let record_type = record.record_type;
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
            record_type: self.record_type,
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
    /// For each name strictly between a served name and the apex, how many served names lie
    /// below it: what makes an empty non-terminal (RFC 8020) exist. Empty for zones whose names
    /// sit right below the apex (most DDNS zones).
    below: HashMap<Box<str>, u32>,
    /// The zone's NSEC chain, made at the first NSEC denial pdns asks for (NSEC-signed zones
    /// only: some 50 bytes a name) and kept current from then on. `None` again
    /// when a delegation changes, which moves whole subtrees in or out.
    chain: std::sync::Mutex<Option<NsecChain>>,
    /// What each change did, for IXFR (kept only when transfers are served).
    history: History,
}

impl ZoneEntry {
    /// A zone without records.
    fn new(zone: Zone) -> Self {
        Self {
            zone,
            names: HashMap::new(),
            below: HashMap::new(),
            chain: std::sync::Mutex::new(None),
            history: History::default(),
        }
    }

    /// The apex records the zone row makes, but its SOA (IXFR carries the SOAs apart).
    fn apex_without_soa(&self) -> Vec<ServedRecord> {
        let mut records = self.zone.apex_records();
        records.retain(|record| record.record_type != ServedType::Soa);
        records
    }

    /// Whether a name strictly between `name` and the apex holds NS records.
    fn is_delegated(&self, name: &str) -> bool {
        crate::model::names_between(name, &self.zone.name).any(|parent| {
            self.names
                .get(parent)
                .is_some_and(|entries| entries.iter().any(Entry::is_ns))
        })
    }

    /// Keeps the NSEC chain (if made) current as `name` goes from `had` records to `has`
    /// (whether NS among them): a new name in, unless below a delegation; a name gone, out.
    fn update_chain(&mut self, name: &str, had: Option<bool>, has: Option<bool>) {
        let delegated = self.is_delegated(name);
        let chain = self
            .chain
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(nsec) = chain.as_mut() else {
            return;
        };
        // A delegation added or removed moves what lies below it: made again when asked.
        if had == Some(true) || has == Some(true) {
            *chain = None;
            return;
        }
        let apex = self.zone.name.as_str();
        match (had, has) {
            (None, Some(_)) if !delegated => nsec.insert(apex, name),
            (Some(_), None) => nsec.remove(apex, name),
            _ => {}
        }
    }

    /// The NSEC chain, made now if it was not.
    fn nsec_chain(&self) -> std::sync::MutexGuard<'_, Option<NsecChain>> {
        let mut chain = self
            .chain
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if chain.is_none() {
            let apex = std::iter::once((self.zone.name.as_str(), true));
            let names = self
                .names
                .iter()
                .map(|(name, entries)| (&**name, entries.iter().any(Entry::is_ns)));
            *chain = Some(NsecChain::build(&self.zone.name, apex.chain(names)));
        }
        chain
    }

    /// Counts `name` (now served) in the names above it.
    fn count_above(&mut self, name: &str) {
        for parent in crate::model::names_between(name, &self.zone.name) {
            match self.below.get_mut(parent) {
                Some(count) => *count += 1,
                None => {
                    self.below.insert(parent.into(), 1);
                }
            }
        }
    }

    /// Forgets `name` (no longer served) in the names above it.
    fn uncount_above(&mut self, name: &str) {
        for parent in crate::model::names_between(name, &self.zone.name) {
            if let Some(count) = self.below.get_mut(parent) {
                *count -= 1;
                if *count == 0 {
                    self.below.remove(parent);
                }
            }
        }
    }
}

/// What went and what came at the names of each zone (by row id) in one delta.
type ZoneChanges = HashMap<i64, (Vec<ServedRecord>, Vec<ServedRecord>)>;

/// The index's content: every zone and every stored record, by name.
#[derive(Debug, Default)]
pub(super) struct ServedState {
    /// Zones by row id.
    zones: HashMap<i64, ZoneEntry>,
    /// Zone row ids by apex name.
    ids: HashMap<String, i64>,
    /// How much history each zone keeps for IXFR; none: no history (no transfers served).
    history: Option<HistoryLimits>,
}

impl ServedState {
    /// Reads everything in one read transaction of `conn`, through the queries that define
    /// what is served ([`each_stored`]), and the change log's end as of that snapshot.
    ///
    /// Built in place, in the final maps, with one-element vectors for the usual one record
    /// per name: building twice or letting vectors grow would double the peak at a million
    /// names, and the allocator keeps the peak.
    pub(super) fn load(conn: &Connection) -> Result<(Self, LogPosition), StoreError> {
        let tx = conn.unchecked_transaction()?;
        let mut state = Self::default();
        for zone in list_zones(&tx)? {
            state.ids.insert(zone.name.clone(), zone.id);
            state.zones.insert(zone.id, ZoneEntry::new(zone));
        }
        for (zone_id, count) in domain_counts(&tx)? {
            if let Some(entry) = state.zones.get_mut(&zone_id) {
                entry.names.reserve(count);
            }
        }
        each_stored(&tx, Scope::All, |zone_id, mut record| {
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
        })?;
        let end = log_end(&tx)?;
        tx.commit()?;
        for zone in state.zones.values_mut() {
            for entries in zone.names.values_mut().filter(|entries| entries.len() > 1) {
                entries.shrink_to_fit();
            }
            let deep: Vec<Box<str>> = zone
                .names
                .keys()
                .filter(|name| {
                    crate::model::names_between(name, &zone.zone.name)
                        .next()
                        .is_some()
                })
                .cloned()
                .collect();
            for name in deep {
                zone.count_above(&name);
            }
        }
        Ok((state, end))
    }

    /// How many zones.
    pub(super) fn zone_count(&self) -> usize {
        self.zones.len()
    }

    /// How many names hold records, over all zones.
    pub(super) fn name_count(&self) -> usize {
        self.zones.values().map(|zone| zone.names.len()).sum()
    }

    /// Keeps (or stops keeping) zone histories, from the next change on.
    pub(super) fn keep_history(&mut self, limits: Option<HistoryLimits>) {
        self.history = limits;
        if limits.is_none() {
            for zone in self.zones.values_mut() {
                zone.history.clear();
            }
        }
    }

    /// How much history is kept: carried over to a reloaded state.
    pub(super) fn history_limits(&self) -> Option<HistoryLimits> {
        self.history
    }

    /// What IXFR can tell a secondary of zone `zone_id` at `serial`, with the zone row it
    /// leads to; `None` for a zone not served.
    pub(super) fn history_since(&self, zone_id: i64, serial: u32) -> Option<(Zone, Since)> {
        let entry = self.zones.get(&zone_id)?;
        let since = if self.history.is_some() {
            entry.history.since(serial, entry.zone.serial)
        } else {
            Since::Unknown
        };
        Some((entry.zone.clone(), since))
    }

    /// Applies what changed (see [`Delta`]), and keeps what it did to each zone in its
    /// history when histories are kept.
    pub(super) fn apply(&mut self, delta: Delta) {
        let Some(limits) = self.history else {
            self.apply_records(delta, None);
            return;
        };
        // Each touched zone's serial and apex before, then what changed at its names.
        let mut before: HashMap<i64, (u32, Vec<ServedRecord>)> = HashMap::new();
        for (id, _) in &delta.zones {
            if let Some(entry) = self.zones.get(id) {
                before.insert(*id, (entry.zone.serial, entry.apex_without_soa()));
            }
        }
        for (zone_id, _, _) in &delta.names {
            if let Some(entry) = self.zones.get(zone_id) {
                before
                    .entry(*zone_id)
                    .or_insert_with(|| (entry.zone.serial, entry.apex_without_soa()));
            }
        }
        let mut changed: ZoneChanges = HashMap::new();
        self.apply_records(delta, Some(&mut changed));
        for (zone_id, (serial, apex)) in before {
            let Some(entry) = self.zones.get_mut(&zone_id) else {
                continue;
            };
            let (mut removed, mut added) = changed.remove(&zone_id).unwrap_or_default();
            let (apex_removed, apex_added) = difference(apex, entry.apex_without_soa());
            removed.extend(apex_removed);
            added.extend(apex_added);
            let to = entry.zone.serial;
            if serial != to {
                let step = super::history::Step {
                    from: serial,
                    to,
                    removed,
                    added,
                };
                entry.history.push(step, limits);
            } else if !removed.is_empty() || !added.is_empty() {
                // Changed without a new serial (a hand edit): no secondary can follow that.
                entry.history.clear();
            }
        }
    }

    /// Applies what changed to the maps; with `changed`, notes there what went and what came
    /// at each name, by zone.
    fn apply_records(&mut self, delta: Delta, mut changed: Option<&mut ZoneChanges>) {
        for (id, zone) in delta.zones {
            self.ids.retain(|_, zone_id| *zone_id != id);
            match zone {
                Some(zone) => {
                    self.ids.insert(zone.name.clone(), id);
                    match self.zones.get_mut(&id) {
                        Some(entry) => entry.zone = zone,
                        None => {
                            self.zones.insert(id, ZoneEntry::new(zone));
                        }
                    }
                }
                None => {
                    self.zones.remove(&id);
                }
            }
        }
        for (zone_id, name, records) in delta.names {
            let Some(entry) = self.zones.get_mut(&zone_id) else {
                continue;
            };
            let had = entry
                .names
                .get(name.as_str())
                .map(|entries| entries.iter().any(Entry::is_ns));
            if let Some(changed) = changed.as_deref_mut() {
                let old = entry
                    .names
                    .get(name.as_str())
                    .map_or_else(Vec::new, |entries| {
                        entries.iter().map(|entry| entry.to_record(&name)).collect()
                    });
                let (removed, added) = difference(old, records.clone());
                let zone = changed.entry(zone_id).or_default();
                zone.0.extend(removed);
                zone.1.extend(added);
            }
            if records.is_empty() {
                if entry.names.remove(name.as_str()).is_some() {
                    entry.uncount_above(&name);
                }
            } else {
                let entries = records.into_iter().map(Entry::from_record).collect();
                if entry
                    .names
                    .insert(name.clone().into_boxed_str(), entries)
                    .is_none()
                {
                    entry.count_above(&name);
                }
            }
            let has = entry
                .names
                .get(name.as_str())
                .map(|entries| entries.iter().any(Entry::is_ns));
            entry.update_chain(&name, had, has);
        }
    }
}

/// What changed, read back from SQLite for the changes the log names: the zone rows and the
/// records at each name as they are now. Applying it makes the index equal to SQLite for
/// those rows; re-applying it changes nothing.
#[derive(Debug, Default)]
pub(super) struct Delta {
    /// Zone rows by id; `None`: removed.
    zones: Vec<(i64, Option<Zone>)>,
    /// The stored records at each name (empty: none any more).
    names: Vec<(i64, String, Vec<ServedRecord>)>,
}

impl Delta {
    /// Reads the current rows behind `changes` on `conn` (in the snapshot that the log was
    /// read in).
    pub(super) fn read(conn: &Connection, changes: &[Change]) -> Result<Self, StoreError> {
        let mut delta = Self::default();
        for change in changes {
            match change {
                Change::Zone(id) => delta.zones.push((*id, get_zone_by_id(conn, *id)?)),
                Change::Name { zone_id, name } => {
                    let records = stored_records_at(conn, *zone_id, name)?;
                    delta.names.push((*zone_id, name.clone(), records));
                }
            }
        }
        Ok(delta)
    }

    /// Whether nothing served changed.
    pub(super) fn is_empty(&self) -> bool {
        self.zones.is_empty() && self.names.is_empty()
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

    fn has_names_below(&self, zone: &Zone, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .zones
            .get(&zone.id)
            .is_some_and(|entry| entry.below.contains_key(name)))
    }

    fn nsec_neighbours(&self, zone: &Zone, name: &str) -> Result<(String, String), StoreError> {
        Ok(match self.zones.get(&zone.id) {
            Some(entry) => entry
                .nsec_chain()
                .as_ref()
                .map(|chain| chain.neighbours(&zone.name, name))
                .unwrap_or_default(),
            None => (String::new(), String::new()),
        })
    }
}

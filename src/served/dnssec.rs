//! The verbs of pdns's DNSSEC calls (`remote-dnssec=yes`): a zone's keys and metadata, read
//! for signed answers and written by `pdnsutil`, and the TSIG keys pdns may use. Each is a
//! plain read or write of SQLite: pdns caches keys for 30 s and metadata for 60 s, and these
//! writes are an operator's, a few a year.

use super::Served;
use crate::model::dnssec::{KeyState, Metadata, NewZoneKey, ZoneKey};
use crate::model::tsig::{TsigKey, TsigScope};
use crate::store::dnssec;
use crate::store::tsig::find_active_tsig_key;
use crate::store::zones::{self, Zone};
use crate::store::{StoreError, timestamp};

impl Served {
    /// The keys of the zone at apex `name` (lower case, no final dot); `None`: no such zone.
    pub fn zone_keys(&self, name: &str) -> Result<Option<Vec<ZoneKey>>, StoreError> {
        self.read(|conn| {
            zones::get_zone_by_name(conn, name)?
                .map(|zone| dnssec::zone_keys(conn, zone.id))
                .transpose()
        })
    }

    /// Whether pdns signs the zone at apex `name` (it has an active key): its unsigned copy
    /// must then never leave for a secondary (no transfer, no NOTIFY from the DNS listener).
    pub fn is_signed(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .zone_keys(name)?
            .is_some_and(|keys| keys.iter().any(|key| key.active)))
    }

    /// Adds `key` to the zone at apex `name`: its id, or `None` for no such zone.
    /// [`StoreError::Conflict`] past the zone's key limit.
    pub fn add_zone_key(&self, name: &str, key: &NewZoneKey) -> Result<Option<i64>, StoreError> {
        self.committer().write(|tx| {
            zones::get_zone_by_name(tx, name)?
                .map(|zone| dnssec::add_key(tx, zone.id, key, &timestamp()))
                .transpose()
        })
    }

    /// Sets a state of key `id` of the zone at `name`; false when there is no such key.
    pub fn set_zone_key(&self, name: &str, id: i64, state: KeyState) -> Result<bool, StoreError> {
        self.store
            .write(|tx| match zones::get_zone_by_name(tx, name)? {
                Some(zone) => dnssec::set_key_state(tx, zone.id, id, state),
                None => Ok(false),
            })
    }

    /// Removes key `id` of the zone at `name`; false when there is no such key.
    pub fn remove_zone_key(&self, name: &str, id: i64) -> Result<bool, StoreError> {
        self.store
            .write(|tx| match zones::get_zone_by_name(tx, name)? {
                Some(zone) => dnssec::remove_key(tx, zone.id, id),
                None => Ok(false),
            })
    }

    /// The zone at `name` with its stored metadata; `None`: no such zone.
    pub fn zone_with_metadata(&self, name: &str) -> Result<Option<(Zone, Metadata)>, StoreError> {
        self.read(|conn| {
            let Some(zone) = zones::get_zone_by_name(conn, name)? else {
                return Ok(None);
            };
            let metadata = dnssec::zone_metadata(conn, zone.id)?;
            Ok(Some((zone, metadata)))
        })
    }

    /// Replaces the values of metadata `kind` of the zone at `name` (none: deletes it); false
    /// for no such zone. [`StoreError::Conflict`] past the limits.
    pub fn set_zone_metadata(
        &self,
        name: &str,
        kind: &str,
        values: &[String],
    ) -> Result<bool, StoreError> {
        self.store
            .write(|tx| match zones::get_zone_by_name(tx, name)? {
                Some(zone) => dnssec::set_metadata(tx, zone.id, kind, values).map(|()| true),
                None => Ok(false),
            })
    }

    /// The TSIG key named `name` if pdns may use it: an admin's active key for a whole zone
    /// (for signed transfers and NOTIFYs). An account's keys and subtree keys stay with the
    /// RFC 2136 listener: they are never handed to pdns.
    pub fn pdns_tsig_key(&self, name: &str) -> Result<Option<TsigKey>, StoreError> {
        Ok(self.tsig_key(name)?.filter(is_for_pdns))
    }

    /// Every TSIG key pdns may use (see [`Served::pdns_tsig_key`]), by name.
    pub fn pdns_tsig_keys(&self) -> Result<Vec<TsigKey>, StoreError> {
        self.read(|conn| {
            let names = crate::store::tsig::list_tsig_keys(conn, None)?;
            let mut keys = Vec::new();
            for listing in names.iter().filter(|listing| listing.active) {
                if let Some(key) = find_active_tsig_key(conn, &listing.name)?.filter(is_for_pdns) {
                    keys.push(key);
                }
            }
            Ok(keys)
        })
    }
}

/// Whether pdns may use `key` (see [`Served::pdns_tsig_key`]).
fn is_for_pdns(key: &TsigKey) -> bool {
    matches!(key.scope, TsigScope::Zone { subtree: None, .. })
}

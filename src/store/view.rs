//! What a lookup reads, whoever holds it: SQLite (always current) or the served index of
//! `serve` (`crate::served`), which answers the same from memory.

use std::borrow::Cow;

use rusqlite::Connection;

use super::StoreError;
use super::records::{ServedRecord, has_names_below, nsec_chain, records_at};
use super::zones::{Zone, find_enclosing_zone, get_zone_by_id, get_zone_by_name};

/// What a lookup reads: zones and the records at a name. Implemented by a SQLite connection
/// (always current) and by the in-memory `ServedState`.
pub trait ServedView {
    /// The zone with row id `id`.
    fn zone_by_id(&self, id: i64) -> Result<Option<Cow<'_, Zone>>, StoreError>;
    /// The zone whose apex is exactly `name` (lower case, no final dot).
    fn zone_by_name(&self, name: &str) -> Result<Option<Cow<'_, Zone>>, StoreError>;
    /// The most specific zone `name` lies in.
    fn enclosing_zone(&self, name: &str) -> Result<Option<Cow<'_, Zone>>, StoreError>;
    /// Every record at `name` in `zone`, as [`records_at`] orders them.
    fn records_at(&self, zone: &Zone, name: &str) -> Result<Vec<ServedRecord>, StoreError>;
    /// Whether `zone` serves any name below `name`, a name below the apex (an empty
    /// non-terminal, when `name` holds no record itself).
    fn has_names_below(&self, zone: &Zone, name: &str) -> Result<bool, StoreError>;
    /// The names before (or at) and after `name` in `zone`'s NSEC chain, relative to the apex
    /// (see `NsecChain::neighbours`).
    fn nsec_neighbours(&self, zone: &Zone, name: &str) -> Result<(String, String), StoreError>;
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

    fn has_names_below(&self, zone: &Zone, name: &str) -> Result<bool, StoreError> {
        has_names_below(self, zone.id, name)
    }

    fn nsec_neighbours(&self, zone: &Zone, name: &str) -> Result<(String, String), StoreError> {
        Ok(nsec_chain(self, zone)?.neighbours(&zone.name, name))
    }
}

//! The verbs of zone transfers: a whole zone as one snapshot (AXFR), and what changed since a
//! serial (IXFR, from the histories the served index keeps; see `history`).

use std::ops::ControlFlow;

use super::history::{HistoryLimits, Since};
use super::{Served, StoreError};
use crate::store::records::{Scope, ServedRecord, try_each_stored};
use crate::store::zones::{self, Zone};

impl Served {
    /// Keeps each zone's history of changes from now on, for IXFR (`serve`, when transfers
    /// are configured). Without a served index there is no history: IXFR then answers with
    /// the whole zone.
    pub fn keep_zone_history(&self, limits: HistoryLimits) {
        if let Some(index) = &self.index {
            index.keep_history(Some(limits));
        }
    }

    /// The zone at apex `name` and what IXFR can tell a secondary at `serial`; `None` for a
    /// zone not served. Blocking (it may wait for the index to catch up with another
    /// writer's commit): async code calls it from a blocking thread.
    pub fn zone_history(
        &self,
        name: &str,
        serial: u32,
    ) -> Result<Option<(Zone, Since)>, StoreError> {
        let Some(zone) =
            self.lookup(|view| Ok(view.zone_by_name(name)?.map(std::borrow::Cow::into_owned)))?
        else {
            return Ok(None);
        };
        if let Some(index) = &self.index {
            if let Some(found) = index.history_since(zone.id, serial) {
                return Ok(Some(found));
            }
        }
        Ok(Some((zone, Since::Unknown)))
    }

    /// Hands `each` the zone at apex `name` (its row: the SOA and apex NS set), then every
    /// record it serves, all from one SQLite snapshot, so that what a secondary gets is the
    /// zone at exactly the serial it is told. Stops when `each` says so (the secondary went
    /// away). `None` for a zone not served. Blocking, and as long as the zone: async code
    /// calls it from a blocking thread.
    pub fn each_zone_record(
        &self,
        name: &str,
        mut each: impl FnMut(ZoneItem) -> ControlFlow<()>,
    ) -> Result<Option<()>, StoreError> {
        self.read(|conn| {
            let tx = conn.unchecked_transaction()?;
            let Some(zone) = zones::get_zone_by_name(&tx, name)? else {
                return Ok(None);
            };
            let id = zone.id;
            if each(ZoneItem::Zone(zone)).is_continue() {
                let _stopped = try_each_stored(&tx, Scope::Zone(id), |_, record| {
                    each(ZoneItem::Record(record))
                })?;
            }
            tx.commit()?;
            Ok(Some(()))
        })
    }
}

/// What [`Served::each_zone_record`] hands on.
#[derive(Debug)]
pub enum ZoneItem {
    /// The zone's row, first.
    Zone(Zone),
    /// One record it serves (the apex SOA and NS aside: they are the row's).
    Record(ServedRecord),
}

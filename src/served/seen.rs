//! Write-behind for "last seen" times (`domains.last_checked_at`, `api_keys.last_used_at`) and
//! for the state of abuse episodes (`abuse_episodes`).
//!
//! Most update requests change nothing: a router sends the address it already has. Those are
//! answered from a read, and the times they leave behind are noted here and written by
//! [`Served::flush_seen`](super::Served::flush_seen) in one transaction (`serve` flushes every
//! second and at shutdown). A crash can lose up to that much of these times, never an address
//! or an audit row: every change of an address is written before it is answered. An abuse
//! episode's refusals come in floods, so they are noted here too: one row write per flagged
//! host a second, whatever the flood's rate.

use std::collections::HashMap;
use std::sync::Mutex;

use rusqlite::Connection;

use super::lock;
use crate::store::StoreError;
use crate::store::abuse::{Episode, record_episode};
use crate::store::changes::LogPosition;
use crate::store::domains::touch_checked;
use crate::store::keys::touch_key;

/// The times noted since the last flush.
#[derive(Debug, Default)]
pub(super) struct Seen {
    pending: Mutex<Pending>,
    /// How far the served-change log is forgotten (see `Served::flush_seen`).
    forgotten: Mutex<LogPosition>,
}

/// Newest time per row.
#[derive(Debug, Default)]
pub(super) struct Pending {
    keys: HashMap<i64, String>,
    domains: HashMap<i64, String>,
    /// Newest state per (user id, host, start of the episode).
    episodes: HashMap<(i64, String, std::time::SystemTime), Episode>,
    /// The serial each zone's secondaries were last notified of (pdns's setNotified).
    notified: HashMap<i64, u32>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.keys.is_empty()
            && self.domains.is_empty()
            && self.episodes.is_empty()
            && self.notified.is_empty()
    }

    /// Writes the times on `conn` (inside the caller's transaction). The statements never
    /// move a time backwards, so a flush after a newer direct write changes nothing.
    pub(super) fn write(&self, conn: &Connection) -> Result<(), StoreError> {
        for (key_id, at) in &self.keys {
            touch_key(conn, *key_id, at)?;
        }
        for (domain_id, at) in &self.domains {
            touch_checked(conn, *domain_id, at)?;
        }
        for ((user_id, host, _), episode) in &self.episodes {
            record_episode(conn, *user_id, host, episode)?;
        }
        for (zone_id, serial) in &self.notified {
            crate::store::zones::set_notified(conn, *zone_id, *serial)?;
        }
        Ok(())
    }
}

impl Seen {
    /// Notes that `key_id` (if any) and `domain_ids` were used or checked at `now`.
    pub(super) fn note(&self, key_id: Option<i64>, domain_ids: &[i64], now: &str) {
        let mut pending = lock(&self.pending);
        if let Some(key_id) = key_id {
            pending.keys.insert(key_id, now.to_string());
        }
        for domain_id in domain_ids {
            pending.domains.insert(*domain_id, now.to_string());
        }
    }

    /// Notes that zone `zone_id`'s secondaries were notified of `serial`.
    pub(super) fn note_notified(&self, zone_id: i64, serial: u32) {
        lock(&self.pending).notified.insert(zone_id, serial);
    }

    /// Notes the newest state of an abuse episode.
    pub(super) fn note_abuse(&self, user_id: i64, host: &str, episode: &Episode) {
        lock(&self.pending)
            .episodes
            .insert((user_id, host.to_string(), episode.started_at), *episode);
    }

    /// Whether some of the change log up to `applied` may still be there to forget.
    pub(super) fn to_forget(&self, applied: LogPosition) -> bool {
        applied > *lock(&self.forgotten)
    }

    /// The change log is forgotten up to `applied`.
    pub(super) fn forgotten(&self, applied: LogPosition) {
        let mut forgotten = lock(&self.forgotten);
        *forgotten = applied.max(*forgotten);
    }

    /// Takes everything noted so far; `None` when there is nothing.
    pub(super) fn take(&self) -> Option<Pending> {
        let mut pending = lock(&self.pending);
        (!pending.is_empty()).then(|| std::mem::take(&mut *pending))
    }

    /// Puts back what a failed flush took, keeping newer times noted meanwhile.
    pub(super) fn restore(&self, taken: Pending) {
        let mut pending = lock(&self.pending);
        for (id, at) in taken.keys {
            pending.keys.entry(id).or_insert(at);
        }
        for (id, at) in taken.domains {
            pending.domains.entry(id).or_insert(at);
        }
        for (key, episode) in taken.episodes {
            pending.episodes.entry(key).or_insert(episode);
        }
        for (zone_id, serial) in taken.notified {
            pending.notified.entry(zone_id).or_insert(serial);
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::store::test_connection;

    #[test]
    fn a_failed_flush_keeps_its_times_without_overwriting_newer_ones() {
        let seen = Seen::default();
        seen.note(Some(1), &[10, 11], "2026-01-01T00:00:01.000Z");
        let taken = seen.take().expect("something noted");
        assert!(seen.take().is_none(), "taken means emptied");
        seen.note(None, &[10], "2026-01-01T00:00:02.000Z");
        seen.restore(taken);
        let pending = seen.take().unwrap();
        assert_eq!(pending.keys[&1], "2026-01-01T00:00:01.000Z");
        assert_eq!(
            pending.domains[&10], "2026-01-01T00:00:02.000Z",
            "newer kept"
        );
        assert_eq!(pending.domains[&11], "2026-01-01T00:00:01.000Z");
    }

    #[test]
    fn writing_never_moves_a_time_back() {
        use crate::model::{DomainName, Plan, RecordType};
        use crate::store::domains::insert_domain;
        use crate::store::test_zone;
        use crate::store::users::insert_user;
        let conn = test_connection();
        let name = |text: &str| text.parse::<DomainName>().unwrap();
        let zone = test_zone(&conn);
        let user = insert_user(&conn, "alice", "a@example.com", "$phc", Plan::Plus, "t").unwrap();
        let domain = insert_domain(
            &conn,
            &name("h.dyn.example"),
            user,
            zone,
            RecordType::A,
            "t",
        )
        .unwrap();
        let checked = || -> String {
            conn.query_row(
                "SELECT last_checked_at FROM domains WHERE id = ?1",
                [domain],
                |r| r.get(0),
            )
            .unwrap()
        };
        let at = |time: &str| {
            let seen = Seen::default();
            seen.note(None, &[domain], time);
            seen.take().unwrap().write(&conn).unwrap();
        };
        at("2026-01-01T00:00:05.000Z");
        at("2026-01-01T00:00:03.000Z");
        assert_eq!(checked(), "2026-01-01T00:00:05.000Z");
        at("2026-01-01T00:00:07.000Z");
        assert_eq!(checked(), "2026-01-01T00:00:07.000Z");
    }
}

//! Abuse episodes (`abuse_episodes`): hosts flagged for sustained excess of update requests.
//!
//! The update path decides when a host is flagged (in memory, see `dyndns::abuse`); this is
//! what admins see of it afterwards: when an episode started, when it last refused a request,
//! how many it refused, and when the flag lifts if the host stays quiet.

use rusqlite::{Connection, params};
use serde::Serialize;

use super::{StoreError, timestamp_at};
pub use crate::model::audit::Episode;

/// See [`record_episode`]. `+user_id`: a user's index would read all of their domains.
pub(super) const RECORD_EPISODE: &str =
    "INSERT INTO abuse_episodes (user_id, fqdn, started_at, last_refused_at, refused, clears_at)
     SELECT ?1, ?2, ?3, ?4, ?5, ?6
     WHERE EXISTS (SELECT 1 FROM domains WHERE +user_id = ?1 AND fqdn = ?2)
     ON CONFLICT (user_id, fqdn, started_at) DO UPDATE SET
         last_refused_at = max(last_refused_at, excluded.last_refused_at),
         refused = max(refused, excluded.refused),
         clears_at = max(clears_at, excluded.clears_at)";

/// Writes the state of an episode of `user_id`'s `host`, if the user owns a domain of that
/// name (a flood of made-up names leaves no rows). Counts and times only move forward, so an
/// older state written late changes nothing.
pub fn record_episode(
    conn: &Connection,
    user_id: i64,
    host: &str,
    episode: &Episode,
) -> Result<(), StoreError> {
    conn.prepare_cached(RECORD_EPISODE)?.execute(params![
        user_id,
        host,
        timestamp_at(episode.started_at),
        timestamp_at(episode.last_refused_at),
        i64::try_from(episode.refused).unwrap_or(i64::MAX),
        timestamp_at(episode.clears_at),
    ])?;
    Ok(())
}

/// One episode, as `history` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EpisodeRecord {
    /// The host.
    pub fqdn: String,
    /// The user whose requests were refused.
    pub username: String,
    /// The first refused request.
    pub started_at: String,
    /// The last refused request.
    pub last_refused_at: String,
    /// Requests refused.
    pub refused: i64,
    /// When the flag lifts (or lifted), unless more requests came above the rate.
    pub clears_at: String,
}

/// The newest `limit` episodes of `fqdn`, newest first.
pub fn episodes(
    conn: &Connection,
    fqdn: &str,
    limit: u32,
) -> Result<Vec<EpisodeRecord>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT e.fqdn, u.username, e.started_at, e.last_refused_at, e.refused, e.clears_at
         FROM abuse_episodes e JOIN users u ON u.id = e.user_id
         WHERE e.fqdn = ?1 ORDER BY e.started_at DESC, e.id DESC LIMIT ?2",
    )?;
    let rows = statement
        .query_map(params![fqdn, limit], |row| {
            Ok(EpisodeRecord {
                fqdn: row.get(0)?,
                username: row.get(1)?,
                started_at: row.get(2)?,
                last_refused_at: row.get(3)?,
                refused: row.get(4)?,
                clears_at: row.get(5)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Ends every episode still flagged at `now` (the service starts with no host flagged, its
/// buckets being in memory): returns how many. So `domain list` never shows a flag that
/// nothing enforces.
pub fn lift_all(conn: &Connection, now: &str) -> Result<usize, StoreError> {
    Ok(conn
        .prepare_cached("UPDATE abuse_episodes SET clears_at = ?1 WHERE clears_at > ?1")?
        .execute([now])?)
}

/// The (user id, lower-case host) pairs flagged at `now`: an episode not yet cleared.
pub fn flagged(conn: &Connection, now: &str) -> Result<Vec<(i64, String)>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT DISTINCT user_id, lower(fqdn) FROM abuse_episodes WHERE clears_at > ?1",
    )?;
    let rows = statement
        .query_map([now], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::model::{DomainName, Plan, RecordType};
    use crate::store::domains::insert_domain;
    use crate::store::users::insert_user;
    use crate::store::{test_connection, test_zone};
    use std::time::SystemTime;

    /// 2026-01-01T00:00:00.000Z plus `seconds`.
    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_767_225_600 + seconds)
    }

    fn episode(started: u64, last: u64, refused: u64, clears: u64) -> Episode {
        Episode {
            started_at: at(started),
            last_refused_at: at(last),
            refused,
            clears_at: at(clears),
        }
    }

    #[test]
    fn episodes_are_kept_for_owned_hosts_only_and_only_move_forward() {
        let conn = test_connection();
        let zone = test_zone(&conn);
        let alice = insert_user(&conn, "alice", "a@example.com", "$phc", Plan::Plus, "t").unwrap();
        let host: DomainName = "h.dyn.example".parse().unwrap();
        insert_domain(&conn, &host, alice, zone, RecordType::A, "t").unwrap();
        insert_domain(&conn, &host, alice, zone, RecordType::Aaaa, "t").unwrap();

        let first = episode(5, 5, 1, 6);
        record_episode(&conn, alice, "h.dyn.example", &first).unwrap();
        let later = episode(5, 9, 80, 69);
        record_episode(&conn, alice, "h.dyn.example", &later).unwrap();
        // A late write of an older state.
        record_episode(&conn, alice, "h.dyn.example", &first).unwrap();
        // Names the user does not own leave nothing.
        record_episode(&conn, alice, "made-up.dyn.example", &first).unwrap();
        record_episode(&conn, alice + 1, "h.dyn.example", &first).unwrap();

        let rows = episodes(&conn, "H.dyn.example", 10).unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].username, "alice");
        assert_eq!(rows[0].refused, 80);
        assert_eq!(rows[0].last_refused_at, "2026-01-01T00:00:09.000Z");
        assert_eq!(rows[0].clears_at, "2026-01-01T00:01:09.000Z");
        let time = |seconds| timestamp_at(at(seconds));
        assert_eq!(
            flagged(&conn, &time(30)).unwrap(),
            [(alice, "h.dyn.example".to_string())]
        );
        assert!(flagged(&conn, &time(69)).unwrap().is_empty());
        assert_eq!(lift_all(&conn, &time(30)).unwrap(), 1);
        assert!(flagged(&conn, &time(30)).unwrap().is_empty());
        assert_eq!(
            episodes(&conn, "h.dyn.example", 1).unwrap()[0].clears_at,
            time(30)
        );
    }
}

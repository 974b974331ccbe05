//! The served-change log (`served_changes`, schema.sql migration 3): which names' answers a
//! commit may have changed, written by triggers in the transaction of the change itself.
//!
//! Triggers, not the writers: every writer fires them, the admin CLI and `sqlite3` included,
//! so a reader of the log (the served index of `serve`) learns of every change as a short list
//! of names instead of re-reading the whole database. Sequence numbers are AUTOINCREMENT: never
//! reused, without gaps (a rolled-back insert rolls its number back too), so the rows after
//! the last one applied are exactly the changes since, or the log was tampered with.

use rusqlite::{Connection, OptionalExtension};

use super::StoreError;

/// A position in the log: the sequence number of the last change it covers (0: none yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct LogPosition(pub i64);

/// One change of what DNS answers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Change {
    /// The zone row with this id: its SOA or NS set changed, or it was added or removed.
    Zone(i64),
    /// The records at `name` in zone `zone_id` (static or DDNS) may have changed.
    Name {
        /// The zone's row id.
        zone_id: i64,
        /// The owner name, as stored.
        name: String,
    },
}

/// What the log says happened after a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Since {
    /// These changes, deduplicated, zones first; the log now ends at `end`.
    Changes {
        /// The changes.
        changes: Vec<Change>,
        /// The position after them.
        end: LogPosition,
    },
    /// More than the caller's limit: re-reading everything is cheaper.
    TooMany,
    /// The log does not continue the position (rows deleted by someone else, a database file
    /// restored from a copy): only re-reading everything is safe.
    Broken,
}

/// The end of the log now.
pub fn log_end(conn: &Connection) -> Result<LogPosition, StoreError> {
    let end: Option<i64> = conn
        .prepare_cached("SELECT seq FROM sqlite_sequence WHERE name = 'served_changes'")?
        .query_row([], |row| row.get(0))
        .optional()?;
    Ok(LogPosition(end.unwrap_or(0)))
}

/// The changes after `after`, at most `limit` of them.
pub fn changes_since(
    conn: &Connection,
    after: LogPosition,
    limit: usize,
) -> Result<Since, StoreError> {
    let end = log_end(conn)?;
    let Some(count) = end
        .0
        .checked_sub(after.0)
        .and_then(|count| usize::try_from(count).ok())
    else {
        return Ok(Since::Broken);
    };
    if count > limit {
        return Ok(Since::TooMany);
    }
    let mut changes = Vec::with_capacity(count);
    let mut statement = conn.prepare_cached(
        "SELECT zone_id, name FROM served_changes WHERE seq > ?1 AND seq <= ?2 ORDER BY seq",
    )?;
    let mut rows = statement.query([after.0, end.0])?;
    while let Some(row) = rows.next()? {
        let zone_id = row.get(0)?;
        changes.push(match row.get::<_, Option<String>>(1)? {
            None => Change::Zone(zone_id),
            Some(name) => Change::Name { zone_id, name },
        });
    }
    if changes.len() != count {
        return Ok(Since::Broken);
    }
    changes.sort_unstable();
    changes.dedup();
    Ok(Since::Changes { changes, end })
}

/// Deletes the changes after `after` up to `end`: a writer that applied its own changes
/// inside its transaction takes them out again there, so that a busy writer leaves no log
/// behind (the rows never reach the disk as more than a page touched twice).
pub fn forget_own_changes(
    conn: &Connection,
    after: LogPosition,
    end: LogPosition,
) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM served_changes WHERE seq > ?1 AND seq <= ?2")?
        .execute([after.0, end.0])?;
    Ok(())
}

/// Deletes the oldest changes up to `upto` (applied, so no longer needed), at most `limit` of
/// them: a bulk edit by hand can leave a million rows, and deleting them in one go would hold
/// the write lock for a second. How many were deleted.
pub fn forget_changes(
    conn: &Connection,
    upto: LogPosition,
    limit: usize,
) -> Result<usize, StoreError> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM served_changes WHERE seq IN
                 (SELECT seq FROM served_changes WHERE seq <= ?1 ORDER BY seq LIMIT ?2)",
        )?
        .execute(rusqlite::params![
            upto.0,
            i64::try_from(limit).unwrap_or(i64::MAX)
        ])?)
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::model::{DomainName, Plan, RecordType};
    use crate::store::domains::{insert_domain, touch_checked};
    use crate::store::users::insert_user;
    use crate::store::{test_connection, test_zone};

    fn changes(conn: &Connection, after: LogPosition) -> (Vec<Change>, LogPosition) {
        match changes_since(conn, after, 100).unwrap() {
            Since::Changes { changes, end } => (changes, end),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_served_change_is_logged_and_nothing_else() {
        let conn = test_connection();
        let zone = test_zone(&conn);
        let start = log_end(&conn).unwrap();
        let (logged, _) = changes(&conn, LogPosition(0));
        assert_eq!(logged, [Change::Zone(zone)], "the zone was added");
        let user = insert_user(&conn, "alice", "a@example.com", "$phc", Plan::Plus, "t").unwrap();
        let name: DomainName = "h.dyn.example".parse().unwrap();
        let domain = insert_domain(&conn, &name, user, zone, RecordType::A, "t").unwrap();
        let h = Change::Name {
            zone_id: zone,
            name: "h.dyn.example".into(),
        };
        let (logged, end) = changes(&conn, start);
        assert_eq!(logged, std::slice::from_ref(&h));
        // A router repeating its address: no row.
        touch_checked(&conn, domain, "t2").unwrap();
        assert_eq!(changes(&conn, end), (vec![], end));
        conn.execute("UPDATE domains SET ip = '192.0.2.1'", [])
            .unwrap();
        conn.execute("UPDATE users SET plan = 'pro'", []).unwrap();
        conn.execute("UPDATE zones SET serial = serial + 1", [])
            .unwrap();
        let (logged, later) = changes(&conn, end);
        assert_eq!(
            logged,
            [Change::Zone(zone), h.clone()],
            "deduplicated, zones first"
        );
        conn.execute("DELETE FROM users", []).unwrap();
        assert_eq!(
            changes(&conn, later).0,
            [h],
            "a cascade fires the triggers too"
        );
    }

    #[test]
    fn a_log_that_does_not_continue_the_position_is_broken() {
        let conn = test_connection();
        test_zone(&conn);
        let end = log_end(&conn).unwrap();
        assert_eq!(end, LogPosition(1));
        assert_eq!(forget_changes(&conn, end, 100).unwrap(), 1);
        // Forgotten changes are not reused: the position stays meaningful.
        assert_eq!(log_end(&conn).unwrap(), end);
        assert_eq!(changes(&conn, end), (vec![], end));
        assert_eq!(
            changes_since(&conn, LogPosition(0), 100).unwrap(),
            Since::Broken,
            "rows before the position are gone"
        );
        assert_eq!(
            changes_since(&conn, LogPosition(5), 100).unwrap(),
            Since::Broken,
            "the log is behind the position (a restored file)"
        );
        conn.execute("UPDATE zones SET serial = serial + 1", [])
            .unwrap();
        conn.execute("UPDATE zones SET serial = serial + 1", [])
            .unwrap();
        assert_eq!(changes_since(&conn, end, 1).unwrap(), Since::TooMany);
    }
}

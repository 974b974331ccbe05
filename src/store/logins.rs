//! Login blocks (`login_blocks`): accounts and client addresses the password-guessing throttle
//! refuses without checking passwords, as admins see them.
//!
//! The throttle decides in memory (`dyndns::throttle`); the service writes a row when a block
//! starts, and empties the table at each start (a restart ends every block). An admin asks for
//! a block to be lifted with `user unlock` ([`request_unlock`]): the running service reads the
//! requests ([`unlock_requests`]) every second, lifts them in memory and deletes the rows
//! ([`forget`]). So the CLI never needs a channel into the process: the store is the one both
//! share, as for every other change.

use std::time::SystemTime;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::{StoreError, timestamp_at};
pub use crate::model::audit::{Blocked, LoginBlock};

/// A block as `user blocked` and `user unlock` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockRecord {
    /// The account, for a block of one.
    pub username: Option<String>,
    /// The client address, for a block of one.
    pub client: Option<String>,
    /// Failures that started it.
    pub failures: i64,
    /// When it started.
    pub blocked_at: String,
    /// When it ends unless lifted.
    pub blocked_until: String,
    /// When an admin asked for it to be lifted; None when nobody has.
    pub unlock_requested_at: Option<String>,
}

/// Writes blocks that started, and deletes the rows of blocks that ended before `now`. A new
/// block of a subject replaces its row (and any unlock request of the one before: it was
/// asked of an older block). A block of an account deleted meanwhile leaves nothing.
pub fn record_blocks(
    conn: &Connection,
    blocks: &[LoginBlock],
    now: SystemTime,
) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM login_blocks WHERE blocked_until <= ?1")?
        .execute([timestamp_at(now)])?;
    for block in blocks {
        let times = (
            i64::from(block.failures),
            timestamp_at(block.blocked_at),
            timestamp_at(block.blocked_until),
        );
        match block.subject {
            Blocked::Account(user_id) => conn
                .prepare_cached(
                    "INSERT INTO login_blocks (user_id, failures, blocked_at, blocked_until)
                     SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM users WHERE id = ?1)
                     ON CONFLICT (user_id) DO UPDATE SET failures = excluded.failures,
                         blocked_at = excluded.blocked_at,
                         blocked_until = excluded.blocked_until, unlock_requested_at = NULL",
                )?
                .execute(params![user_id, times.0, times.1, times.2])?,
            Blocked::Client(address) => conn
                .prepare_cached(
                    "INSERT INTO login_blocks (client, failures, blocked_at, blocked_until)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (client) DO UPDATE SET failures = excluded.failures,
                         blocked_at = excluded.blocked_at,
                         blocked_until = excluded.blocked_until, unlock_requested_at = NULL",
                )?
                .execute(params![address.to_string(), times.0, times.1, times.2])?,
        };
    }
    Ok(())
}

/// The columns of a [`BlockRecord`], `b` the block and `u` its account.
const RECORD_COLUMNS: &str = "u.username, b.client, b.failures, b.blocked_at, b.blocked_until,
     b.unlock_requested_at";

/// A [`BlockRecord`] from a row of [`RECORD_COLUMNS`].
fn record(row: &rusqlite::Row<'_>) -> rusqlite::Result<BlockRecord> {
    Ok(BlockRecord {
        username: row.get(0)?,
        client: row.get(1)?,
        failures: row.get(2)?,
        blocked_at: row.get(3)?,
        blocked_until: row.get(4)?,
        unlock_requested_at: row.get(5)?,
    })
}

/// The blocks under way at `now`: accounts by name, then client addresses.
pub fn list_blocks(conn: &Connection, now: &str) -> Result<Vec<BlockRecord>, StoreError> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {RECORD_COLUMNS} FROM login_blocks b LEFT JOIN users u ON u.id = b.user_id
         WHERE b.blocked_until > ?1 ORDER BY u.username IS NULL, u.username, b.client"
    ))?;
    let rows = statement
        .query_map([now], record)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The row of `subject`, whichever time it is for.
fn subject_clause(subject: Blocked) -> (&'static str, rusqlite::types::Value) {
    match subject {
        Blocked::Account(user_id) => ("b.user_id = ?1", user_id.into()),
        Blocked::Client(address) => ("b.client = ?1", address.to_string().into()),
    }
}

/// The block of `subject` under way at `now`, if any.
pub fn block_of(
    conn: &Connection,
    subject: Blocked,
    now: &str,
) -> Result<Option<BlockRecord>, StoreError> {
    let (clause, value) = subject_clause(subject);
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {RECORD_COLUMNS} FROM login_blocks b LEFT JOIN users u ON u.id = b.user_id
             WHERE {clause} AND b.blocked_until > ?2"
        ))?
        .query_row(params![value, now], record)
        .optional()?)
}

/// Asks the running service to lift the block of `subject` (under way at `now`): the block as
/// it stood, or None when there is none to lift.
pub fn request_unlock(
    conn: &Connection,
    subject: Blocked,
    now: &str,
) -> Result<Option<BlockRecord>, StoreError> {
    let Some(block) = block_of(conn, subject, now)? else {
        return Ok(None);
    };
    let (clause, value) = subject_clause(subject);
    conn.prepare_cached(&format!(
        "UPDATE login_blocks AS b SET unlock_requested_at = ?2 WHERE {clause}"
    ))?
    .execute(params![value, now])?;
    Ok(Some(block))
}

/// Deletes the row of `subject` (no service runs to lift it: nothing blocks it); whether
/// there was one.
pub fn delete_block(conn: &Connection, subject: Blocked) -> Result<bool, StoreError> {
    let (clause, value) = subject_clause(subject);
    Ok(conn
        .prepare_cached(&format!("DELETE FROM login_blocks AS b WHERE {clause}"))?
        .execute([value])?
        > 0)
}

/// The blocks an admin asked to lift. A read of a table of a few rows: the service calls it
/// every second.
pub fn unlock_requests(conn: &Connection) -> Result<Vec<Blocked>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT user_id, client FROM login_blocks WHERE unlock_requested_at IS NOT NULL",
    )?;
    let rows = statement
        .query_map([], |row| {
            Ok((
                row.get::<_, Option<i64>>(0)?,
                row.get::<_, Option<String>>(1)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows
        .into_iter()
        .filter_map(|(user_id, client)| match (user_id, client) {
            (Some(user_id), _) => Some(Blocked::Account(user_id)),
            // The service wrote the address: it parses, unless edited by hand.
            (None, Some(client)) => client.parse().ok().map(Blocked::Client),
            (None, None) => None,
        })
        .collect())
}

/// Deletes the rows of lifted blocks, if an unlock was asked of them (a block that started
/// again since has its row kept).
pub fn forget(conn: &Connection, lifted: &[Blocked]) -> Result<(), StoreError> {
    for subject in lifted {
        let (clause, value) = subject_clause(*subject);
        conn.prepare_cached(&format!(
            "DELETE FROM login_blocks AS b WHERE {clause} AND unlock_requested_at IS NOT NULL"
        ))?
        .execute([value])?;
    }
    Ok(())
}

/// Deletes every row (the service starts with no block); how many.
pub fn clear_all(conn: &Connection) -> Result<usize, StoreError> {
    Ok(conn
        .prepare_cached("DELETE FROM login_blocks")?
        .execute([])?)
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::model::Plan;
    use crate::store::test_connection;
    use crate::store::users::insert_user;

    /// 2026-01-01T00:00:00.000Z plus `seconds`.
    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_767_225_600 + seconds)
    }

    fn block(subject: Blocked, from: u64, until: u64) -> LoginBlock {
        LoginBlock {
            subject,
            failures: 10,
            blocked_at: at(from),
            blocked_until: at(until),
        }
    }

    #[test]
    fn blocks_are_listed_while_under_way_and_lifted_on_request() {
        let conn = test_connection();
        let alice = insert_user(&conn, "alice", "a@example.com", "$phc", Plan::Plus, "t").unwrap();
        let client = Blocked::Client("192.0.2.7".parse().unwrap());
        let gone = Blocked::Account(alice + 99);
        record_blocks(
            &conn,
            &[
                block(Blocked::Account(alice), 0, 60),
                block(client, 5, 30),
                block(gone, 0, 60),
            ],
            at(0),
        )
        .unwrap();
        let now = |seconds| timestamp_at(at(seconds));
        let listed = list_blocks(&conn, &now(10)).unwrap();
        assert_eq!(
            listed.len(),
            2,
            "no row for an account that is gone: {listed:?}"
        );
        assert_eq!(listed[0].username.as_deref(), Some("alice"));
        assert_eq!(listed[1].client.as_deref(), Some("192.0.2.7"));
        assert_eq!(
            list_blocks(&conn, &now(40)).unwrap().len(),
            1,
            "the client's ended"
        );

        assert!(request_unlock(&conn, client, &now(40)).unwrap().is_none());
        let asked = request_unlock(&conn, Blocked::Account(alice), &now(10)).unwrap();
        assert_eq!(asked.unwrap().failures, 10);
        assert_eq!(unlock_requests(&conn).unwrap(), [Blocked::Account(alice)]);
        assert!(
            block_of(&conn, Blocked::Account(alice), &now(10))
                .unwrap()
                .unwrap()
                .unlock_requested_at
                .is_some()
        );

        // A new block before the service took the request: a new episode, not lifted.
        record_blocks(&conn, &[block(Blocked::Account(alice), 11, 71)], at(11)).unwrap();
        assert!(unlock_requests(&conn).unwrap().is_empty());
        forget(&conn, &[Blocked::Account(alice)]).unwrap();
        assert!(
            block_of(&conn, Blocked::Account(alice), &now(12))
                .unwrap()
                .is_some()
        );

        request_unlock(&conn, Blocked::Account(alice), &now(12)).unwrap();
        forget(&conn, &[Blocked::Account(alice)]).unwrap();
        assert!(
            block_of(&conn, Blocked::Account(alice), &now(12))
                .unwrap()
                .is_none()
        );
        assert_eq!(
            list_blocks(&conn, &now(0)).unwrap().len(),
            1,
            "the client's row stays"
        );
        record_blocks(&conn, &[], at(31)).unwrap();
        assert_eq!(
            clear_all(&conn).unwrap(),
            0,
            "ended blocks went with the next write"
        );
    }
}

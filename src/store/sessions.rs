//! Sign-in sessions of the account holder's pages: stored by the SHA-256 of their token,
//! ended by sign-out, by expiry, and (schema trigger `dashboard_sessions_end`) at once when the
//! user is disabled or their password changes.

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;
use super::users::{USER_COLUMNS, User, user_from_row};

/// The most sessions one user keeps: opening another ends the oldest. A stolen password
/// cannot fill the table, and a user signed in on many browsers loses the oldest first.
pub const MAX_SESSIONS_PER_USER: i64 = 20;

/// What a new session is, besides its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession<'a> {
    /// SHA-256 of the token, lower-case hex.
    pub token_hash: &'a str,
    /// Who signed in.
    pub user_id: i64,
    /// Now.
    pub created_at: &'a str,
    /// When it ends without a sign-out.
    pub expires_at: &'a str,
    /// The client's address, after the trusted proxies.
    pub source_ip: Option<&'a str>,
    /// The browser's `User-Agent`.
    pub user_agent: Option<&'a str>,
}

/// Stores a session, first removing every expired session and, beyond
/// [`MAX_SESSIONS_PER_USER`], the user's oldest.
pub fn open_session(conn: &Connection, session: &NewSession<'_>) -> Result<(), StoreError> {
    // Every user's expired sessions go here, so that the table never holds more than the live
    // ones and the last few sign-ins' worth (at most MAX_SESSIONS_PER_USER per user).
    remove_expired(conn, session.created_at)?;
    conn.execute(
        "DELETE FROM dashboard_sessions WHERE id IN (
             SELECT id FROM dashboard_sessions WHERE user_id = ?1
             ORDER BY id DESC LIMIT -1 OFFSET ?2)",
        params![session.user_id, MAX_SESSIONS_PER_USER - 1],
    )?;
    conn.execute(
        "INSERT INTO dashboard_sessions
             (token_hash, user_id, created_at, expires_at, source_ip, user_agent)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            session.token_hash,
            session.user_id,
            session.created_at,
            session.expires_at,
            session.source_ip,
            session.user_agent
        ],
    )?;
    Ok(())
}

/// The active user of the unexpired session with `token_hash`, if any.
pub fn session_user(
    conn: &Connection,
    token_hash: &str,
    now: &str,
) -> Result<Option<User>, StoreError> {
    let columns = USER_COLUMNS
        .split(", ")
        .map(|column| format!("u.{column}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {columns} FROM dashboard_sessions s JOIN users u ON u.id = s.user_id
         WHERE s.token_hash = ?1 AND s.expires_at > ?2 AND u.is_active"
    ))?;
    Ok(statement
        .query_row(params![token_hash, now], user_from_row)
        .optional()?)
}

/// Ends the session with `token_hash`; whether there was one.
pub fn end_session(conn: &Connection, token_hash: &str) -> Result<bool, StoreError> {
    Ok(conn.execute(
        "DELETE FROM dashboard_sessions WHERE token_hash = ?1",
        [token_hash],
    )? > 0)
}

/// Removes every expired session; how many.
pub fn remove_expired(conn: &Connection, now: &str) -> Result<usize, StoreError> {
    Ok(conn.execute(
        "DELETE FROM dashboard_sessions WHERE expires_at <= ?1",
        [now],
    )?)
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::model::Plan;
    use crate::store::test_connection;
    use crate::store::users::{insert_user, set_active, set_password_hash};

    fn hash(n: u32) -> String {
        format!("{n:064x}")
    }

    fn open(conn: &Connection, user_id: i64, n: u32, expires_at: &str) {
        open_session(
            conn,
            &NewSession {
                token_hash: &hash(n),
                user_id,
                created_at: "2026-01-01T00:00:00.000Z",
                expires_at,
                source_ip: Some("192.0.2.1"),
                user_agent: None,
            },
        )
        .unwrap();
    }

    const LATER: &str = "2026-01-02T00:00:00.000Z";
    const NOW: &str = "2026-01-01T00:00:01.000Z";

    #[test]
    fn sessions_sign_in_until_they_end_or_expire() {
        let conn = test_connection();
        let alice = insert_user(&conn, "alice", "a@example.com", "$phc", Plan::Plus, "t").unwrap();
        open(&conn, alice, 1, LATER);
        open(&conn, alice, 2, NOW);
        assert_eq!(
            session_user(&conn, &hash(1), NOW)
                .unwrap()
                .unwrap()
                .username,
            "alice"
        );
        assert!(
            session_user(&conn, &hash(2), NOW).unwrap().is_none(),
            "expired"
        );
        assert!(session_user(&conn, &hash(3), NOW).unwrap().is_none());
        assert!(end_session(&conn, &hash(1)).unwrap());
        assert!(!end_session(&conn, &hash(1)).unwrap());
        assert!(session_user(&conn, &hash(1), NOW).unwrap().is_none());
        assert_eq!(remove_expired(&conn, NOW).unwrap(), 1);
        // Opening a session removes everyone's expired ones.
        open(&conn, alice, 4, NOW);
        let bob = insert_user(&conn, "bob", "b@example.com", "$phc", Plan::Free, "t").unwrap();
        open_session(
            &conn,
            &NewSession {
                token_hash: &hash(5),
                user_id: bob,
                created_at: "2026-01-01T12:00:00.000Z",
                expires_at: "2026-01-03T00:00:00.000Z",
                source_ip: None,
                user_agent: Some("test"),
            },
        )
        .unwrap();
        assert!(session_user(&conn, &hash(5), NOW).unwrap().is_some());
        let left: i64 = conn
            .query_row("SELECT count(*) FROM dashboard_sessions", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(left, 1);
    }

    #[test]
    fn disabling_or_a_new_password_ends_every_session_of_the_user() {
        let conn = test_connection();
        let alice = insert_user(&conn, "alice", "a@example.com", "$phc", Plan::Plus, "t").unwrap();
        let bob = insert_user(&conn, "bob", "b@example.com", "$phc", Plan::Free, "t").unwrap();
        open(&conn, alice, 1, LATER);
        open(&conn, alice, 2, LATER);
        open(&conn, bob, 3, LATER);
        // The same hash written again (an unchanged password) ends nothing.
        set_password_hash(&conn, alice, "$phc", "t").unwrap();
        assert!(session_user(&conn, &hash(1), NOW).unwrap().is_some());
        set_password_hash(&conn, alice, "$phc2", "t").unwrap();
        assert!(session_user(&conn, &hash(1), NOW).unwrap().is_none());
        assert!(session_user(&conn, &hash(2), NOW).unwrap().is_none());
        assert!(session_user(&conn, &hash(3), NOW).unwrap().is_some());
        set_active(&conn, bob, false, "t").unwrap();
        let left: i64 = conn
            .query_row("SELECT count(*) FROM dashboard_sessions", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(left, 0);
        // Enabled again: the old token does not come back.
        set_active(&conn, bob, true, "t").unwrap();
        assert!(session_user(&conn, &hash(3), NOW).unwrap().is_none());
    }

    #[test]
    fn a_user_keeps_at_most_the_newest_sessions() {
        let conn = test_connection();
        let alice = insert_user(&conn, "alice", "a@example.com", "$phc", Plan::Plus, "t").unwrap();
        for n in 0..30 {
            open(&conn, alice, n, LATER);
        }
        let kept: i64 = conn
            .query_row("SELECT count(*) FROM dashboard_sessions", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(kept, MAX_SESSIONS_PER_USER);
        assert!(session_user(&conn, &hash(9), NOW).unwrap().is_none());
        assert!(session_user(&conn, &hash(29), NOW).unwrap().is_some());
    }
}

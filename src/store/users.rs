//! Users: accounts, their argon2id password hashes, plans and the active flag.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{StoreError, conflict_on_unique};
use crate::model::Plan;
pub use crate::model::account::User;

/// The columns [`user_from_row`] reads, in order.
pub(super) const USER_COLUMNS: &str =
    "id, username, email, password_hash, plan, is_active, created_at";

/// Reads a [`User`] from a row selected with [`USER_COLUMNS`].
pub(super) fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    let plan: String = row.get(4)?;
    Ok(User {
        id: row.get(0)?,
        username: row.get(1)?,
        email: row.get(2)?,
        password_hash: row.get(3)?,
        plan: plan.parse().map_err(|error: crate::model::InvalidValue| {
            rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, error.into())
        })?,
        is_active: row.get(5)?,
        created_at: row.get(6)?,
    })
}

/// Creates a user; `username` and `email` must be free (compared case-insensitively).
pub fn insert_user(
    conn: &Connection,
    username: &str,
    email: &str,
    password_hash: &str,
    plan: Plan,
    now: &str,
) -> Result<i64, StoreError> {
    conn.execute(
        "INSERT INTO users (username, email, password_hash, plan, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        params![username, email, password_hash, plan.as_str(), now],
    )
    .map_err(|error| {
        conflict_on_unique(error, || {
            format!("a user with username {username:?} or email {email:?} exists already")
        })
    })?;
    Ok(conn.last_insert_rowid())
}

/// The user whose username or email is `login`, case-insensitively.
///
/// Usernames never contain `@` and emails always do, so at most one row matches.
pub fn find_user_by_login(conn: &Connection, login: &str) -> Result<Option<User>, StoreError> {
    let column = if login.contains('@') {
        "email"
    } else {
        "username"
    };
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE {column} = ?1"
    ))?;
    Ok(statement.query_row([login], user_from_row).optional()?)
}

/// The user with `username`, or [`StoreError::NotFound`].
pub fn get_user(conn: &Connection, username: &str) -> Result<User, StoreError> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE username = ?1"
    ))?;
    statement
        .query_row([username], user_from_row)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("no user named {username:?}")))
}

/// The user with row id `user_id` (which must exist: callers got it from a foreign key).
pub fn get_user_by_id(conn: &Connection, user_id: i64) -> Result<User, StoreError> {
    let mut statement =
        conn.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))?;
    Ok(statement.query_row([user_id], user_from_row)?)
}

/// Sets a user's plan.
pub fn set_plan(conn: &Connection, user_id: i64, plan: Plan, now: &str) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE users SET plan = ?2, updated_at = ?3 WHERE id = ?1",
        params![user_id, plan.as_str(), now],
    )?;
    Ok(())
}

/// Replaces a user's password hash. Cached password checks die with the old hash.
pub fn set_password_hash(
    conn: &Connection,
    user_id: i64,
    password_hash: &str,
    now: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1",
        params![user_id, password_hash, now],
    )?;
    Ok(())
}

/// Enables or disables a user. A disabled user's passwords and keys are all refused.
pub fn set_active(
    conn: &Connection,
    user_id: i64,
    active: bool,
    now: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE users SET is_active = ?2, updated_at = ?3 WHERE id = ?1",
        params![user_id, active, now],
    )?;
    Ok(())
}

/// All users, by username.
pub fn list_users(conn: &Connection) -> Result<Vec<User>, StoreError> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {USER_COLUMNS} FROM users ORDER BY username"
    ))?;
    let users = statement
        .query_map([], user_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(users)
}

/// Removes user `user_id` with their keys and sessions: refused while they own DDNS domains,
/// unless `with_domains` (then those go too; their audit rows stay). The zones whose names
/// went, for cache purges.
pub fn remove_user(
    conn: &Connection,
    user_id: i64,
    with_domains: bool,
    now: &str,
) -> Result<Vec<String>, StoreError> {
    let zones: Vec<(i64, String)> = conn
        .prepare(
            "SELECT DISTINCT z.id, z.name FROM domains d JOIN zones z ON z.id = d.zone_id
             WHERE d.user_id = ?1",
        )?
        .query_map([user_id], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    if !zones.is_empty() && !with_domains {
        let count: i64 = conn.query_row(
            "SELECT count(*) FROM domains WHERE user_id = ?1",
            [user_id],
            |row| row.get(0),
        )?;
        return Err(StoreError::Conflict(format!(
            "the user owns {count} DDNS domains: remove them first, or pass --with-domains to \
             remove them with the user (their history stays)"
        )));
    }
    conn.execute("DELETE FROM domains WHERE user_id = ?1", [user_id])?;
    for (zone_id, _) in &zones {
        super::zones::bump_serial(conn, *zone_id, now)?;
    }
    let removed = conn.execute("DELETE FROM users WHERE id = ?1", [user_id])?;
    if removed == 0 {
        return Err(StoreError::NotFound("no such user".into()));
    }
    Ok(zones.into_iter().map(|(_, name)| name).collect())
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::store::test_connection;

    #[test]
    fn users_are_found_by_username_or_email_case_insensitively() {
        let conn = test_connection();
        let id = insert_user(&conn, "alice", "Alice@Example.com", "$phc", Plan::Plus, "t").unwrap();
        let by_name = find_user_by_login(&conn, "ALICE").unwrap().unwrap();
        assert_eq!(by_name.id, id);
        assert_eq!(by_name.plan, Plan::Plus);
        assert!(by_name.is_active);
        let by_email = find_user_by_login(&conn, "alice@example.COM")
            .unwrap()
            .unwrap();
        assert_eq!(by_email.id, id);
        assert!(find_user_by_login(&conn, "bob").unwrap().is_none());
    }

    #[test]
    fn usernames_and_emails_are_unique_whatever_the_case() {
        let conn = test_connection();
        insert_user(&conn, "alice", "alice@example.com", "$phc", Plan::Free, "t").unwrap();
        let same_email = insert_user(
            &conn,
            "alice2",
            "ALICE@example.com",
            "$phc",
            Plan::Free,
            "t",
        );
        assert!(matches!(same_email, Err(StoreError::Conflict(_))));
        let same_name = insert_user(&conn, "alice", "other@example.com", "$phc", Plan::Free, "t");
        assert!(matches!(same_name, Err(StoreError::Conflict(_))));
    }

    #[test]
    fn plan_and_password_change() {
        let conn = test_connection();
        let id = insert_user(&conn, "alice", "alice@example.com", "$old", Plan::Free, "t").unwrap();
        set_plan(&conn, id, Plan::Elite, "t2").unwrap();
        set_password_hash(&conn, id, "$new", "t2").unwrap();
        let user = get_user(&conn, "alice").unwrap();
        assert_eq!(user.plan, Plan::Elite);
        assert_eq!(user.password_hash, "$new");
        assert!(matches!(
            get_user(&conn, "bob"),
            Err(StoreError::NotFound(_))
        ));
        assert_eq!(list_users(&conn).unwrap().len(), 1);
    }
}

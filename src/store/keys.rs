//! API keys: stored as SHA-256 hashes with their scopes, prefix and usage times.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::users::{User, get_user_by_id};
use super::{StoreError, conflict_on_unique, timestamp_at};
pub use crate::model::account::ApiKey;

/// The columns [`key_from_row`] reads, in order, qualified for joins.
const KEY_COLUMNS: &str =
    "k.id, k.user_id, k.prefix, k.scopes, k.is_active, k.created_at, k.last_used_at";

/// Reads an [`ApiKey`] from the first columns of a row selected with [`KEY_COLUMNS`].
fn key_from_row(row: &Row<'_>) -> rusqlite::Result<ApiKey> {
    let scopes: String = row.get(3)?;
    Ok(ApiKey {
        id: row.get(0)?,
        user_id: row.get(1)?,
        prefix: row.get(2)?,
        scopes: serde_json::from_str(&scopes).map_err(|error| {
            rusqlite::Error::FromSqlConversionFailure(
                3,
                rusqlite::types::Type::Text,
                Box::new(error),
            )
        })?,
        is_active: row.get(4)?,
        created_at: row.get(5)?,
        last_used_at: row.get(6)?,
    })
}

/// The most key rows (active and revoked) an account keeps: a new key beyond them deletes the
/// oldest revoked ones, so that what every page view loads stays bounded however many keys
/// are created and revoked.
pub const MAX_KEYS_PER_ACCOUNT: i64 = 50;

/// Why a key was not created.
#[derive(Debug, thiserror::Error)]
pub enum KeyRefusal {
    /// The free plan has no API keys.
    #[error("API keys need the Plus, Pro or Elite plan")]
    FreePlan,
    /// Too many active keys.
    #[error("you have {0} active keys, the most allowed; revoke one first")]
    TooMany(i64),
    /// Keys are being created faster than [`MAX_KEYS_CREATED_PER_HOUR`].
    #[error("you created {0} keys in the last hour, the most allowed; try again later")]
    TooFast(i64),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The most active API keys a user may hold, however they were created.
pub const MAX_ACTIVE_KEYS: i64 = 20;

/// The most keys a user may create on the account pages in an hour (an admin is not paced): a router or two a day is the
/// legitimate pace; a script in a loop is stopped long before the rows add up.
pub const MAX_KEYS_CREATED_PER_HOUR: i64 = 10;

/// Who asks for a key: the account holder (on the pages: paced), or an admin (`key create`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCreator {
    /// The account holder, held to [`MAX_KEYS_CREATED_PER_HOUR`].
    Account,
    /// An admin.
    Admin,
}

/// A key to store: its owner, prefix, hash and scopes, and who asked.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// The owner.
    pub user_id: i64,
    /// The key's listed prefix.
    pub prefix: String,
    /// Its SHA-256, hex.
    pub hash: String,
    /// What it may do.
    pub scopes: Vec<String>,
    /// Who asked.
    pub by: KeyCreator,
}

/// Creates `key`, by the one rule every way in keeps: the owner's plan allows keys (read
/// here, inside the caller's transaction), they hold fewer than [`MAX_ACTIVE_KEYS`], an account
/// holder created fewer than [`MAX_KEYS_CREATED_PER_HOUR`] in the hour before `now`; their
/// keys revoked more than `retention` ago go first, and the rows stay at most
/// [`MAX_KEYS_PER_ACCOUNT`]. The new key's id.
pub fn create_key(
    conn: &Connection,
    key: &NewKey,
    now: std::time::SystemTime,
    retention: std::time::Duration,
) -> Result<i64, KeyRefusal> {
    let owner = get_user_by_id(conn, key.user_id)?;
    if !owner.plan.allows_api_keys() {
        return Err(KeyRefusal::FreePlan);
    }
    let active = count_active_keys(conn, key.user_id)?;
    if active >= MAX_ACTIVE_KEYS {
        return Err(KeyRefusal::TooMany(active));
    }
    if key.by == KeyCreator::Account {
        let hour_ago = timestamp_at(now - std::time::Duration::from_secs(3600));
        let recent = count_created_since(conn, key.user_id, &hour_ago)?;
        if recent >= MAX_KEYS_CREATED_PER_HOUR {
            return Err(KeyRefusal::TooFast(recent));
        }
    }
    prune_revoked(conn, Some(key.user_id), &timestamp_at(now - retention))?;
    Ok(insert_key(
        conn,
        key.user_id,
        &key.prefix,
        &key.hash,
        &key.scopes,
        &timestamp_at(now),
    )?)
}

/// Stores a new key for `user_id`, by prefix and hash; beyond [`MAX_KEYS_PER_ACCOUNT`] rows,
/// the account's oldest revoked keys go.
pub fn insert_key(
    conn: &Connection,
    user_id: i64,
    prefix: &str,
    hash: &str,
    scopes: &[String],
    now: &str,
) -> Result<i64, StoreError> {
    conn.execute(
        "INSERT INTO api_keys (user_id, prefix, key_hash, scopes, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            user_id,
            prefix,
            hash,
            serde_json::to_string(scopes).expect("strings serialise"),
            now
        ],
    )
    .map_err(|error| conflict_on_unique(error, || "API key collision; generate again".into()))?;
    let id = conn.last_insert_rowid();
    conn.prepare_cached(
        "DELETE FROM api_keys WHERE id IN (
             SELECT id FROM api_keys WHERE user_id = ?1 AND NOT is_active
             ORDER BY revoked_at, id
             LIMIT max(0, (SELECT count(*) FROM api_keys WHERE user_id = ?1) - ?2))",
    )?
    .execute(params![user_id, MAX_KEYS_PER_ACCOUNT])?;
    Ok(id)
}

/// Deletes the keys revoked before `before` (one account's, or everyone's); how many.
pub fn prune_revoked(
    conn: &Connection,
    user_id: Option<i64>,
    before: &str,
) -> Result<usize, StoreError> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM api_keys
             WHERE NOT is_active AND revoked_at < ?2 AND (?1 IS NULL OR user_id = ?1)",
        )?
        .execute(params![user_id, before])?)
}

/// Whether any key was revoked before `before` (a read, so that the periodic prune writes
/// only when there is something to delete).
pub fn any_revoked_before(conn: &Connection, before: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM api_keys WHERE NOT is_active AND revoked_at < ?1)",
        )?
        .query_row([before], |row| row.get(0))?)
}

/// How many keys `user_id` created at or after `since`.
pub fn count_created_since(
    conn: &Connection,
    user_id: i64,
    since: &str,
) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT count(*) FROM api_keys WHERE user_id = ?1 AND created_at >= ?2")?
        .query_row(params![user_id, since], |row| row.get(0))?)
}

/// The key with SHA-256 `hash` and its owner, active or not.
pub fn find_key_by_hash(
    conn: &Connection,
    hash: &str,
) -> Result<Option<(ApiKey, User)>, StoreError> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.key_hash = ?1"
    ))?;
    let Some(key) = statement.query_row([hash], key_from_row).optional()? else {
        return Ok(None);
    };
    let user = get_user_by_id(conn, key.user_id)?;
    Ok(Some((key, user)))
}

/// Records a successful authentication with key `key_id` at `now`; never moves the time back.
pub fn touch_key(conn: &Connection, key_id: i64, now: &str) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE api_keys SET last_used_at = ?2
         WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)",
    )?
    .execute(params![key_id, now])?;
    Ok(())
}

/// Keys with their owner's username, newest first; all users' or one user's.
pub fn list_keys(
    conn: &Connection,
    user_id: Option<i64>,
) -> Result<Vec<(ApiKey, String)>, StoreError> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {KEY_COLUMNS}, u.username
         FROM api_keys k JOIN users u ON u.id = k.user_id
         WHERE ?1 IS NULL OR k.user_id = ?1
         ORDER BY k.id DESC"
    ))?;
    let keys = statement
        .query_map([user_id], |row| Ok((key_from_row(row)?, row.get(7)?)))?
        .collect::<Result<_, _>>()?;
    Ok(keys)
}

/// Revokes the key whose hash is `hash` or, failing that, the one key whose prefix is `prefix`.
/// Returns the revoked key's prefix.
pub fn revoke_key(
    conn: &Connection,
    hash: &str,
    prefix: &str,
    now: &str,
) -> Result<String, StoreError> {
    let mut statement =
        conn.prepare_cached("SELECT id, prefix FROM api_keys WHERE key_hash = ?1 OR prefix = ?2")?;
    let matches: Vec<(i64, String)> = statement
        .query_map([hash, prefix], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let (id, prefix) = match matches.as_slice() {
        [] => {
            return Err(StoreError::NotFound(format!(
                "no API key matches {prefix:?}"
            )));
        }
        [one] => one.clone(),
        _ => {
            return Err(StoreError::Conflict(format!(
                "{} keys share the prefix {prefix:?}; give the whole key",
                matches.len()
            )));
        }
    };
    conn.execute(
        "UPDATE api_keys SET is_active = 0, revoked_at = coalesce(revoked_at, ?2) WHERE id = ?1",
        params![id, now],
    )?;
    Ok(prefix)
}

/// Revokes `user_id`'s key with row id `key_id`; whether the user has such a key (revoking a
/// revoked key again changes nothing and is no error).
pub fn revoke_own_key(
    conn: &Connection,
    user_id: i64,
    key_id: i64,
    now: &str,
) -> Result<bool, StoreError> {
    Ok(conn.execute(
        "UPDATE api_keys SET is_active = 0, revoked_at = coalesce(revoked_at, ?3)
         WHERE id = ?1 AND user_id = ?2",
        params![key_id, user_id, now],
    )? > 0)
}

/// How many active keys `user_id` has.
pub fn count_active_keys(conn: &Connection, user_id: i64) -> Result<i64, StoreError> {
    Ok(conn.query_row(
        "SELECT count(*) FROM api_keys WHERE user_id = ?1 AND is_active",
        [user_id],
        |row| row.get(0),
    )?)
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::model::Plan;
    use crate::store::test_connection;
    use crate::store::users::insert_user;

    #[test]
    fn keys_are_found_by_hash_and_revoked_by_prefix_or_hash() {
        let conn = test_connection();
        let alice =
            insert_user(&conn, "alice", "alice@example.com", "$phc", Plan::Plus, "t").unwrap();
        let scopes = vec!["domains:update".to_string()];
        insert_key(&conn, alice, "ak_aaaaaaaa", "hash-1", &scopes, "t").unwrap();
        insert_key(&conn, alice, "ak_bbbbbbbb", "hash-2", &scopes, "t").unwrap();

        let (key, owner) = find_key_by_hash(&conn, "hash-1").unwrap().unwrap();
        assert_eq!(owner.username, "alice");
        assert!(key.is_active && key.has_scope("domains:update") && !key.has_scope("domains:read"));
        assert!(find_key_by_hash(&conn, "nope").unwrap().is_none());

        touch_key(&conn, key.id, "t-used").unwrap();
        assert_eq!(
            revoke_key(&conn, "no-such-hash", "ak_aaaaaaaa", "t2").unwrap(),
            "ak_aaaaaaaa"
        );
        let (key, _) = find_key_by_hash(&conn, "hash-1").unwrap().unwrap();
        assert!(!key.is_active);
        assert_eq!(key.last_used_at.as_deref(), Some("t-used"));
        assert_eq!(
            revoke_key(&conn, "hash-2", "ak_whatever", "t2").unwrap(),
            "ak_bbbbbbbb"
        );
        assert!(matches!(
            revoke_key(&conn, "x", "ak_cccccccc", "t"),
            Err(StoreError::NotFound(_))
        ));
        assert_eq!(list_keys(&conn, Some(alice)).unwrap().len(), 2);
        assert_eq!(list_keys(&conn, Some(alice + 1)).unwrap().len(), 0);
    }

    #[test]
    fn users_revoke_only_their_own_keys() {
        let conn = test_connection();
        let alice =
            insert_user(&conn, "alice", "alice@example.com", "$phc", Plan::Plus, "t").unwrap();
        let bob = insert_user(&conn, "bob", "bob@example.com", "$phc", Plan::Plus, "t").unwrap();
        let scopes = vec!["domains:update".to_string()];
        let key = insert_key(&conn, alice, "ak_aaaaaaaa", "hash-1", &scopes, "t").unwrap();
        assert_eq!(count_active_keys(&conn, alice).unwrap(), 1);
        assert!(!revoke_own_key(&conn, bob, key, "t2").unwrap());
        assert_eq!(count_active_keys(&conn, alice).unwrap(), 1);
        assert!(revoke_own_key(&conn, alice, key, "t2").unwrap());
        assert!(revoke_own_key(&conn, alice, key, "t3").unwrap());
        assert_eq!(count_active_keys(&conn, alice).unwrap(), 0);
    }

    #[test]
    fn an_ambiguous_prefix_is_refused() {
        let conn = test_connection();
        let alice =
            insert_user(&conn, "alice", "alice@example.com", "$phc", Plan::Plus, "t").unwrap();
        insert_key(&conn, alice, "ak_same1234", "hash-1", &[], "t").unwrap();
        insert_key(&conn, alice, "ak_same1234", "hash-2", &[], "t").unwrap();
        assert!(matches!(
            revoke_key(&conn, "x", "ak_same1234", "t"),
            Err(StoreError::Conflict(_))
        ));
    }
}

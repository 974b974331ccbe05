//! API keys: stored as SHA-256 hashes with their scopes, prefix and usage times.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::users::{User, get_user_by_id};
use super::{StoreError, conflict_on_unique};

/// An API key row (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Row id.
    pub id: i64,
    /// Owner's user id.
    pub user_id: i64,
    /// Non-secret prefix, `ak_` and 8 characters.
    pub prefix: String,
    /// Scopes granted.
    pub scopes: Vec<String>,
    /// False once revoked.
    pub is_active: bool,
    /// Creation time.
    pub created_at: String,
    /// Last successful authentication with it.
    pub last_used_at: Option<String>,
}

impl ApiKey {
    /// Whether the key was granted `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|granted| granted == scope)
    }
}

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

//! TSIG keys (`tsig_keys`): created and revoked by the admin CLI, read by name by the RFC 2136
//! listener. An account's key follows the account's plan, as API keys do.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::users::get_user_by_id;
use super::{StoreError, conflict_on_unique};
use crate::model::rdata::StaticType;
use crate::model::tsig::{TsigAlgorithm, TsigKey, TsigScope};

/// A key to store.
#[derive(Debug, Clone)]
pub struct NewTsigKey {
    /// Its name (a DNS name, lower case, no final dot).
    pub name: String,
    /// Its algorithm.
    pub algorithm: TsigAlgorithm,
    /// Its secret, base64.
    pub secret: String,
    /// What it may change.
    pub scope: TsigScope,
}

/// The most active TSIG keys an account may hold (as many as API keys).
pub const MAX_ACTIVE_TSIG_KEYS: i64 = super::keys::MAX_ACTIVE_KEYS;

/// Stores `key` created at `now`: refused for an account whose plan has no keys, beyond
/// [`MAX_ACTIVE_TSIG_KEYS`], or under a name taken (revoked keys keep theirs: a name is never
/// reused for another secret). The new row's id.
pub fn create_tsig_key(conn: &Connection, key: &NewTsigKey, now: &str) -> Result<i64, StoreError> {
    let (user_id, zone_id, subtree, types) = match &key.scope {
        TsigScope::Account { user_id } => {
            let owner = get_user_by_id(conn, *user_id)?;
            if !owner.plan.allows_api_keys() {
                return Err(StoreError::Conflict(format!(
                    "user {} is on the free plan, and TSIG keys need plus, pro or elite, as API \
                     keys do; move them with `certadns-ddns user plan {} plus`",
                    owner.username, owner.username
                )));
            }
            let active: i64 = conn
                .prepare_cached("SELECT count(*) FROM tsig_keys WHERE user_id = ?1 AND is_active")?
                .query_row([user_id], |row| row.get(0))?;
            if active >= MAX_ACTIVE_TSIG_KEYS {
                return Err(StoreError::Conflict(format!(
                    "user {} holds {active} active TSIG keys, the most allowed; revoke one first",
                    owner.username
                )));
            }
            (Some(*user_id), None, None, None)
        }
        TsigScope::Zone {
            zone_id,
            subtree,
            types,
        } => (
            None,
            Some(*zone_id),
            subtree.clone(),
            Some(
                types
                    .iter()
                    .map(|kind| kind.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ),
    };
    conn.prepare_cached(
        "INSERT INTO tsig_keys (name, algorithm, secret, user_id, zone_id, subtree, types,
                                created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        key.name,
        key.algorithm.as_str(),
        key.secret,
        user_id,
        zone_id,
        subtree,
        types,
        now
    ])
    .map_err(|error| {
        conflict_on_unique(error, || {
            format!(
                "a TSIG key named {} exists already (revoked keys keep their names); choose \
                 another with --name",
                key.name
            )
        })
    })?;
    Ok(conn.last_insert_rowid())
}

/// The columns [`key_from_row`] reads.
const KEY_COLUMNS: &str = "id, name, algorithm, secret, user_id, zone_id, subtree, types,
     is_active, created_at, last_used_at";

/// Reads a [`TsigKey`] from a row of [`KEY_COLUMNS`].
fn key_from_row(row: &Row<'_>) -> rusqlite::Result<TsigKey> {
    let invalid = |index: usize, error: crate::model::InvalidValue| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, error.into())
    };
    let algorithm: String = row.get(2)?;
    let user_id: Option<i64> = row.get(4)?;
    let scope = match user_id {
        Some(user_id) => TsigScope::Account { user_id },
        None => {
            let types: String = row.get(7)?;
            TsigScope::Zone {
                zone_id: row.get(5)?,
                subtree: row.get(6)?,
                types: types
                    .split(',')
                    .map(str::parse::<StaticType>)
                    .collect::<Result<_, _>>()
                    .map_err(|error| invalid(7, error))?,
            }
        }
    };
    Ok(TsigKey {
        id: row.get(0)?,
        name: row.get(1)?,
        algorithm: algorithm.parse().map_err(|error| invalid(2, error))?,
        secret: row.get(3)?,
        scope,
        is_active: row.get(8)?,
        created_at: row.get(9)?,
        last_used_at: row.get(10)?,
    })
}

/// The active key named `name` (any case, a final dot ignored), if there is one.
pub fn find_active_tsig_key(conn: &Connection, name: &str) -> Result<Option<TsigKey>, StoreError> {
    let name = name.strip_suffix('.').unwrap_or(name);
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {KEY_COLUMNS} FROM tsig_keys WHERE name = ?1 AND is_active"
        ))?
        .query_row([name], key_from_row)
        .optional()?)
}

pub use crate::model::tsig::TsigKeyListing;

/// Every key, or `user_id`'s: accounts' keys by user, then zones' keys, each by name.
pub fn list_tsig_keys(
    conn: &Connection,
    user_id: Option<i64>,
) -> Result<Vec<TsigKeyListing>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT k.name, k.algorithm, u.username, z.name, k.subtree, k.types, k.is_active,
                k.created_at, k.last_used_at
         FROM tsig_keys k LEFT JOIN users u ON u.id = k.user_id
                          LEFT JOIN zones z ON z.id = k.zone_id
         WHERE ?1 IS NULL OR k.user_id = ?1
         ORDER BY u.username IS NULL, u.username, z.name, k.name",
    )?;
    let rows = statement
        .query_map([user_id], |row| {
            Ok(TsigKeyListing {
                name: row.get(0)?,
                algorithm: row.get(1)?,
                user: row.get(2)?,
                zone: row.get(3)?,
                subtree: row.get(4)?,
                types: row.get(5)?,
                active: row.get(6)?,
                created_at: row.get(7)?,
                last_used_at: row.get(8)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Revokes the key named `name` at `now`; whether there was an active one.
pub fn revoke_tsig_key(conn: &Connection, name: &str, now: &str) -> Result<bool, StoreError> {
    let name = name.strip_suffix('.').unwrap_or(name);
    Ok(conn
        .prepare_cached(
            "UPDATE tsig_keys SET is_active = 0, revoked_at = ?2 WHERE name = ?1 AND is_active",
        )?
        .execute(params![name, now])?
        > 0)
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::model::Plan;
    use crate::store::users::insert_user;
    use crate::store::{test_connection, test_zone};

    fn account_key(name: &str, user_id: i64) -> NewTsigKey {
        NewTsigKey {
            name: name.into(),
            algorithm: TsigAlgorithm::HmacSha256,
            secret: "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=".into(),
            scope: TsigScope::Account { user_id },
        }
    }

    #[test]
    fn keys_follow_the_plan_keep_their_names_and_are_found_while_active() {
        let conn = test_connection();
        let zone = test_zone(&conn);
        let alice = insert_user(&conn, "alice", "a@example.com", "$phc", Plan::Plus, "t").unwrap();
        let bob = insert_user(&conn, "bob", "b@example.com", "$phc", Plan::Free, "t").unwrap();
        create_tsig_key(&conn, &account_key("alice-home", alice), "t").unwrap();
        let refused = create_tsig_key(&conn, &account_key("bob-home", bob), "t").unwrap_err();
        assert!(refused.to_string().contains("free plan"), "{refused}");
        let taken = create_tsig_key(&conn, &account_key("ALICE-home", alice), "t").unwrap_err();
        assert!(taken.to_string().contains("exists already"), "{taken}");
        let zone_key = NewTsigKey {
            name: "external-dns".into(),
            scope: TsigScope::Zone {
                zone_id: zone,
                subtree: Some("k8s.dyn.example".into()),
                types: vec![StaticType::A, StaticType::Txt],
            },
            ..account_key("", 0)
        };
        create_tsig_key(&conn, &zone_key, "t").unwrap();

        let found = find_active_tsig_key(&conn, "Alice-Home.").unwrap().unwrap();
        assert_eq!(found.scope, TsigScope::Account { user_id: alice });
        let found = find_active_tsig_key(&conn, "external-dns")
            .unwrap()
            .unwrap();
        assert_eq!(found.scope, zone_key.scope);
        let listed = list_tsig_keys(&conn, None).unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].user.as_deref(), Some("alice"));
        assert_eq!(listed[1].types.as_deref(), Some("A,TXT"));
        assert_eq!(list_tsig_keys(&conn, Some(alice)).unwrap().len(), 1);

        assert!(revoke_tsig_key(&conn, "alice-home", "t2").unwrap());
        assert!(!revoke_tsig_key(&conn, "alice-home", "t3").unwrap());
        assert!(find_active_tsig_key(&conn, "alice-home").unwrap().is_none());
        let again = create_tsig_key(&conn, &account_key("alice-home", alice), "t").unwrap_err();
        assert!(again.to_string().contains("exists already"), "{again}");
    }
}

//! Schema migrations, tracked in `PRAGMA user_version` (the way cargo's `util/sqlite.rs` does it).
//!
//! [`MIGRATIONS`] is append-only: entry N (1-based) moves the schema from version N-1 to N.
//! A released entry is never edited, because databases in the field already ran it. All
//! pending migrations apply in one exclusive transaction: a crash halfway leaves the old
//! version, never a mix.

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

/// The migrations, oldest first. Entry 1 is `schema.sql`, the schema of record.
const MIGRATIONS: &[&str] = &[include_str!("../../schema.sql")];

/// Brings the database at `conn` up to the newest schema this build knows.
///
/// Refuses a database whose version is newer than any migration here, rather than running on a
/// schema it does not understand.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
    let current: i64 = tx.query_row("SELECT user_version FROM pragma_user_version", [], |row| {
        row.get(0)
    })?;
    let known = i64::try_from(MIGRATIONS.len()).expect("few migrations");
    if current > known {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known,
        });
    }
    let pending = usize::try_from(current).expect("user_version is never negative here");
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(pending) {
        tx.execute_batch(migration)?;
        tx.pragma_update(
            None,
            "user_version",
            i64::try_from(index + 1).expect("few migrations"),
        )?;
        tracing::info!(version = index + 1, "applied schema migration");
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn migrating_twice_is_a_no_op() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let version: i64 = conn
            .query_row("SELECT user_version FROM pragma_user_version", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(version, i64::try_from(MIGRATIONS.len()).unwrap());
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN
                 ('zones', 'users', 'api_keys', 'domains', 'domain_updates')",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(tables, 5);
    }

    #[test]
    fn a_newer_database_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        assert!(matches!(
            migrate(&mut conn),
            Err(StoreError::SchemaTooNew { found: 99, .. })
        ));
    }
}

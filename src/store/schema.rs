//! Schema migrations, tracked in `PRAGMA user_version` (the way cargo's `util/sqlite.rs` does it).
//!
//! `schema.sql` holds every migration in order, so that one file reads as the whole schema: the
//! text before the first `-- migration N: ...` line is migration 1, and each such line starts
//! migration N. It is append-only: a released migration is never edited, because databases in
//! the field already ran it. All pending migrations apply in one exclusive transaction: a crash
//! halfway leaves the old version, never a mix.

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

/// The schema of record, every migration in order.
const SCHEMA: &str = include_str!("../../schema.sql");

/// The line prefix that starts migration 2 and later in [`SCHEMA`].
const MARKER: &str = "-- migration ";

/// The migrations of [`SCHEMA`], oldest first.
pub(super) fn migrations() -> Vec<&'static str> {
    let mut migrations = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in SCHEMA.split_inclusive('\n') {
        if line.starts_with(MARKER) {
            migrations.push(&SCHEMA[start..offset]);
            start = offset;
        }
        offset += line.len();
    }
    migrations.push(&SCHEMA[start..]);
    migrations
}

/// Brings the database at `conn` up to the newest schema this build knows.
///
/// Refuses a database whose version is newer than any migration here, rather than running on a
/// schema it does not understand.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
    let current: i64 = tx.query_row("SELECT user_version FROM pragma_user_version", [], |row| {
        row.get(0)
    })?;
    let migrations = migrations();
    let known = i64::try_from(migrations.len()).expect("few migrations");
    if current > known {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known,
        });
    }
    let pending = usize::try_from(current).expect("user_version is never negative here");
    for (index, migration) in migrations.iter().enumerate().skip(pending) {
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
        assert_eq!(version, i64::try_from(migrations().len()).unwrap());
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
    fn migrations_are_numbered_in_order_and_a_version_1_database_gets_the_rest() {
        let migrations = migrations();
        assert!(migrations[0].contains("CREATE TABLE domain_updates"));
        for (index, migration) in migrations.iter().enumerate().skip(1) {
            assert!(
                migration.starts_with(&format!("{MARKER}{}: ", index + 1)),
                "migration {} starts with its marker: {migration:.40}",
                index + 1
            );
        }
        // A database made by a build that knew only migration 1.
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(migrations[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        migrate(&mut conn).unwrap();
        let episodes: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'abuse_episodes'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(episodes, 1);
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

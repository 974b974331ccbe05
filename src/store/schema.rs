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

/// What a migration that edits `sqlite_schema` by hand contains: SQLite's procedure for the
/// table changes `ALTER TABLE` cannot make (loosening a CHECK constraint).
const WRITABLE_SCHEMA: &str = "PRAGMA writable_schema = ON";

/// The end of SQLite's `writable_schema` procedure, after a migration edited `sqlite_schema`:
/// `schema_version` goes up by one, so that every connection (this one too) reads the new
/// definitions, and the edited schema must still read whole. `PRAGMA schema_version` takes a
/// literal only, hence this step in Rust rather than in `schema.sql`.
fn reload_schema(tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
    let version: i64 = tx.query_row("PRAGMA schema_version", [], |row| row.get(0))?;
    tx.pragma_update(None, "schema_version", version + 1)?;
    // Reads every definition again: an edit that broke one fails here, inside the
    // migration's transaction, and the file keeps its old schema.
    tx.query_row("SELECT count(*) FROM sqlite_schema", [], |row| {
        row.get::<_, i64>(0)
    })?;
    Ok(())
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
        if migration.contains(WRITABLE_SCHEMA) {
            reload_schema(&tx)?;
        }
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

    /// Migration 10 loosens `domain_updates.auth_method`'s CHECK in place: rows kept, the
    /// table not copied (same root page), 'tsig' taken at once on the migrating connection,
    /// anything else still refused.
    #[test]
    fn the_audit_trail_takes_tsig_without_being_copied() {
        let mut conn = Connection::open_in_memory().unwrap();
        let migrations = migrations();
        for migration in &migrations[..9] {
            conn.execute_batch(migration).unwrap();
        }
        conn.pragma_update(None, "user_version", 9).unwrap();
        let insert = |conn: &Connection, method: &str| {
            conn.execute(
                "INSERT INTO domain_updates (fqdn, record_type, new_ip, created_at, auth_method)
                 VALUES ('h.dyn.example', 'A', '192.0.2.1', 't', ?1)",
                [method],
            )
        };
        conn.execute_batch("BEGIN").unwrap();
        for _ in 0..5000 {
            insert(&conn, "basic").unwrap();
        }
        conn.execute_batch("COMMIT").unwrap();
        assert!(
            insert(&conn, "tsig").is_err(),
            "refused before the migration"
        );
        let root = |conn: &Connection| -> i64 {
            conn.query_row(
                "SELECT rootpage FROM sqlite_schema WHERE name = 'domain_updates'",
                [],
                |row| row.get(0),
            )
            .unwrap()
        };
        let before = root(&conn);
        migrate(&mut conn).unwrap();
        assert_eq!(root(&conn), before, "the table was not rebuilt");
        insert(&conn, "tsig").unwrap();
        assert!(insert(&conn, "telnet").is_err(), "the CHECK is still there");
        let (rows, named): (i64, i64) = conn
            .query_row(
                "SELECT count(*), count(tsig_key) FROM domain_updates",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        assert_eq!((rows, named), (5001, 0));
        // Migration 11, the same way: PTR and DHCID records.
        conn.execute(
            "INSERT INTO zones (name, nameservers, hostmaster, serial, created_at, updated_at)
             VALUES ('2.0.192.in-addr.arpa', '[\"ns1.example\"]', 'hostmaster.example', 1, 't', 't')",
            [],
        )
        .unwrap();
        for (record_type, taken) in [("PTR", true), ("DHCID", true), ("HINFO", false)] {
            let inserted = conn.execute(
                "INSERT INTO records (zone_id, name, type, content, ttl, created_at)
                 VALUES (1, '7.2.0.192.in-addr.arpa', ?1, 'x', 60, 't')",
                [record_type],
            );
            assert_eq!(inserted.is_ok(), taken, "{record_type}");
        }
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        // Another connection reads the new definition too: a file-backed copy.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let mut file = Connection::open(&path).unwrap();
        migrate(&mut file).unwrap();
        let other = Connection::open(&path).unwrap();
        insert(&other, "tsig").unwrap();
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

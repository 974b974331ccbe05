//! DNSSEC keys (`dnssec_keys`) and pdns's zone metadata (`zone_metadata`): written by pdns
//! through the remote backend (`pdnsutil`) and by `certadns-ddns zone secure`, read by pdns for
//! every signed answer (it caches them for 30 s and 60 s).

use std::collections::BTreeMap;

use rusqlite::{Connection, Row, params};

use super::StoreError;
use crate::model::dnssec::{KeyState, NewZoneKey, ZoneKey};

/// The most keys a zone holds: a CSK, or a KSK and a ZSK, each with its successor during a
/// rollover, leave room; anything beyond is a loop somewhere.
pub const MAX_KEYS_PER_ZONE: i64 = 16;

/// The most metadata kinds a zone holds, and values per kind.
pub const MAX_METADATA_KINDS: i64 = 64;
pub use crate::model::dnssec::MAX_METADATA_VALUES;

fn key_from_row(row: &Row<'_>) -> rusqlite::Result<ZoneKey> {
    Ok(ZoneKey {
        id: row.get(0)?,
        flags: row.get(1)?,
        active: row.get(2)?,
        published: row.get(3)?,
        content: row.get(4)?,
        created_at: row.get(5)?,
    })
}

/// The keys of zone `zone_id`, oldest first.
pub fn zone_keys(conn: &Connection, zone_id: i64) -> Result<Vec<ZoneKey>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT id, flags, active, published, content, created_at FROM dnssec_keys
         WHERE zone_id = ?1 ORDER BY id",
    )?;
    let keys = statement
        .query_map([zone_id], key_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(keys)
}

/// Adds `key` to zone `zone_id` at `now`; refused beyond [`MAX_KEYS_PER_ZONE`]. The new id.
pub fn add_key(
    conn: &Connection,
    zone_id: i64,
    key: &NewZoneKey,
    now: &str,
) -> Result<i64, StoreError> {
    let held: i64 = conn
        .prepare_cached("SELECT count(*) FROM dnssec_keys WHERE zone_id = ?1")?
        .query_row([zone_id], |row| row.get(0))?;
    if held >= MAX_KEYS_PER_ZONE {
        return Err(StoreError::Conflict(format!(
            "the zone holds {held} DNSSEC keys, the most allowed; remove one first"
        )));
    }
    conn.prepare_cached(
        "INSERT INTO dnssec_keys (zone_id, flags, active, published, content, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        zone_id,
        key.flags,
        key.active,
        key.published,
        key.content,
        now
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Sets a state of key `id` of zone `zone_id`; false when the zone has no such key.
pub fn set_key_state(
    conn: &Connection,
    zone_id: i64,
    id: i64,
    state: KeyState,
) -> Result<bool, StoreError> {
    let (sql, value) = match state {
        KeyState::Active(value) => (
            "UPDATE dnssec_keys SET active = ?3 WHERE zone_id = ?1 AND id = ?2",
            value,
        ),
        KeyState::Published(value) => (
            "UPDATE dnssec_keys SET published = ?3 WHERE zone_id = ?1 AND id = ?2",
            value,
        ),
    };
    Ok(conn
        .prepare_cached(sql)?
        .execute(params![zone_id, id, value])?
        == 1)
}

/// Removes key `id` of zone `zone_id`; false when the zone has no such key.
pub fn remove_key(conn: &Connection, zone_id: i64, id: i64) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("DELETE FROM dnssec_keys WHERE zone_id = ?1 AND id = ?2")?
        .execute(params![zone_id, id])?
        == 1)
}

/// Zone `zone_id`'s stored metadata, each kind's values in the order set.
pub fn zone_metadata(
    conn: &Connection,
    zone_id: i64,
) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT kind, content FROM zone_metadata WHERE zone_id = ?1 ORDER BY kind, position",
    )?;
    let mut metadata: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut rows = statement.query([zone_id])?;
    while let Some(row) = rows.next()? {
        metadata.entry(row.get(0)?).or_default().push(row.get(1)?);
    }
    Ok(metadata)
}

/// Replaces the values of `kind` (pdns's upper case) of zone `zone_id`; no values deletes the
/// kind, as pdns's `setDomainMetadata` means it. Refused beyond [`MAX_METADATA_KINDS`] kinds or
/// [`MAX_METADATA_VALUES`] values.
pub fn set_metadata(
    conn: &Connection,
    zone_id: i64,
    kind: &str,
    values: &[String],
) -> Result<(), StoreError> {
    if values.len() > MAX_METADATA_VALUES {
        return Err(StoreError::Conflict(format!(
            "{} values for {kind}, more than the {MAX_METADATA_VALUES} allowed",
            values.len()
        )));
    }
    let kind = kind.to_ascii_uppercase();
    conn.prepare_cached("DELETE FROM zone_metadata WHERE zone_id = ?1 AND kind = ?2")?
        .execute(params![zone_id, kind])?;
    if values.is_empty() {
        return Ok(());
    }
    let kinds: i64 = conn
        .prepare_cached("SELECT count(DISTINCT kind) FROM zone_metadata WHERE zone_id = ?1")?
        .query_row([zone_id], |row| row.get(0))?;
    if kinds >= MAX_METADATA_KINDS {
        return Err(StoreError::Conflict(format!(
            "the zone holds {kinds} metadata kinds, the most allowed"
        )));
    }
    let mut insert = conn.prepare_cached(
        "INSERT INTO zone_metadata (zone_id, kind, position, content) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (position, value) in (0_i64..).zip(values) {
        insert.execute(params![zone_id, kind, position, value])?;
    }
    Ok(())
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::model::dnssec::{KSK_FLAGS, SigningAlgorithm, ZSK_FLAGS};

    fn store_with_zone() -> (tempfile::TempDir, crate::store::Store, i64) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(
            &dir.path().join("t.db"),
            &crate::store::StoreOptions::default(),
        )
        .unwrap();
        let zone: crate::model::DomainName = "example.com".parse().unwrap();
        let ns: crate::model::DomainName = "ns1.example.com".parse().unwrap();
        let id = store
            .write(|tx| {
                let timers = crate::store::zones::SoaTimers::default();
                crate::store::zones::insert_zone(tx, &zone, &[ns], None, timers, "t")
            })
            .unwrap();
        (dir, store, id)
    }

    #[test]
    fn keys_are_added_changed_and_removed_per_zone_and_bounded() {
        let (_dir, store, zone) = store_with_zone();
        let key = |flags| NewZoneKey {
            flags,
            active: true,
            published: true,
            content: SigningAlgorithm::EcdsaP256Sha256.generate(),
        };
        let ksk = store
            .write(|tx| add_key(tx, zone, &key(KSK_FLAGS), "t"))
            .unwrap();
        let zsk = store
            .write(|tx| add_key(tx, zone, &key(ZSK_FLAGS), "t"))
            .unwrap();
        store
            .write(|tx| {
                assert!(set_key_state(tx, zone, zsk, KeyState::Active(false))?);
                assert!(set_key_state(tx, zone, zsk, KeyState::Published(false))?);
                assert!(!set_key_state(tx, zone + 1, zsk, KeyState::Active(true))?);
                assert!(!remove_key(tx, zone, 999)?);
                Ok(())
            })
            .unwrap();
        let keys = store.read(|conn| zone_keys(conn, zone)).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!((keys[0].id, keys[0].active), (ksk, true));
        assert_eq!((keys[1].active, keys[1].published), (false, false));
        assert!(store.write(|tx| remove_key(tx, zone, zsk)).unwrap());
        for _ in 1..MAX_KEYS_PER_ZONE {
            store
                .write(|tx| add_key(tx, zone, &key(ZSK_FLAGS), "t"))
                .unwrap();
        }
        assert!(matches!(
            store.write(|tx| add_key(tx, zone, &key(ZSK_FLAGS), "t")),
            Err(StoreError::Conflict(_))
        ));
        let bad = NewZoneKey {
            flags: 385,
            ..key(KSK_FLAGS)
        };
        store.write(|tx| remove_key(tx, zone, ksk)).unwrap();
        assert!(
            store.write(|tx| add_key(tx, zone, &bad, "t")).is_err(),
            "flags checked"
        );
    }

    #[test]
    fn metadata_is_replaced_per_kind_and_an_empty_set_deletes() {
        let (_dir, store, zone) = store_with_zone();
        store
            .write(|tx| {
                set_metadata(tx, zone, "nsec3param", &["1 0 0 -".into()])?;
                set_metadata(tx, zone, "NSEC3NARROW", &["1".into()])?;
                set_metadata(tx, zone, "TSIG-ALLOW-AXFR", &["b".into(), "a".into()])
            })
            .unwrap();
        let metadata = store.read(|conn| zone_metadata(conn, zone)).unwrap();
        assert_eq!(metadata["NSEC3PARAM"], ["1 0 0 -"]);
        assert_eq!(metadata["TSIG-ALLOW-AXFR"], ["b", "a"], "order kept");
        store
            .write(|tx| set_metadata(tx, zone, "NSEC3NARROW", &[]))
            .unwrap();
        let metadata = store.read(|conn| zone_metadata(conn, zone)).unwrap();
        assert!(!metadata.contains_key("NSEC3NARROW"));
        let many = vec![String::new(); MAX_METADATA_VALUES + 1];
        assert!(
            store
                .write(|tx| set_metadata(tx, zone, "X", &many))
                .is_err()
        );
    }
}

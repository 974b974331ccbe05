//! Zones: the apexes we are authoritative for, their SOA fields and name servers.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{StoreError, conflict_on_unique};
use crate::model::DomainName;
pub use crate::model::zone::Zone;

/// The columns [`zone_from_row`] reads, in order.
const ZONE_COLUMNS: &str =
    "id, name, nameservers, hostmaster, serial, refresh, retry, expire, minimum, ttl,
    created_at, notified_serial, also_notify";

/// Reads a [`Zone`] from a row selected with [`ZONE_COLUMNS`].
fn zone_from_row(row: &Row<'_>) -> rusqlite::Result<Zone> {
    let nameservers: String = row.get(2)?;
    let also_notify: String = row.get(12)?;
    Ok(Zone {
        id: row.get(0)?,
        name: row.get(1)?,
        nameservers: serde_json::from_str(&nameservers).map_err(|error| {
            rusqlite::Error::FromSqlConversionFailure(
                2,
                rusqlite::types::Type::Text,
                Box::new(error),
            )
        })?,
        hostmaster: row.get(3)?,
        serial: row.get(4)?,
        refresh: row.get(5)?,
        retry: row.get(6)?,
        expire: row.get(7)?,
        minimum: row.get(8)?,
        ttl: row.get(9)?,
        created_at: row.get(10)?,
        notified_serial: row.get(11)?,
        also_notify: serde_json::from_str(&also_notify).map_err(|error| {
            rusqlite::Error::FromSqlConversionFailure(
                12,
                rusqlite::types::Type::Text,
                Box::new(error),
            )
        })?,
    })
}

/// The first serial of a new zone: today as `YYYYMMDD01`, the usual convention, so serials of
/// zones made on different days still sort by age. From then on each change adds one.
pub fn initial_serial() -> u32 {
    let today = time::OffsetDateTime::now_utc().date();
    let date = u32::try_from(today.year()).expect("a year after 0") * 10_000
        + u32::from(u8::from(today.month())) * 100
        + u32::from(today.day());
    date * 100 + 1
}

/// The SOA timers of a zone and the TTL of its SOA and NS records, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoaTimers {
    /// How often secondaries check the serial.
    pub refresh: u32,
    /// How soon secondaries retry a failed check.
    pub retry: u32,
    /// How long secondaries keep serving without reaching the primary.
    pub expire: u32,
    /// Negative-caching TTL (RFC 2308): how long resolvers remember that a name does not
    /// exist. Short, because DDNS names appear at any time.
    pub minimum: u32,
    /// TTL of the SOA and NS records.
    pub ttl: u32,
}

impl Default for SoaTimers {
    fn default() -> Self {
        Self {
            refresh: 10800,
            retry: 3600,
            expire: 604_800,
            minimum: 60,
            ttl: 3600,
        }
    }
}

/// Creates a zone; its hostmaster defaults to `hostmaster.<zone>`.
pub fn insert_zone(
    conn: &Connection,
    name: &DomainName,
    nameservers: &[DomainName],
    hostmaster: Option<&DomainName>,
    timers: SoaTimers,
    now: &str,
) -> Result<i64, StoreError> {
    let hostmaster = hostmaster.map_or_else(|| format!("hostmaster.{name}"), ToString::to_string);
    let nameservers: Vec<&str> = nameservers.iter().map(DomainName::as_str).collect();
    conn.execute(
        "INSERT INTO zones (name, nameservers, hostmaster, serial, refresh, retry, expire, minimum,
                            ttl, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
        params![
            name.as_str(),
            serde_json::to_string(&nameservers).expect("strings serialise"),
            hostmaster,
            initial_serial(),
            timers.refresh,
            timers.retry,
            timers.expire,
            timers.minimum,
            timers.ttl,
            now
        ],
    )
    .map_err(|error| conflict_on_unique(error, || format!("zone {name} exists already")))?;
    Ok(conn.last_insert_rowid())
}

/// The zone with row id `zone_id`, if any.
pub fn get_zone_by_id(conn: &Connection, zone_id: i64) -> Result<Option<Zone>, StoreError> {
    let mut statement =
        conn.prepare_cached(&format!("SELECT {ZONE_COLUMNS} FROM zones WHERE id = ?1"))?;
    Ok(statement.query_row([zone_id], zone_from_row).optional()?)
}

/// The apex of zone `zone_id` (an error when there is no such zone).
pub fn apex_of(conn: &Connection, zone_id: i64) -> Result<String, StoreError> {
    Ok(conn
        .prepare_cached("SELECT name FROM zones WHERE id = ?1")?
        .query_row([zone_id], |row| row.get(0))?)
}

/// The zone whose apex is exactly `name` (lower case, no final dot), if any.
pub fn get_zone_by_name(conn: &Connection, name: &str) -> Result<Option<Zone>, StoreError> {
    let mut statement =
        conn.prepare_cached(&format!("SELECT {ZONE_COLUMNS} FROM zones WHERE name = ?1"))?;
    Ok(statement.query_row([name], zone_from_row).optional()?)
}

/// The zone named `name`, or [`StoreError::NotFound`] saying so.
pub fn get_zone(conn: &Connection, name: &DomainName) -> Result<Zone, StoreError> {
    get_zone_by_name(conn, name.as_str())?
        .ok_or_else(|| StoreError::NotFound(format!("no zone named {name}")))
}

/// The zones whose serial changed since secondaries were last notified (pdns's
/// getUpdatedMasters).
pub fn list_updated_zones(conn: &Connection) -> Result<Vec<Zone>, StoreError> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {ZONE_COLUMNS} FROM zones WHERE serial != notified_serial ORDER BY name"
    ))?;
    let zones = statement
        .query_map([], zone_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(zones)
}

/// Records that secondaries of zone `zone_id` were notified of `serial` (pdns's setNotified).
/// Returns false when there is no such zone.
pub fn set_notified(conn: &Connection, zone_id: i64, serial: u32) -> Result<bool, StoreError> {
    let changed = conn
        .prepare_cached("UPDATE zones SET notified_serial = ?2 WHERE id = ?1")?
        .execute(params![zone_id, serial])?;
    Ok(changed > 0)
}

/// Replaces the zone's list of secondaries to notify (already validated).
pub fn set_also_notify(
    conn: &Connection,
    zone_id: i64,
    also_notify: &[String],
    now: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE zones SET also_notify = ?2, updated_at = ?3 WHERE id = ?1",
        params![
            zone_id,
            serde_json::to_string(also_notify).expect("strings serialise"),
            now
        ],
    )?;
    Ok(())
}

/// All zones, by name.
pub fn list_zones(conn: &Connection) -> Result<Vec<Zone>, StoreError> {
    let mut statement =
        conn.prepare_cached(&format!("SELECT {ZONE_COLUMNS} FROM zones ORDER BY name"))?;
    let zones = statement
        .query_map([], zone_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(zones)
}

/// The most specific zone that `name` (lower case, no final dot) lies in (`a.b.example` is in
/// `b.example` before `example`), if any.
pub fn find_enclosing_zone(conn: &Connection, name: &str) -> Result<Option<Zone>, StoreError> {
    let mut statement =
        conn.prepare_cached(&format!("SELECT {ZONE_COLUMNS} FROM zones WHERE name = ?1"))?;
    nearest_suffix(name, |suffix| {
        Ok(statement.query_row([suffix], zone_from_row).optional()?)
    })
}

/// How many domains each zone holds, by zone id (for sizing what is loaded).
pub fn domain_counts(conn: &Connection) -> Result<Vec<(i64, usize)>, StoreError> {
    let mut statement = conn.prepare("SELECT zone_id, count(*) FROM domains GROUP BY zone_id")?;
    let counts = statement
        .query_map([], |row| Ok((row.get(0)?, row.get::<_, i64>(1)?)))?
        .map(|row| row.map(|(id, count)| (id, usize::try_from(count).unwrap_or(0))))
        .collect::<Result<_, _>>()?;
    Ok(counts)
}

/// The first of `name` and its parents, nearest first, for which `find` finds something.
pub fn nearest_suffix<T>(
    name: &str,
    mut find: impl FnMut(&str) -> Result<Option<T>, StoreError>,
) -> Result<Option<T>, StoreError> {
    let mut suffix = name;
    loop {
        if let Some(found) = find(suffix)? {
            return Ok(Some(found));
        }
        match suffix.split_once('.') {
            Some((_, parent)) => suffix = parent,
            None => return Ok(None),
        }
    }
}

/// Adds one to a zone's serial: called in the transaction of every change to its records, so
/// secondaries and caches see a new version. Wraps per RFC 1982 past 2^32 - 1.
pub fn bump_serial(conn: &Connection, zone_id: i64, now: &str) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE zones SET serial = CASE WHEN serial >= 4294967295 THEN 1 ELSE serial + 1 END,
                          updated_at = ?2
         WHERE id = ?1",
        params![zone_id, now],
    )?;
    Ok(())
}

/// What removing a zone took with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoneRemoval {
    /// DDNS domains removed (their audit rows stay).
    pub domains: usize,
    /// Static records removed.
    pub records: usize,
}

/// Removes `zone`: refused while it holds DDNS domains or static records, unless
/// `with_contents` (then they go with it; the domains' audit rows stay, their `domain_id`
/// cleared).
pub fn remove_zone(
    conn: &Connection,
    zone: &Zone,
    with_contents: bool,
) -> Result<ZoneRemoval, StoreError> {
    let count = |sql: &str| -> Result<usize, StoreError> {
        let n: i64 = conn.query_row(sql, [zone.id], |row| row.get(0))?;
        Ok(usize::try_from(n).unwrap_or(0))
    };
    let removal = ZoneRemoval {
        domains: count("SELECT count(*) FROM domains WHERE zone_id = ?1")?,
        records: count("SELECT count(*) FROM records WHERE zone_id = ?1")?,
    };
    if (removal.domains > 0 || removal.records > 0) && !with_contents {
        return Err(StoreError::Conflict(format!(
            "zone {} holds {} DDNS domains and {} static records: remove them first, or pass \
             --with-domains to remove them with the zone (their history stays)",
            zone.name, removal.domains, removal.records
        )));
    }
    conn.execute(
        "UPDATE domains SET follows = NULL WHERE follows IN
             (SELECT fqdn FROM domains WHERE zone_id = ?1) AND zone_id != ?1",
        [zone.id],
    )?;
    conn.execute("DELETE FROM domains WHERE zone_id = ?1", [zone.id])?;
    conn.execute("DELETE FROM zones WHERE id = ?1", [zone.id])?;
    Ok(removal)
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::store::test_connection;
    use crate::store::test_zone;

    fn name(text: &str) -> DomainName {
        text.parse().unwrap()
    }

    #[test]
    fn zones_are_created_listed_and_unique() {
        let conn = test_connection();
        insert_zone(
            &conn,
            &name("dyn.example"),
            &[name("ns1.example"), name("ns2.example")],
            None,
            SoaTimers::default(),
            "t",
        )
        .unwrap();
        let zones = list_zones(&conn).unwrap();
        assert_eq!(zones.len(), 1);
        assert_eq!(zones[0].nameservers, ["ns1.example", "ns2.example"]);
        assert_eq!(zones[0].hostmaster, "hostmaster.dyn.example");
        assert_eq!(zones[0].serial % 100, 1);
        let again = insert_zone(
            &conn,
            &name("DYN.example"),
            &[name("ns1.example")],
            None,
            SoaTimers::default(),
            "t",
        );
        assert!(matches!(again, Err(StoreError::Conflict(_))));
    }

    #[test]
    fn the_most_specific_zone_encloses() {
        let conn = test_connection();
        insert_zone(
            &conn,
            &name("example"),
            &[name("ns.example")],
            None,
            SoaTimers::default(),
            "t",
        )
        .unwrap();
        test_zone(&conn);
        let zone = |text: &str| {
            find_enclosing_zone(&conn, name(text).as_str())
                .unwrap()
                .map(|z| z.name)
        };
        assert_eq!(zone("a.dyn.example").as_deref(), Some("dyn.example"));
        assert_eq!(zone("dyn.example").as_deref(), Some("dyn.example"));
        assert_eq!(zone("a.other.example").as_deref(), Some("example"));
        assert_eq!(zone("a.elsewhere"), None);
    }

    #[test]
    fn serial_increases_and_wraps() {
        let conn = test_connection();
        let id = test_zone(&conn);
        let serial = |conn: &Connection| -> u32 {
            conn.query_row("SELECT serial FROM zones WHERE id = ?1", [id], |r| r.get(0))
                .unwrap()
        };
        let first = serial(&conn);
        bump_serial(&conn, id, "t2").unwrap();
        assert_eq!(serial(&conn), first + 1);
        conn.execute("UPDATE zones SET serial = 4294967295", [])
            .unwrap();
        bump_serial(&conn, id, "t3").unwrap();
        assert_eq!(serial(&conn), 1);
    }
}

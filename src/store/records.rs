//! What a zone serves: its SOA and apex NS set (from `zones`), the admin's static records
//! (`records`) and the DDNS addresses (`domains`, TTL by the owner's plan).
//!
//! [`records_at`] and [`zone_records`] are the queries behind the PowerDNS backend's `lookup`
//! and `list`; they read the tables as they are at that moment, so a committed update is what
//! the very next query sees. Names are compared case-insensitively (the columns are NOCASE and
//! callers pass lower case).

use std::ops::ControlFlow;

use rusqlite::{Connection, params};

use super::zones::{Zone, bump_serial};
use super::{StoreError, conflict_on_unique};
use crate::model::dnssec::NsecChain;
use crate::model::rdata::{ServedType, StaticType};
pub use crate::model::zone::{RecordSource, ServedRecord};
use crate::model::{Plan, RecordType};

impl Zone {
    /// The SOA content: `mname rname serial refresh retry expire minimum`.
    pub fn soa_content(&self) -> String {
        let mname = self.nameservers.first().map_or("", String::as_str);
        format!(
            "{mname}. {}. {} {} {} {} {}",
            self.hostmaster, self.serial, self.refresh, self.retry, self.expire, self.minimum
        )
    }

    /// The records the zone row itself holds: the SOA, then the apex NS set.
    pub fn apex_records(&self) -> Vec<ServedRecord> {
        let record = |record_type: ServedType, content: String| ServedRecord {
            name: self.name.clone(),
            record_type,
            content,
            ttl: self.ttl,
            source: RecordSource::Zone,
        };
        let ns = ServedType::Stored(StaticType::Ns);
        std::iter::once(record(ServedType::Soa, self.soa_content()))
            .chain(
                self.nameservers
                    .iter()
                    .map(|name| record(ns, format!("{name}."))),
            )
            .collect()
    }
}

/// Every record at `name` (lower case, no final dot) in `zone`: the SOA and NS when `name` is
/// the apex, static records, then DDNS addresses.
pub fn records_at(
    conn: &Connection,
    zone: &Zone,
    name: &str,
) -> Result<Vec<ServedRecord>, StoreError> {
    let mut records = if name == zone.name {
        zone.apex_records()
    } else {
        Vec::new()
    };
    records.extend(stored_records_at(conn, zone.id, name)?);
    Ok(records)
}

/// The records at `name` in zone `zone_id` that rows of their own hold (see [`each_stored`]).
/// The apex SOA and NS come from the zone row, see [`records_at`].
pub fn stored_records_at(
    conn: &Connection,
    zone_id: i64,
    name: &str,
) -> Result<Vec<ServedRecord>, StoreError> {
    let mut records = Vec::new();
    each_stored(conn, Scope::Name { zone_id, name }, |_, record| {
        records.push(record);
    })?;
    Ok(records)
}

/// Whether zone `zone_id` serves any name below `name` (see [`each_stored`]): an empty
/// non-terminal when `name` itself holds nothing (RFC 8020: NODATA, not NXDOMAIN). A scan of
/// the zone's names: the served index answers this from memory, and SQLite is read only while
/// that index loads.
pub fn has_names_below(conn: &Connection, zone_id: i64, name: &str) -> Result<bool, StoreError> {
    let escaped: String = name
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    let pattern = format!("%.{escaped}");
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM records WHERE zone_id = ?1 AND name LIKE ?2 ESCAPE '\\')
                 OR EXISTS (SELECT 1 FROM domains WHERE zone_id = ?1 AND ip IS NOT NULL
                                                    AND fqdn LIKE ?2 ESCAPE '\\')
                 OR EXISTS (SELECT 1 FROM acme_challenges WHERE zone_id = ?1
                                                            AND name LIKE ?2 ESCAPE '\\')",
        )?
        .query_row(rusqlite::params![zone_id, pattern], |row| row.get(0))?)
}

/// The NSEC chain of `zone` (see [`NsecChain`]), from every name [`each_stored`] serves.
/// Reads the whole zone: the served index keeps its chain in memory instead.
pub fn nsec_chain(conn: &Connection, zone: &Zone) -> Result<NsecChain, StoreError> {
    let mut names: std::collections::HashMap<String, bool> = std::collections::HashMap::new();
    names.insert(zone.name.clone(), true);
    each_stored(conn, Scope::Zone(zone.id), |_, record| {
        let ns = record.record_type == ServedType::Stored(StaticType::Ns);
        *names.entry(record.name).or_default() |= ns;
    })?;
    Ok(NsecChain::build(
        &zone.name,
        names.iter().map(|(name, ns)| (name.as_str(), *ns)),
    ))
}

/// The whole zone, for AXFR: the SOA first, then the apex NS set, then the stored records
/// (see [`each_stored`]).
pub fn zone_records(conn: &Connection, zone: &Zone) -> Result<Vec<ServedRecord>, StoreError> {
    let mut records = zone.apex_records();
    each_stored(conn, Scope::Zone(zone.id), |_, record| records.push(record))?;
    Ok(records)
}

/// Which stored records [`each_stored`] reads.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Every zone (the served index loads so).
    All,
    /// One zone (a listing for AXFR).
    Zone(i64),
    /// One name of one zone (a lookup, or a change to re-read).
    Name {
        /// The zone's row id.
        zone_id: i64,
        /// The owner name.
        name: &'a str,
    },
}

/// What DNS answers from rows of their own, in one place, for every reader (lookups on SQLite,
/// the served index's load and its deltas, zone listings): static records, then the DDNS
/// addresses that have one, with the TTL of their owner's plan, then the ACME challenge values
/// (TXT). Hands each to `each` with its zone's id, statics first, then DDNS, then challenges;
/// at any one name, statics in the order they were added, DDNS by type and challenges in the
/// order they were set, so that readers which group by name keep that order without sorting.
pub fn each_stored(
    conn: &Connection,
    scope: Scope<'_>,
    mut each: impl FnMut(i64, ServedRecord),
) -> Result<(), StoreError> {
    let _never_stopped = try_each_stored(conn, scope, |zone_id, record| {
        each(zone_id, record);
        ControlFlow::Continue(())
    })?;
    Ok(())
}

/// [`each_stored`], stopping as soon as `each` says so (a zone transfer whose secondary went
/// away): whether it was stopped.
pub fn try_each_stored(
    conn: &Connection,
    scope: Scope<'_>,
    mut each: impl FnMut(i64, ServedRecord) -> ControlFlow<()>,
) -> Result<ControlFlow<()>, StoreError> {
    macro_rules! statics {
        ($tail:literal) => {
            concat!(
                "SELECT name, type, content, ttl, zone_id FROM records",
                $tail
            )
        };
    }
    macro_rules! challenges {
        ($tail:literal) => {
            concat!(
                "SELECT name, value, NULL, NULL, zone_id FROM acme_challenges",
                $tail
            )
        };
    }
    macro_rules! dynamic {
        ($tail:literal) => {
            concat!(
                "SELECT d.fqdn, d.record_type, d.ip, u.plan, d.zone_id
                 FROM domains d JOIN users u ON u.id = d.user_id WHERE d.ip IS NOT NULL",
                $tail
            )
        };
    }
    let (statics, dynamic, challenges) = match scope {
        Scope::All => (
            statics!(" ORDER BY name, id"),
            dynamic!(" ORDER BY d.fqdn, d.record_type"),
            challenges!(" ORDER BY name, id"),
        ),
        Scope::Zone(_) => (
            statics!(" WHERE zone_id = ?1 ORDER BY name, id"),
            dynamic!(" AND d.zone_id = ?1 ORDER BY d.fqdn, d.record_type"),
            challenges!(" WHERE zone_id = ?1 ORDER BY name, id"),
        ),
        Scope::Name { .. } => (
            statics!(" WHERE zone_id = ?1 AND name = ?2 ORDER BY id"),
            dynamic!(" AND +d.zone_id = ?1 AND d.fqdn = ?2 ORDER BY d.record_type"),
            challenges!(" WHERE +zone_id = ?1 AND name = ?2 ORDER BY id"),
        ),
    };
    let params: Vec<&dyn rusqlite::ToSql> = match &scope {
        Scope::All => vec![],
        Scope::Zone(zone_id) => vec![zone_id],
        Scope::Name { zone_id, name } => vec![zone_id, name],
    };
    for (sql, from_row) in [
        (statics, static_from_row as fn(&rusqlite::Row<'_>) -> _),
        (dynamic, dynamic_from_row),
        (challenges, challenge_from_row),
    ] {
        let mut statement = conn.prepare_cached(sql)?;
        let mut rows = statement.query(params.as_slice())?;
        while let Some(row) = rows.next()? {
            if each(row.get(4)?, from_row(row)?).is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
    }
    Ok(ControlFlow::Continue(()))
}

/// Reads a static record row (`name, type, content, ttl`).
fn static_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ServedRecord> {
    let record_type: StaticType = parsed(row, 1)?;
    Ok(ServedRecord {
        name: row.get(0)?,
        record_type: ServedType::Stored(record_type),
        content: row.get(2)?,
        ttl: row.get(3)?,
        source: RecordSource::Static,
    })
}

/// Reads a DDNS row (`fqdn, record_type, ip, plan`); the TTL follows the plan.
fn dynamic_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ServedRecord> {
    let plan: Plan = parsed(row, 3)?;
    let record_type: RecordType = parsed(row, 1)?;
    Ok(ServedRecord {
        name: row.get(0)?,
        record_type: ServedType::Stored(record_type.into()),
        content: row.get(2)?,
        ttl: plan.ttl(),
        source: RecordSource::Dynamic,
    })
}

/// The TTL of challenge values: short, so that a retried validation soon sees a new value
/// through resolvers that cached the old one (the value is purged from pdns's caches anyway).
pub const CHALLENGE_TTL: u32 = 60;

/// Reads a challenge row (`name, value`): a TXT record of one string.
fn challenge_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ServedRecord> {
    let value: String = row.get(1)?;
    Ok(ServedRecord {
        name: row.get(0)?,
        record_type: ServedType::Stored(StaticType::Txt),
        content: format!("\"{value}\""),
        ttl: CHALLENGE_TTL,
        source: RecordSource::Challenge,
    })
}

/// Column `index` of `row`, text parsed as a `T`: a value no writer of this program stores
/// (a hand edit) is a conversion error, reported like SQLite's own.
pub(super) fn parsed<T>(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<T>
where
    T: std::str::FromStr<Err = crate::model::InvalidValue>,
{
    let text: String = row.get(index)?;
    text.parse().map_err(|error: crate::model::InvalidValue| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, error.into())
    })
}

/// Whether a DDNS domain of a type is at a name (see [`TYPES_AT`] for the `+`).
pub(super) const FITS_DYNAMIC: &str =
    "SELECT EXISTS (SELECT 1 FROM domains WHERE +zone_id = ?1 AND fqdn = ?2 AND record_type = ?3)";

/// See [`types_at`]. `+zone_id`: a zone's index would have SQLite read every domain of the
/// zone (200 ms at a million, with the write lock held); the name's index finds one or two.
pub(super) const TYPES_AT: &str = "SELECT type FROM records WHERE zone_id = ?1 AND name = ?2
     UNION ALL
     SELECT record_type FROM domains WHERE +zone_id = ?1 AND fqdn = ?2";

/// The record types already at `name` in `zone_id`, static and DDNS together.
pub(super) fn types_at(
    conn: &Connection,
    zone_id: i64,
    name: &str,
) -> Result<Vec<String>, StoreError> {
    let mut statement = conn.prepare_cached(TYPES_AT)?;
    let types = statement
        .query_map(params![zone_id, name], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(types)
}

/// Refuses a record of `record_type` at `name` that DNS or this service would not serve well:
/// a CNAME beside anything else (RFC 1034 §3.6.2) or at the apex, apex NS (the zone's own set
/// comes from `zone add --ns`), and a static address where a DDNS domain of that type is.
pub fn check_record_fits(
    conn: &Connection,
    zone: &Zone,
    name: &str,
    record_type: &str,
) -> Result<(), StoreError> {
    let existing = types_at(conn, zone.id, name)?;
    let is_apex = name == zone.name;
    let refuse = |why: String| Err(StoreError::Conflict(why));
    if record_type == "CNAME" && (is_apex || !existing.is_empty()) {
        return refuse(format!(
            "{name} already has records; a CNAME must be the only record at its name"
        ));
    }
    if existing.iter().any(|t| t == "CNAME") {
        return refuse(format!(
            "{name} has a CNAME, which must be the only record at its name"
        ));
    }
    if record_type == "NS" && is_apex {
        return refuse(format!(
            "the NS set of {name} is the zone's own; set it with `zone add --ns`"
        ));
    }
    let has_dynamic: bool = conn
        .prepare_cached(FITS_DYNAMIC)?
        .query_row(params![zone.id, name, record_type], |row| row.get(0))?;
    if has_dynamic {
        return refuse(format!(
            "{name} is a DDNS domain with an {record_type} record already"
        ));
    }
    Ok(())
}

/// Adds a static record after [`check_record_fits`], and bumps the zone serial.
pub fn insert_record(
    conn: &Connection,
    zone: &Zone,
    name: &str,
    record_type: StaticType,
    content: &str,
    ttl: u32,
    now: &str,
) -> Result<(), StoreError> {
    check_record_fits(conn, zone, name, record_type.as_str())?;
    conn.execute(
        "INSERT INTO records (zone_id, name, type, content, ttl, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![zone.id, name, record_type.as_str(), content, ttl, now],
    )
    .map_err(|error| conflict_on_unique(error, || format!("{name} {record_type} {content} exists already")))?;
    bump_serial(conn, zone.id, now)
}

/// Removes the static records at `name` of `record_type` (only the one with `content`, when
/// given), bumping the zone serial. Returns how many were removed.
pub fn remove_records(
    conn: &Connection,
    zone: &Zone,
    name: &str,
    record_type: StaticType,
    content: Option<&str>,
    now: &str,
) -> Result<usize, StoreError> {
    let removed = conn.execute(
        "DELETE FROM records WHERE zone_id = ?1 AND name = ?2 AND type = ?3 AND (?4 IS NULL OR content = ?4)",
        params![zone.id, name, record_type.as_str(), content],
    )?;
    if removed > 0 {
        bump_serial(conn, zone.id, now)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::model::{DomainName, RecordType};
    use crate::store::audit::ChangeContext;
    use crate::store::domains::{change_address, get_domain, insert_domain};
    use crate::store::test_connection;
    use crate::store::users::{insert_user, set_plan};
    use crate::store::zones::{SoaTimers, get_zone_by_name, insert_zone};

    fn name(text: &str) -> DomainName {
        text.parse().unwrap()
    }

    /// Zone `dyn.example` (ns1, ns2), a static A for ns1, alice's DDNS `home` at 192.0.2.7.
    fn seed(conn: &Connection) -> Zone {
        insert_zone(
            conn,
            &name("dyn.example"),
            &[name("ns1.dyn.example"), name("ns2.example")],
            None,
            SoaTimers::default(),
            "t",
        )
        .unwrap();
        let zone = get_zone_by_name(conn, "dyn.example").unwrap().unwrap();
        insert_record(
            conn,
            &zone,
            "ns1.dyn.example",
            StaticType::A,
            "192.0.2.53",
            3600,
            "t",
        )
        .unwrap();
        let alice =
            insert_user(conn, "alice", "alice@example.com", "$phc", Plan::Plus, "t").unwrap();
        let id = insert_domain(
            conn,
            &name("home.dyn.example"),
            alice,
            zone.id,
            RecordType::A,
            "t",
        )
        .unwrap();
        let domain = get_domain(conn, id).unwrap();
        change_address(
            conn,
            &domain,
            "192.0.2.7".parse().unwrap(),
            &ChangeContext::admin(),
            "t",
        )
        .unwrap();
        get_zone_by_name(conn, "dyn.example").unwrap().unwrap()
    }

    fn summary(records: &[ServedRecord]) -> Vec<String> {
        records
            .iter()
            .map(|r| format!("{} {} {} {}", r.name, r.ttl, r.record_type, r.content))
            .collect()
    }

    #[test]
    fn the_apex_serves_soa_and_ns_and_names_their_records() {
        let conn = test_connection();
        let zone = seed(&conn);
        let apex = records_at(&conn, &zone, "dyn.example").unwrap();
        assert_eq!(apex[0].record_type.as_str(), "SOA");
        assert_eq!(
            apex[0].content,
            format!(
                "ns1.dyn.example. hostmaster.dyn.example. {} 10800 3600 604800 60",
                zone.serial
            )
        );
        assert_eq!(
            summary(&apex[1..]),
            [
                "dyn.example 3600 NS ns1.dyn.example.",
                "dyn.example 3600 NS ns2.example."
            ]
        );
        assert_eq!(
            summary(&records_at(&conn, &zone, "ns1.dyn.example").unwrap()),
            ["ns1.dyn.example 3600 A 192.0.2.53"]
        );
        assert_eq!(
            summary(&records_at(&conn, &zone, "home.dyn.example").unwrap()),
            ["home.dyn.example 60 A 192.0.2.7"]
        );
        assert!(
            records_at(&conn, &zone, "nope.dyn.example")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn ddns_ttl_follows_the_plan_when_served() {
        let conn = test_connection();
        let zone = seed(&conn);
        set_plan(&conn, 1, Plan::Free, "t").unwrap();
        assert_eq!(
            records_at(&conn, &zone, "home.dyn.example").unwrap()[0].ttl,
            3600
        );
    }

    #[test]
    fn the_zone_listing_starts_with_the_soa() {
        let conn = test_connection();
        let zone = seed(&conn);
        let all = zone_records(&conn, &zone).unwrap();
        assert_eq!(all[0].record_type.as_str(), "SOA");
        assert_eq!(all.len(), 1 + 2 + 1 + 1);
        assert_eq!(all[4].source, RecordSource::Dynamic);
    }

    #[test]
    fn conflicting_records_are_refused() {
        let conn = test_connection();
        let zone = seed(&conn);
        let add = |name: &str, record_type: StaticType, content: &str| {
            insert_record(&conn, &zone, name, record_type, content, 300, "t")
        };
        assert!(matches!(
            add("home.dyn.example", StaticType::Cname, "x.example."),
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            add("dyn.example", StaticType::Cname, "x.example."),
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            add("dyn.example", StaticType::Ns, "ns3.example."),
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            add("home.dyn.example", StaticType::A, "192.0.2.8"),
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            add("ns1.dyn.example", StaticType::A, "192.0.2.53"),
            Err(StoreError::Conflict(_))
        ));
        add("home.dyn.example", StaticType::Txt, "\"owned by alice\"").unwrap();
        add("alias.dyn.example", StaticType::Cname, "home.dyn.example.").unwrap();
        assert!(matches!(
            add("alias.dyn.example", StaticType::Txt, "\"x\""),
            Err(StoreError::Conflict(_))
        ));
        add("sub.dyn.example", StaticType::Ns, "ns.elsewhere.example.").unwrap();
    }

    #[test]
    fn adding_and_removing_records_bump_the_serial() {
        let conn = test_connection();
        let zone = seed(&conn);
        insert_record(
            &conn,
            &zone,
            "www.dyn.example",
            StaticType::A,
            "192.0.2.80",
            300,
            "t",
        )
        .unwrap();
        insert_record(
            &conn,
            &zone,
            "www.dyn.example",
            StaticType::A,
            "192.0.2.81",
            300,
            "t",
        )
        .unwrap();
        let serial = |conn: &Connection| {
            get_zone_by_name(conn, "dyn.example")
                .unwrap()
                .unwrap()
                .serial
        };
        assert_eq!(serial(&conn), zone.serial + 2);
        assert_eq!(
            remove_records(
                &conn,
                &zone,
                "www.dyn.example",
                StaticType::A,
                Some("192.0.2.80"),
                "t"
            )
            .unwrap(),
            1
        );
        assert_eq!(
            remove_records(&conn, &zone, "www.dyn.example", StaticType::A, None, "t").unwrap(),
            1
        );
        assert_eq!(
            remove_records(&conn, &zone, "www.dyn.example", StaticType::A, None, "t").unwrap(),
            0
        );
        assert_eq!(serial(&conn), zone.serial + 4);
    }
}

//! DDNS domains: who owns which name, in which zone, and its current address.

use std::net::{IpAddr, Ipv6Addr};

use rusqlite::{Connection, OptionalExtension as _, Row, params};

use super::audit::{Change, ChangeContext, insert_audit};
use super::records::check_record_fits;
use super::zones::{Zone, bump_serial};
use super::{StoreError, conflict_on_unique};
use crate::model::PrefixUpdate;
pub use crate::model::domain::Domain;
use crate::model::ownership::{self, HolderMap, Holders, OwnershipConflict};
use crate::model::{DomainName, HostSuffix, RecordType, check_family};

/// A domain to add, as `domain add` and `domain import` describe it.
#[derive(Debug, Clone)]
pub struct NewDomain {
    /// The name.
    pub fqdn: DomainName,
    /// The owner.
    pub user_id: i64,
    /// Its zone (the nearest enclosing one: the caller finds it, by SQL or from a map).
    pub zone: Zone,
    /// A or AAAA.
    pub record_type: RecordType,
    /// Its first address, if it has one yet.
    pub ip: Option<IpAddr>,
    /// What it keeps when its network's prefix changes (AAAA only).
    pub suffix: Option<HostSuffix>,
    /// The name whose prefixes it follows (of the same owner; None to set it later, as an
    /// import does once every name is in).
    pub leader: Option<DomainName>,
}

/// Adds `domain`, by the rules every way in keeps: inside its zone; a type that fits the
/// records the zone has at that name (`records::check_record_fits`); one name, one owner
/// (`holders`: the store, or an import's map); an interface id only for AAAA; a first address
/// of the domain's family, written with its audit row (`context`); a leader of the same owner.
/// The new row's id.
pub fn add_domain<H>(
    conn: &Connection,
    holders: &H,
    domain: &NewDomain,
    context: &ChangeContext,
    now: &str,
) -> Result<i64, StoreError>
where
    H: Holders,
    StoreError: From<H::Error>,
{
    let NewDomain {
        fqdn,
        user_id,
        zone,
        record_type,
        ip,
        suffix,
        leader,
    } = domain;
    let inside = fqdn
        .as_str()
        .strip_suffix(zone.name.as_str())
        .is_some_and(|rest| rest.is_empty() || rest.ends_with('.'));
    if !inside {
        return Err(StoreError::Conflict(format!(
            "{fqdn} is not inside zone {}",
            zone.name
        )));
    }
    if suffix.is_some() && *record_type != RecordType::Aaaa {
        return Err(StoreError::Conflict(
            "an interface id is for AAAA domains".into(),
        ));
    }
    if let Some(ip) = ip {
        check_family(*record_type, *ip)
            .map_err(|error| StoreError::Conflict(format!("{ip}: {error}")))?;
    }
    check_record_fits(conn, zone, fqdn.as_str(), record_type.as_str())?;
    let id = insert_domain_among(conn, holders, fqdn, *user_id, zone.id, *record_type, now)?;
    if suffix.is_some() {
        set_suffix(conn, fqdn, *suffix)?;
    }
    if leader.is_some() {
        set_follows(conn, fqdn, leader.as_ref())?;
    }
    if let Some(ip) = ip {
        let stored = get_domain(conn, id)?;
        change_address(conn, &stored, *ip, context, now)?;
    }
    Ok(id)
}

/// The select list [`domain_from_row`] reads, over `domains d` joined with `users u` and
/// `zones z`.
pub(super) const DOMAIN_SELECT: &str =
    "SELECT d.id, d.fqdn, d.user_id, u.username, d.zone_id, z.name, d.record_type,
        d.ip, d.created_at, d.updated_at, d.last_checked_at,
        d.interface_id, d.prefix_length, d.subnet_id, d.follows
    FROM domains d JOIN users u ON u.id = d.user_id JOIN zones z ON z.id = d.zone_id";

/// Reads a [`Domain`] from a row selected with [`DOMAIN_SELECT`].
fn domain_from_row(row: &Row<'_>) -> rusqlite::Result<Domain> {
    let record_type: String = row.get(6)?;
    Ok(Domain {
        id: row.get(0)?,
        fqdn: row.get(1)?,
        user_id: row.get(2)?,
        owner: row.get(3)?,
        zone_id: row.get(4)?,
        zone: row.get(5)?,
        record_type: record_type
            .parse()
            .map_err(|error: crate::model::InvalidValue| {
                rusqlite::Error::FromSqlConversionFailure(
                    6,
                    rusqlite::types::Type::Text,
                    error.into(),
                )
            })?,
        ip: row
            .get::<_, Option<String>>(7)?
            .map(|text| text.parse::<IpAddr>())
            .transpose()
            .map_err(|error| {
                rusqlite::Error::FromSqlConversionFailure(
                    7,
                    rusqlite::types::Type::Text,
                    error.into(),
                )
            })?,
        created_at: row.get(8)?,
        updated_at: row.get(9)?,
        last_checked_at: row.get(10)?,
        suffix: suffix_from_row(row)?,
        follows: row.get(14)?,
    })
}

/// The [`HostSuffix`] of a row selected with [`DOMAIN_SELECT`] (columns 11 to 13).
fn suffix_from_row(row: &Row<'_>) -> rusqlite::Result<Option<HostSuffix>> {
    let Some(text) = row.get::<_, Option<String>>(11)? else {
        return Ok(None);
    };
    let invalid = |error: Box<dyn std::error::Error + Send + Sync>| {
        rusqlite::Error::FromSqlConversionFailure(11, rusqlite::types::Type::Text, error)
    };
    let interface_id: Ipv6Addr = text.parse().map_err(|error| invalid(Box::new(error)))?;
    let length: i64 = row.get(12)?;
    let subnet: i64 = row.get(13)?;
    HostSuffix::new(
        interface_id,
        u8::try_from(length).map_err(|error| invalid(Box::new(error)))?,
        u64::try_from(subnet).map_err(|error| invalid(Box::new(error)))?,
    )
    .map(Some)
    .map_err(|error| invalid(Box::new(error)))
}

/// Sets or clears (None) what AAAA domain `fqdn` keeps when its prefix changes.
pub fn set_suffix(
    conn: &Connection,
    fqdn: &DomainName,
    suffix: Option<HostSuffix>,
) -> Result<(), StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE domains SET interface_id = ?2, prefix_length = ?3, subnet_id = ?4
             WHERE fqdn = ?1 AND record_type = 'AAAA'",
        )?
        .execute(params![
            fqdn.as_str(),
            suffix.map(|suffix| suffix.interface_id().to_string()),
            suffix.map_or(64, |suffix| suffix.prefix_length()),
            i64::try_from(suffix.map_or(0, |suffix| suffix.subnet_id())).map_err(|_| {
                StoreError::Conflict("the subnet id is too large to store".into())
            })?,
        ])?;
    if changed == 0 {
        return Err(StoreError::NotFound(format!(
            "{fqdn} has no AAAA domain (an interface id is for IPv6 hosts)"
        )));
    }
    Ok(())
}

/// Makes every domain named `fqdn` follow the prefixes sent for `leader` (None: none), which
/// must be another name of the same owner.
pub fn set_follows(
    conn: &Connection,
    fqdn: &DomainName,
    leader: Option<&DomainName>,
) -> Result<(), StoreError> {
    if let Some(leader) = leader {
        if leader == fqdn {
            return Err(StoreError::Conflict(format!("{fqdn} cannot follow itself")));
        }
        let same_owner: bool = conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM domains l JOIN domains f ON f.user_id = l.user_id
                                WHERE l.fqdn = ?1 AND f.fqdn = ?2)",
            )?
            .query_row(params![leader.as_str(), fqdn.as_str()], |row| row.get(0))?;
        if !same_owner {
            return Err(StoreError::NotFound(format!(
                "{leader} is not a domain of {fqdn}'s owner"
            )));
        }
    }
    let changed = conn
        .prepare_cached("UPDATE domains SET follows = ?2 WHERE fqdn = ?1")?
        .execute(params![fqdn.as_str(), leader.map(DomainName::as_str)])?;
    if changed == 0 {
        return Err(StoreError::NotFound(format!("no such domain: {fqdn}")));
    }
    Ok(())
}

/// The AAAA domains of `user_id` with an interface identifier that follow one of `leaders`,
/// each once, by name.
pub fn find_followers(
    conn: &Connection,
    user_id: i64,
    leaders: &[&str],
) -> Result<Vec<Domain>, StoreError> {
    let mut followers = Vec::new();
    let mut statement = conn.prepare_cached(&format!(
        "{DOMAIN_SELECT} WHERE d.user_id = ?1 AND d.follows = ?2 AND d.record_type = 'AAAA'
         AND d.interface_id IS NOT NULL ORDER BY d.fqdn"
    ))?;
    for leader in leaders {
        for domain in statement.query_map(params![user_id, leader], domain_from_row)? {
            let domain = domain?;
            if !followers.iter().any(|known: &Domain| known.id == domain.id) {
                followers.push(domain);
            }
        }
    }
    Ok(followers)
}

/// Creates a domain with no address yet. A name belongs to one account: not a zone apex, and
/// not at, above or beneath another account's names ([`ownership`]); a second record type for
/// the same name has the same owner.
pub fn insert_domain(
    conn: &Connection,
    fqdn: &DomainName,
    user_id: i64,
    zone_id: i64,
    record_type: RecordType,
    now: &str,
) -> Result<i64, StoreError> {
    insert_domain_among(
        conn,
        &StoredHolders(conn),
        fqdn,
        user_id,
        zone_id,
        record_type,
        now,
    )
}

/// [`insert_domain`], the rule checked against `holders`: the store's names and those written
/// with them, held in memory by a caller writing many (`domain import`).
pub fn insert_domain_among<H>(
    conn: &Connection,
    holders: &H,
    fqdn: &DomainName,
    user_id: i64,
    zone_id: i64,
    record_type: RecordType,
    now: &str,
) -> Result<i64, StoreError>
where
    H: Holders,
    StoreError: From<H::Error>,
{
    let apex = super::zones::apex_of(conn, zone_id)?;
    if let Some(conflict) = ownership::check(fqdn.as_str(), user_id, &apex, holders)? {
        return Err(StoreError::Conflict(conflict.to_string()));
    }
    conn.execute(
        "INSERT INTO domains (fqdn, user_id, zone_id, record_type, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        params![fqdn.as_str(), user_id, zone_id, record_type.as_str(), now],
    )
    .map_err(|error| {
        conflict_on_unique(error, || {
            format!("{fqdn} already has an {record_type} domain")
        })
    })?;
    Ok(conn.last_insert_rowid())
}

/// The store's names as [`Holders`], by SQL: exact lookups, and one scan for names beneath.
pub struct StoredHolders<'a>(pub &'a Connection);

impl Holders for StoredHolders<'_> {
    type Error = StoreError;

    fn other_at(&self, name: &str, owner: i64) -> Result<Option<String>, StoreError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT u.username FROM domains d JOIN users u ON u.id = d.user_id
                 WHERE d.fqdn = ?1 AND d.user_id != ?2 LIMIT 1",
            )?
            .query_row(params![name, owner], |row| row.get(0))
            .optional()?)
    }

    fn other_beneath(
        &self,
        name: &str,
        owner: i64,
    ) -> Result<Option<(String, String)>, StoreError> {
        // LIKE matches ASCII case-insensitively, as the column's NOCASE does; `_` and `%`
        // (legal in names pdns serves) are escaped.
        let mut pattern = String::with_capacity(name.len() + 4);
        pattern.push_str("%.");
        for c in name.chars() {
            if matches!(c, '%' | '_' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        Ok(self
            .0
            .prepare_cached(
                "SELECT d.fqdn, u.username FROM domains d JOIN users u ON u.id = d.user_id
                 WHERE d.fqdn LIKE ?1 ESCAPE '\\' AND d.user_id != ?2 LIMIT 1",
            )?
            .query_row(params![pattern, owner], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()?)
    }
}

/// Every held name, in memory (for checking many at once).
pub fn holder_map(conn: &Connection) -> Result<HolderMap, StoreError> {
    let mut map = HolderMap::default();
    let mut statement = conn.prepare_cached(
        "SELECT d.fqdn, d.user_id, u.username, z.name
         FROM domains d JOIN users u ON u.id = d.user_id JOIN zones z ON z.id = d.zone_id",
    )?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let (name, owner, username, apex): (String, i64, String, String) =
            (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
        map.add(
            &name.to_ascii_lowercase(),
            owner,
            &username,
            &apex.to_ascii_lowercase(),
        );
    }
    Ok(map)
}

/// The held names that break the one-name-one-owner rule (an older store's, made before it):
/// each once, with why, by name.
pub fn ownership_conflicts(conn: &Connection) -> Result<Vec<OwnershipConflict>, StoreError> {
    let holders = holder_map(conn)?;
    let mut statement = conn.prepare_cached(
        "SELECT DISTINCT d.fqdn, d.user_id, z.name
         FROM domains d JOIN zones z ON z.id = d.zone_id ORDER BY d.fqdn, d.user_id",
    )?;
    let rows: Vec<(String, i64, String)> = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut conflicts: Vec<OwnershipConflict> = Vec::new();
    for (name, owner, apex) in rows {
        let name = name.to_ascii_lowercase();
        let Ok(found) = ownership::check(&name, owner, &apex.to_ascii_lowercase(), &holders);
        let Some(conflict) = found else { continue };
        if conflicts
            .last()
            .is_none_or(|last| last.name != conflict.name)
        {
            conflicts.push(conflict);
        }
    }
    Ok(conflicts)
}

/// The domains (one per record type) named `fqdn` that `user_id` owns.
pub fn find_owned_domains(
    conn: &Connection,
    user_id: i64,
    fqdn: &str,
) -> Result<Vec<Domain>, StoreError> {
    let mut statement = conn.prepare_cached(&format!(
        "{DOMAIN_SELECT} WHERE d.fqdn = ?1 AND +d.user_id = ?2 ORDER BY d.record_type"
    ))?;
    let domains = statement
        .query_map(params![fqdn, user_id], domain_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(domains)
}

/// The domains (one per record type) named `fqdn`, whoever owns them.
pub fn list_named(conn: &Connection, fqdn: &DomainName) -> Result<Vec<Domain>, StoreError> {
    let mut statement = conn.prepare_cached(&format!(
        "{DOMAIN_SELECT} WHERE d.fqdn = ?1 ORDER BY d.record_type"
    ))?;
    let domains = statement
        .query_map([fqdn.as_str()], domain_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(domains)
}

/// The domain with row id `id`.
pub fn get_domain(conn: &Connection, id: i64) -> Result<Domain, StoreError> {
    let mut statement = conn.prepare_cached(&format!("{DOMAIN_SELECT} WHERE d.id = ?1"))?;
    Ok(statement.query_row([id], domain_from_row)?)
}

/// All domains, or one owner's, by name and type.
pub fn list_domains(conn: &Connection, user_id: Option<i64>) -> Result<Vec<Domain>, StoreError> {
    let mut statement = conn.prepare_cached(&format!(
        "{DOMAIN_SELECT} WHERE ?1 IS NULL OR d.user_id = ?1 ORDER BY d.fqdn, d.record_type"
    ))?;
    let domains = statement
        .query_map([user_id], domain_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(domains)
}

/// Removes the domains named `fqdn` (only the `record_type` one, when given) and bumps their
/// zone's serial. Their audit rows stay. Returns how many were removed.
pub fn remove_domains(
    conn: &Connection,
    fqdn: &str,
    record_type: Option<RecordType>,
    now: &str,
) -> Result<usize, StoreError> {
    let zone_ids: Vec<i64> = conn
        .prepare_cached(
            "DELETE FROM domains WHERE fqdn = ?1 AND (?2 IS NULL OR record_type = ?2)
             RETURNING zone_id",
        )?
        .query_map(params![fqdn, record_type.map(RecordType::as_str)], |row| {
            row.get(0)
        })?
        .collect::<Result<_, _>>()?;
    if let Some(zone_id) = zone_ids.first() {
        bump_serial(conn, *zone_id, now)?;
    }
    Ok(zone_ids.len())
}

/// Notes an authenticated update request that changed nothing; never moves the time back.
pub fn touch_checked(conn: &Connection, domain_id: i64, now: &str) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE domains SET last_checked_at = ?2
         WHERE id = ?1 AND (last_checked_at IS NULL OR last_checked_at < ?2)",
    )?
    .execute(params![domain_id, now])?;
    Ok(())
}

/// Points `domain` at `new_ip`: updates the row, bumps the zone serial and appends the audit
/// row, all on `conn`, which the caller holds inside one transaction.
pub fn change_address(
    conn: &Connection,
    domain: &Domain,
    new_ip: IpAddr,
    context: &ChangeContext,
    now: &str,
) -> Result<(), StoreError> {
    change_address_from(conn, domain, new_ip, None, context, now)
}

/// [`change_address`] for an address made from `prefix` (None: sent whole), which the audit
/// row records with the parameter it came in.
pub fn change_address_from(
    conn: &Connection,
    domain: &Domain,
    new_ip: IpAddr,
    prefix: Option<&PrefixUpdate>,
    context: &ChangeContext,
    now: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE domains SET ip = ?2, updated_at = ?3, last_checked_at = ?3 WHERE id = ?1",
    )?
    .execute(params![domain.id, new_ip.to_string(), now])?;
    bump_serial(conn, domain.zone_id, now)?;
    let old_ip = domain.ip.map(|ip| ip.to_string());
    let prefix_text = prefix.map(|prefix| prefix.prefix.to_string());
    let change = Change {
        domain_id: domain.id,
        fqdn: &domain.fqdn,
        record_type: domain.record_type.as_str(),
        old_ip: old_ip.as_deref(),
        new_ip,
        prefix: prefix_text
            .as_deref()
            .zip(prefix.map(|prefix| prefix.parameter)),
    };
    insert_audit(conn, &change, context, now)
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::model::{AuthMethod, CountryCode, IpFacts, Plan};
    use crate::store::audit::history;
    use crate::store::test_connection;
    use crate::store::users::insert_user;
    use crate::store::zones::list_zones;

    fn name(text: &str) -> DomainName {
        text.parse().unwrap()
    }

    /// A zone `dyn.example` and users alice and bob; returns (zone, alice, bob) ids.
    fn seed(conn: &Connection) -> (i64, i64, i64) {
        let zone = crate::store::test_zone(conn);
        let alice =
            insert_user(conn, "alice", "alice@example.com", "$phc", Plan::Plus, "t").unwrap();
        let bob = insert_user(conn, "bob", "bob@example.com", "$phc", Plan::Free, "t").unwrap();
        (zone, alice, bob)
    }

    #[test]
    fn a_name_holds_one_a_and_one_aaaa_of_one_owner() {
        let conn = test_connection();
        let (zone, alice, bob) = seed(&conn);
        insert_domain(
            &conn,
            &name("home.dyn.example"),
            alice,
            zone,
            RecordType::A,
            "t",
        )
        .unwrap();
        insert_domain(
            &conn,
            &name("home.dyn.example"),
            alice,
            zone,
            RecordType::Aaaa,
            "t",
        )
        .unwrap();
        let twice = insert_domain(
            &conn,
            &name("HOME.dyn.example"),
            alice,
            zone,
            RecordType::A,
            "t",
        );
        assert!(matches!(twice, Err(StoreError::Conflict(_))));
        let stolen = insert_domain(
            &conn,
            &name("home.dyn.example"),
            bob,
            zone,
            RecordType::A,
            "t",
        );
        assert!(matches!(stolen, Err(StoreError::Conflict(_))));
        assert_eq!(
            find_owned_domains(&conn, alice, "home.dyn.example")
                .unwrap()
                .len(),
            2
        );
        assert!(
            find_owned_domains(&conn, bob, "home.dyn.example")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn an_address_change_updates_bumps_the_serial_and_audits() {
        let conn = test_connection();
        let (zone, alice, _) = seed(&conn);
        let id = insert_domain(
            &conn,
            &name("home.dyn.example"),
            alice,
            zone,
            RecordType::A,
            "t",
        )
        .unwrap();
        let serial_before = list_zones(&conn).unwrap()[0].serial;
        let context = ChangeContext {
            source_ip: Some("192.0.2.7".parse().unwrap()),
            peer_ip: Some("127.0.0.1".parse().unwrap()),
            user_agent: Some("test/1.0".into()),
            auth_method: AuthMethod::Basic,
            tsig_key: None,
            source_facts: IpFacts {
                country: CountryCode::parse("NL"),
                tags: vec!["documentation".into(), "tor-exit".into()],
            },
            // Facts found for one of the two addresses; the other gets its special ranges.
            address_facts: vec![(
                "192.0.2.1".parse().unwrap(),
                IpFacts {
                    country: CountryCode::parse("DE"),
                    tags: vec!["documentation".into(), "asn:64500".into()],
                },
            )],
            prefix_facts: IpFacts::default(),
        };
        let domain = get_domain(&conn, id).unwrap();
        change_address(&conn, &domain, "10.0.0.1".parse().unwrap(), &context, "t1").unwrap();
        let domain = get_domain(&conn, id).unwrap();
        change_address(&conn, &domain, "192.0.2.1".parse().unwrap(), &context, "t2").unwrap();

        let domain = get_domain(&conn, id).unwrap();
        assert_eq!(
            domain.ip.map(|ip| ip.to_string()).as_deref(),
            Some("192.0.2.1")
        );
        assert_eq!(domain.updated_at, "t2");
        assert_eq!(list_zones(&conn).unwrap()[0].serial, serial_before + 2);
        let rows = history(&conn, "home.dyn.example", 10).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].old_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(rows[0].new_ip, "192.0.2.1");
        assert_eq!(rows[0].ip_tags, ["documentation", "asn:64500"]);
        assert_eq!(rows[0].country_code.as_deref(), Some("DE"));
        assert_eq!(rows[1].old_ip, None);
        assert_eq!(rows[1].ip_tags, ["private"]);
        assert_eq!(rows[1].country_code, None);
        for row in &rows {
            assert_eq!(row.source_country_code.as_deref(), Some("NL"));
            assert_eq!(row.source_ip_tags, ["documentation", "tor-exit"]);
        }
        assert_eq!(rows[0].auth_method, "basic");
        assert_eq!(rows[0].source_ip.as_deref(), Some("192.0.2.7"));
    }

    #[test]
    fn removing_keeps_the_history() {
        let conn = test_connection();
        let (zone, alice, _) = seed(&conn);
        let id = insert_domain(
            &conn,
            &name("home.dyn.example"),
            alice,
            zone,
            RecordType::A,
            "t",
        )
        .unwrap();
        let domain = get_domain(&conn, id).unwrap();
        change_address(
            &conn,
            &domain,
            "192.0.2.1".parse().unwrap(),
            &ChangeContext::admin(),
            "t",
        )
        .unwrap();
        assert_eq!(
            remove_domains(&conn, "home.dyn.example", None, "t").unwrap(),
            1
        );
        assert_eq!(
            remove_domains(&conn, "home.dyn.example", None, "t").unwrap(),
            0
        );
        let rows = history(&conn, "home.dyn.example", 10).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].domain_id, None);
    }
}

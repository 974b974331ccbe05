//! The audit trail (`domain_updates`): append-only, one row per address change.
//!
//! Rows are written only by [`super::domains::change_address`], inside the transaction of the
//! change they record.

use std::borrow::Cow;
use std::net::IpAddr;

use rusqlite::{Connection, params};

use super::StoreError;
pub use crate::model::audit::{AuditRecord, ChangeContext, PageStart};

/// The facts of one change, for [`insert_audit`].
pub(super) struct Change<'a> {
    /// Domain row id.
    pub(super) domain_id: i64,
    /// Domain name.
    pub(super) fqdn: &'a str,
    /// `A` or `AAAA`.
    pub(super) record_type: &'a str,
    /// Previous address.
    pub(super) old_ip: Option<&'a str>,
    /// New address.
    pub(super) new_ip: IpAddr,
    /// The prefix it was made from and the parameter that carried it, if any.
    pub(super) prefix: Option<(&'a str, &'a str)>,
}

/// Appends the audit row of `change`.
pub(super) fn insert_audit(
    conn: &Connection,
    change: &Change<'_>,
    context: &ChangeContext,
    now: &str,
) -> Result<(), StoreError> {
    let record = match change.prefix {
        Some(_) => Cow::Borrowed(&context.prefix_facts),
        None => context.facts_of(change.new_ip),
    };
    let source = &context.source_facts;
    let json = |tags: &[String]| serde_json::to_string(tags).expect("strings serialise");
    conn.prepare_cached(
        "INSERT INTO domain_updates (domain_id, fqdn, record_type, old_ip, new_ip, created_at,
                                     source_ip, peer_ip, country_code, ip_tags, user_agent,
                                     auth_method, source_country_code, source_ip_tags,
                                     prefix, prefix_parameter, tsig_key)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    )?
    .execute(params![
        change.domain_id,
        change.fqdn,
        change.record_type,
        change.old_ip,
        change.new_ip.to_string(),
        now,
        context.source_ip.map(|ip| ip.to_string()),
        context.peer_ip.map(|ip| ip.to_string()),
        record.country.as_ref().map(|country| country.as_str()),
        json(&record.tags),
        context.user_agent,
        context.auth_method.as_str(),
        source.country.as_ref().map(|country| country.as_str()),
        json(&source.tags),
        change.prefix.map(|(prefix, _)| prefix),
        change.prefix.map(|(_, parameter)| parameter),
        context.tsig_key,
    ])?;
    Ok(())
}

/// The columns [`record_from_row`] reads, in order.
const RECORD_COLUMNS: &str = "id, domain_id, fqdn, record_type, old_ip, new_ip, created_at, \
    source_ip, peer_ip, country_code, ip_tags, user_agent, auth_method, source_country_code, \
    source_ip_tags, tsig_key";

/// Reads an [`AuditRecord`] from a row selected with [`RECORD_COLUMNS`].
fn record_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRecord> {
    // Written as JSON arrays of strings by `insert_audit` and checked by the schema; a row
    // edited by hand into something else shows as no tags.
    let tags = |index| -> rusqlite::Result<Vec<String>> {
        let text: String = row.get(index)?;
        Ok(serde_json::from_str(&text).unwrap_or_default())
    };
    Ok(AuditRecord {
        id: row.get(0)?,
        domain_id: row.get(1)?,
        fqdn: row.get(2)?,
        record_type: row.get(3)?,
        old_ip: row.get(4)?,
        new_ip: row.get(5)?,
        created_at: row.get(6)?,
        source_ip: row.get(7)?,
        peer_ip: row.get(8)?,
        country_code: row.get(9)?,
        ip_tags: tags(10)?,
        user_agent: row.get(11)?,
        auth_method: row.get(12)?,
        source_country_code: row.get(13)?,
        source_ip_tags: tags(14)?,
        tsig_key: row.get(15)?,
    })
}

/// The newest `limit` audit rows of `fqdn` (both record types, removed domains included),
/// newest first.
pub fn history(conn: &Connection, fqdn: &str, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {RECORD_COLUMNS} FROM domain_updates WHERE fqdn = ?1 ORDER BY id DESC LIMIT ?2"
    ))?;
    let rows = statement
        .query_map(params![fqdn, limit], record_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// One page of the audit rows of the domains `user_id` owns now at `fqdn`, newest first: at
/// most `limit` rows from `start`. Rows of a domain removed earlier (perhaps someone else's)
/// are not shown: only the rows of the domains the user holds.
pub fn owned_history_page(
    conn: &Connection,
    user_id: i64,
    fqdn: &str,
    start: PageStart,
    limit: u32,
) -> Result<Vec<AuditRecord>, StoreError> {
    let (condition, order, bound) = match start {
        PageStart::Newest => ("1", "DESC", i64::MAX),
        PageStart::Before(id) => ("id < ?3", "DESC", id),
        PageStart::After(id) => ("id > ?3", "ASC", id),
    };
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {RECORD_COLUMNS} FROM domain_updates
         WHERE domain_id IN (SELECT id FROM domains WHERE user_id = ?1 AND fqdn = ?2)
           AND (?3 IS NULL OR {condition})
         ORDER BY id {order} LIMIT ?4"
    ))?;
    let mut rows: Vec<AuditRecord> = statement
        .query_map(params![user_id, fqdn, bound, limit], record_from_row)?
        .collect::<Result<_, _>>()?;
    if order == "ASC" {
        rows.reverse();
    }
    Ok(rows)
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::model::{Plan, RecordType};
    use crate::store::domains::{insert_domain, remove_domains};
    use crate::store::users::insert_user;
    use crate::store::{test_connection, test_zone};

    fn write(conn: &Connection, domain_id: i64, n: u8) {
        let change = Change {
            domain_id,
            fqdn: "x.dyn.example",
            record_type: "A",
            old_ip: None,
            new_ip: IpAddr::from([192, 0, 2, n]),
            prefix: None,
        };
        insert_audit(conn, &change, &ChangeContext::admin(), "t").unwrap();
    }

    fn new_ips(rows: &[AuditRecord]) -> Vec<String> {
        rows.iter().map(|row| row.new_ip.clone()).collect()
    }

    #[test]
    fn a_page_of_history_holds_the_current_owners_rows_only() {
        let conn = test_connection();
        let zone = test_zone(&conn);
        let alice = insert_user(&conn, "alice", "a@example.com", "$", Plan::Plus, "t").unwrap();
        let bob = insert_user(&conn, "bob", "b@example.com", "$", Plan::Plus, "t").unwrap();
        let name = "x.dyn.example".parse().unwrap();
        let alices = insert_domain(&conn, &name, alice, zone, RecordType::A, "t").unwrap();
        for n in 1..=3 {
            write(&conn, alices, n);
        }
        remove_domains(&conn, "x.dyn.example", None, "t").unwrap();
        let bobs = insert_domain(&conn, &name, bob, zone, RecordType::A, "t").unwrap();
        for n in 4..=8 {
            write(&conn, bobs, n);
        }
        let page =
            |user, start| owned_history_page(&conn, user, "x.dyn.example", start, 2).unwrap();
        assert!(page(alice, PageStart::Newest).is_empty(), "no longer hers");
        let newest = page(bob, PageStart::Newest);
        assert_eq!(new_ips(&newest), ["192.0.2.8", "192.0.2.7"]);
        let older = page(bob, PageStart::Before(newest[1].id));
        assert_eq!(new_ips(&older), ["192.0.2.6", "192.0.2.5"]);
        let oldest = page(bob, PageStart::Before(older[1].id));
        assert_eq!(
            new_ips(&oldest),
            ["192.0.2.4"],
            "alice's rows are not bob's"
        );
        let back = page(bob, PageStart::After(oldest[0].id));
        assert_eq!(new_ips(&back), ["192.0.2.6", "192.0.2.5"]);
    }
}

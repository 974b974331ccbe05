//! The audit trail (`domain_updates`): append-only, one row per address change.
//!
//! Rows are written only by [`super::domains::change_address`], inside the transaction of the
//! change they record.

use std::net::IpAddr;

use rusqlite::{Connection, params};
use serde::Serialize;

use super::StoreError;
use crate::model::{AuthMethod, ip_tags};

/// Who asked for a change, and from where: the part of an audit row the caller knows.
#[derive(Debug, Clone)]
pub struct ChangeContext {
    /// The detected client address (None for the admin CLI).
    pub source_ip: Option<IpAddr>,
    /// The TCP peer (None for the admin CLI).
    pub peer_ip: Option<IpAddr>,
    /// The client's `User-Agent`.
    pub user_agent: Option<String>,
    /// How the request was authenticated.
    pub auth_method: AuthMethod,
}

impl ChangeContext {
    /// The context of a change made with the admin CLI.
    pub fn admin() -> Self {
        Self {
            source_ip: None,
            peer_ip: None,
            user_agent: None,
            auth_method: AuthMethod::Admin,
        }
    }
}

/// One audit row, as `history` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// Row id; increases with time.
    pub id: i64,
    /// The domain changed; None once it was removed.
    pub domain_id: Option<i64>,
    /// Its name.
    pub fqdn: String,
    /// `A` or `AAAA`.
    pub record_type: String,
    /// Address before the change; None for the first one.
    pub old_ip: Option<String>,
    /// Address after the change.
    pub new_ip: String,
    /// When.
    pub created_at: String,
    /// Detected client address.
    pub source_ip: Option<String>,
    /// TCP peer.
    pub peer_ip: Option<String>,
    /// Country of `source_ip` (not yet filled).
    pub country_code: Option<String>,
    /// Special-purpose ranges `new_ip` lies in.
    pub ip_tags: Vec<String>,
    /// Client software.
    pub user_agent: Option<String>,
    /// How the change was authenticated.
    pub auth_method: String,
}

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
}

/// Appends the audit row of `change`.
pub(super) fn insert_audit(
    conn: &Connection,
    change: &Change<'_>,
    context: &ChangeContext,
    now: &str,
) -> Result<(), StoreError> {
    let tags = serde_json::to_string(&ip_tags(change.new_ip)).expect("strings serialise");
    conn.prepare_cached(
        "INSERT INTO domain_updates (domain_id, fqdn, record_type, old_ip, new_ip, created_at,
                                     source_ip, peer_ip, country_code, ip_tags, user_agent, auth_method)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, ?9, ?10, ?11)",
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
        tags,
        context.user_agent,
        context.auth_method.as_str(),
    ])?;
    Ok(())
}

/// The newest `limit` audit rows of `fqdn` (both record types, removed domains included),
/// newest first.
pub fn history(conn: &Connection, fqdn: &str, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT id, domain_id, fqdn, record_type, old_ip, new_ip, created_at, source_ip, peer_ip,
                country_code, ip_tags, user_agent, auth_method
         FROM domain_updates WHERE fqdn = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = statement
        .query_map(params![fqdn, limit], |row| {
            let tags: String = row.get(10)?;
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
                ip_tags: serde_json::from_str(&tags).unwrap_or_default(),
                user_agent: row.get(11)?,
                auth_method: row.get(12)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

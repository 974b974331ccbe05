//! An RFC 2136 update's write: prerequisites checked, then every change with its audit rows, in
//! one savepoint of the caller's transaction; anything refused undoes all of it (RFC 2136 §3.4:
//! all or nothing).
//!
//! Hosts go through [`updates::apply`], ACME values through [`challenges`], static records
//! through [`records`]: the same writes, rules and audit rows as `/nic/update`, `/acme/*` and
//! `record add`.

use rusqlite::{Connection, OptionalExtension as _, params};

use super::StoreError;
use super::challenges;
use super::domains::find_owned_domains;
use super::records::{self, records_at};
use super::updates::{self, HostOutcome, UpdatePlan};
use super::zones::{Zone, get_zone_by_id};
use crate::model::RecordType;
pub use crate::model::dnsupdate::{
    ChallengeChange, DnsUpdateOutcome, DnsUpdatePlan, FamilyChange, HostChange, Prerequisite,
    StaticChange, UpdateActor,
};
use crate::model::rdata::StaticType;

/// Applies `plan` on `conn`, inside the caller's transaction.
pub fn apply(
    conn: &Connection,
    plan: &DnsUpdatePlan,
    now: &str,
) -> Result<DnsUpdateOutcome, StoreError> {
    let Some(zone) = get_zone_by_id(conn, plan.zone_id)? else {
        return Ok(DnsUpdateOutcome::Refused("the zone is gone".into()));
    };
    for prerequisite in &plan.prerequisites {
        let records = records_at(conn, &zone, prerequisite.name())?;
        if let Err(failure) = prerequisite.check(&records) {
            return Ok(DnsUpdateOutcome::Prerequisite(failure));
        }
    }
    conn.execute_batch("SAVEPOINT dns_update")?;
    let written = write_all(conn, plan, &zone, now);
    match written {
        Ok(Ok(stale)) => {
            conn.execute_batch("RELEASE dns_update")?;
            // The key's last use, to the minute: a client sending many updates a second
            // writes the key's row once a minute, not once per update.
            conn.prepare_cached(
                "UPDATE tsig_keys SET last_used_at = ?2
                 WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < substr(?2, 1, 16))",
            )?
            .execute(params![plan.key_id, now])?;
            Ok(DnsUpdateOutcome::Applied {
                changed: !stale.is_empty(),
                stale,
            })
        }
        Ok(Err(why)) => {
            conn.execute_batch("ROLLBACK TO dns_update; RELEASE dns_update")?;
            Ok(DnsUpdateOutcome::Refused(why))
        }
        Err(error) => {
            conn.execute_batch("ROLLBACK TO dns_update; RELEASE dns_update")?;
            Err(error)
        }
    }
}

/// Every change of `plan`: the stale names, or why one change is refused.
fn write_all(
    conn: &Connection,
    plan: &DnsUpdatePlan,
    zone: &Zone,
    now: &str,
) -> Result<Result<Vec<String>, String>, StoreError> {
    let mut stale = Vec::new();
    let user_id = match plan.actor {
        UpdateActor::Account { user_id } => Some(user_id),
        UpdateActor::Zone { .. } => None,
    };
    for change in &plan.hosts {
        let Some(user_id) = user_id else {
            return Ok(Err("a zone key changes static records only".into()));
        };
        match write_host(conn, plan, user_id, zone, change, now)? {
            Ok(names) => stale.extend(names),
            Err(why) => return Ok(Err(why)),
        }
    }
    for (host, change) in &plan.challenges {
        let Some(user_id) = user_id else {
            return Ok(Err("a zone key changes static records only".into()));
        };
        let outcome = match change {
            ChallengeChange::Present(value) => {
                challenges::present(conn, user_id, host, value, now, &plan.challenges_expire_at)?
            }
            ChallengeChange::CleanUp(value) => {
                challenges::clean_up(conn, user_id, host, value.as_deref(), now)?
            }
        };
        match outcome {
            challenges::ChallengeOutcome::Changed { name } => stale.push(name),
            challenges::ChallengeOutcome::Unchanged => {}
            challenges::ChallengeOutcome::NoHost => {
                return Ok(Err(format!("{host} is not a host of the key's account")));
            }
            challenges::ChallengeOutcome::Disputed(_) => {
                return Ok(Err(format!(
                    "{host}: another account holds a name at, above or beneath it"
                )));
            }
        }
    }
    for change in &plan.statics {
        let UpdateActor::Zone { types } = &plan.actor else {
            return Ok(Err("an account key changes its hosts only".into()));
        };
        match write_static(conn, zone, types, change, now)? {
            Ok(true) => stale.push(zone.name.clone()),
            Ok(false) => {}
            Err(why) => return Ok(Err(why)),
        }
    }
    stale.sort_unstable();
    stale.dedup();
    Ok(Ok(stale))
}

/// One host's change: its stale names, or why it is refused.
fn write_host(
    conn: &Connection,
    plan: &DnsUpdatePlan,
    user_id: i64,
    zone: &Zone,
    change: &HostChange,
    now: &str,
) -> Result<Result<Vec<String>, String>, StoreError> {
    let host = change.host.as_str();
    let owned = find_owned_domains(conn, user_id, host)?;
    if owned.is_empty() || owned.iter().any(|domain| domain.zone_id != zone.id) {
        return Ok(Err(format!(
            "{host} is not a host of the key's account in {}",
            zone.name
        )));
    }
    let mut addresses = Vec::new();
    for (family, record_type) in [(change.v4, RecordType::A), (change.v6, RecordType::Aaaa)] {
        let domain = owned
            .iter()
            .find(|domain| domain.record_type == record_type);
        match (family, domain) {
            (FamilyChange::Keep, _) => {}
            (FamilyChange::Set(ip), Some(_)) => addresses.push(ip),
            (FamilyChange::Set(_), None) | (FamilyChange::Remove(_), None) => {
                return Ok(Err(format!("{host} has no {record_type} record")));
            }
            (FamilyChange::Remove(only), Some(domain)) => {
                let removes = domain.ip.is_some() && only.is_none_or(|ip| domain.ip == Some(ip));
                if removes {
                    return Ok(Err(format!(
                        "{host} keeps an {record_type} address: replace it (delete, then add) \
                         rather than remove it"
                    )));
                }
            }
        }
    }
    if addresses.is_empty() {
        return Ok(Ok(Vec::new()));
    }
    let host_plan = UpdatePlan {
        user_id,
        key_id: None,
        hosts: vec![Some(change.host.clone())],
        addresses,
        prefix: None,
        context: plan.context.clone(),
    };
    let applied = updates::apply(conn, &host_plan, now)?;
    match applied.outcomes.first() {
        Some(HostOutcome::Changed(_) | HostOutcome::Unchanged(_)) => Ok(Ok(applied.stale)),
        other => Ok(Err(format!("{host}: {other:?}"))),
    }
}

/// One static change: whether it changed anything, or why it is refused.
fn write_static(
    conn: &Connection,
    zone: &Zone,
    types: &[StaticType],
    change: &StaticChange,
    now: &str,
) -> Result<Result<bool, String>, StoreError> {
    let (StaticChange::Add { name, .. } | StaticChange::Remove { name, .. }) = change;
    // One name, one owner: a DDNS host's name is its account's, never a zone key's.
    let is_host = conn
        .prepare_cached("SELECT 1 FROM domains WHERE zone_id = ?1 AND fqdn = ?2 LIMIT 1")?
        .query_row(params![zone.id, name], |_| Ok(()))
        .optional()?
        .is_some();
    if is_host {
        return Ok(Err(format!("{name} is a DDNS host of an account")));
    }
    match change {
        StaticChange::Add {
            name,
            record_type,
            content,
            ttl,
        } => {
            let exists = conn
                .prepare_cached(
                    "SELECT 1 FROM records WHERE zone_id = ?1 AND name = ?2 AND type = ?3
                     AND content = ?4",
                )?
                .query_row(
                    params![zone.id, name, record_type.as_str(), content],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if exists {
                return Ok(Ok(false));
            }
            match records::insert_record(conn, zone, name, *record_type, content, *ttl, now) {
                Ok(()) => Ok(Ok(true)),
                Err(StoreError::Conflict(why)) => Ok(Err(why)),
                Err(error) => Err(error),
            }
        }
        StaticChange::Remove {
            name,
            record_type,
            content,
        } => {
            if record_type.is_none() {
                // Every RRset at the name (§2.5.3): only if the key may change every type
                // there; a name holding a DDNS host is an account's, never a zone key's.
                let held: Vec<String> = records::types_at(conn, zone.id, name)?;
                if let Some(other) = held
                    .iter()
                    .find(|held| !types.iter().any(|t| t.as_str() == held.as_str()))
                {
                    return Ok(Err(format!(
                        "{name} holds {other} records, which the key may not change"
                    )));
                }
            }
            let mut removed = 0;
            for record_type in record_type.map_or_else(|| types.to_vec(), |t| vec![t]) {
                removed += records::remove_records(
                    conn,
                    zone,
                    name,
                    record_type,
                    content.as_deref(),
                    now,
                )?;
            }
            Ok(Ok(removed > 0))
        }
    }
}

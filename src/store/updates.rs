//! Pointing a user's hosts at new addresses: what each host comes to, and the write of every
//! change with its audit row.
//!
//! Protocol-free: the dyndns2 layer turns a [`HostOutcome`] into its answer codes. The
//! decision ([`decide`]) is a pure function of the host's domains, so the update path can take
//! it on a read first (most requests change nothing) and again inside the write transaction,
//! where it counts.

use std::net::IpAddr;

use rusqlite::Connection;

use super::StoreError;
use super::audit::ChangeContext;
use super::domains::{Domain, change_address, find_owned_domains, touch_checked};
use super::keys::touch_key;
use crate::model::{DomainName, IpError, RecordType, check_family};

/// An authenticated update, parsed and checked as far as it can be without the store.
#[derive(Debug, Clone)]
pub struct UpdatePlan {
    /// The user acting.
    pub user_id: i64,
    /// The API key used, if any: its `last_used_at` is set.
    pub key_id: Option<i64>,
    /// The hosts, in the request's order; `None` for one the caller has already answered.
    pub hosts: Vec<Option<DomainName>>,
    /// The addresses to set, at most one per family; none: keep what each host has.
    pub addresses: Vec<IpAddr>,
    /// Who asked, for the audit trail.
    pub context: ChangeContext,
}

/// What an update comes to for one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostOutcome {
    /// Answered by the caller before the store was asked.
    Skipped,
    /// The user has no domain at that name.
    NoHost,
    /// An address of a family the host has no domain for: nothing of the host changed.
    WrongFamily(IpError),
    /// Every address was already there; the addresses the host has now.
    Unchanged(Vec<IpAddr>),
    /// At least one address changed; the addresses the host has now.
    Changed(Vec<IpAddr>),
}

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// One outcome per host of the plan, in its order.
    pub outcomes: Vec<HostOutcome>,
    /// The names whose cached answers are now stale (see [`apply`]).
    pub stale: Vec<String>,
}

/// The update of one host, decided from its domains as they are.
#[derive(Debug)]
pub struct Decision<'a> {
    /// What it comes to.
    pub outcome: HostOutcome,
    /// Domains to point at a new address.
    pub changes: Vec<(&'a Domain, IpAddr)>,
    /// Domains that already have the address asked for.
    pub unchanged: Vec<i64>,
}

/// Decides the update of a host owned as `owned` to `addresses` (at most one per family):
/// every address needs a domain of its family, otherwise nothing of this host changes.
pub fn decide<'a>(owned: &'a [Domain], addresses: &[IpAddr]) -> Decision<'a> {
    let nothing = |outcome| Decision {
        outcome,
        changes: Vec::new(),
        unchanged: Vec::new(),
    };
    let Some(first) = owned.first() else {
        return nothing(HostOutcome::NoHost);
    };
    let mut decision = nothing(HostOutcome::NoHost);
    for ip in addresses {
        let Some(domain) = owned
            .iter()
            .find(|domain| domain.record_type == RecordType::of(*ip))
        else {
            let error = check_family(first.record_type, *ip)
                .expect_err("no domain of the address's family");
            return nothing(HostOutcome::WrongFamily(error));
        };
        if domain.ip == Some(*ip) {
            decision.unchanged.push(domain.id);
        } else {
            decision.changes.push((domain, *ip));
        }
    }
    let shown: Vec<IpAddr> = if addresses.is_empty() {
        // Everything preserved: show what the host has.
        owned.iter().filter_map(|domain| domain.ip).collect()
    } else {
        addresses.to_vec()
    };
    decision.outcome = if decision.changes.is_empty() {
        HostOutcome::Unchanged(shown)
    } else {
        HostOutcome::Changed(shown)
    };
    decision
}

/// Applies `plan` on `conn`, which the caller holds inside one transaction: every change with
/// its audit row and the zone's serial, the "last seen" times of what did not change, and the
/// key's last use.
///
/// [`Applied::stale`] holds what pdns may have cached wrongly now: the host's name for a
/// changed address; the whole zone when a record gets its first address, since the name may
/// have been cached as nonexistent (negative caching) and the zone's SOA serial moved.
pub fn apply(conn: &Connection, plan: &UpdatePlan, now: &str) -> Result<Applied, StoreError> {
    if let Some(key_id) = plan.key_id {
        touch_key(conn, key_id, now)?;
    }
    let mut outcomes = Vec::with_capacity(plan.hosts.len());
    let mut stale = Vec::new();
    for host in &plan.hosts {
        let Some(host) = host else {
            outcomes.push(HostOutcome::Skipped);
            continue;
        };
        let owned = find_owned_domains(conn, plan.user_id, host.as_str())?;
        let decision = decide(&owned, &plan.addresses);
        for domain_id in decision.unchanged {
            touch_checked(conn, domain_id, now)?;
        }
        for (domain, ip) in decision.changes {
            change_address(conn, domain, ip, &plan.context, now)?;
            stale.push(if domain.ip.is_none() {
                domain.zone.clone()
            } else {
                domain.fqdn.clone()
            });
        }
        outcomes.push(decision.outcome);
    }
    stale.sort();
    stale.dedup();
    Ok(Applied { outcomes, stale })
}

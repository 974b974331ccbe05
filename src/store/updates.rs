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
use super::domains::{
    Domain, change_address_from, find_followers, find_owned_domains, touch_checked,
};
use super::keys::touch_key;
pub use crate::model::domain::{HostOutcome, UpdatePlan};
use crate::model::{DomainName, PrefixUpdate, RecordType, check_family};

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
    /// Domains to point at a new address, and whether the address was made from the prefix.
    pub changes: Vec<(&'a Domain, IpAddr, bool)>,
    /// Domains that already have the address asked for.
    pub unchanged: Vec<i64>,
}

/// Decides the update of a host owned as `owned` to `addresses` (at most one per family) and
/// `prefix`. An address of a family the host has no domain for is left aside when another
/// address (or the prefix) is for the host, as deSEC and Dyn do: a dual-stack router's request
/// serves an IPv4-only name. A request with nothing for the host (an IPv6 address alone for an
/// A-only name) changes nothing of it and says why. With a prefix, the host's AAAA domain that
/// has an interface identifier takes its address from the prefix (an IPv6 address sent beside
/// it is for hosts without one).
pub fn decide<'a>(
    owned: &'a [Domain],
    addresses: &[IpAddr],
    prefix: Option<&PrefixUpdate>,
) -> Decision<'a> {
    let nothing = |outcome| Decision {
        outcome,
        changes: Vec::new(),
        unchanged: Vec::new(),
    };
    let Some(first) = owned.first() else {
        return nothing(HostOutcome::NoHost);
    };
    let prefixed = prefix.and_then(|prefix| {
        owned.iter().find_map(|domain| {
            let suffix = domain
                .suffix
                .filter(|_| domain.record_type == RecordType::Aaaa)?;
            Some((domain, suffix.address(&prefix.prefix)))
        })
    });
    let mut targets: Vec<(&Domain, IpAddr, bool)> = Vec::new();
    match prefixed {
        Some((_, Err(error))) => return nothing(HostOutcome::BadPrefix(error)),
        Some((domain, Ok(ip))) => {
            for ip in addresses.iter().filter(|ip| ip.is_ipv4()) {
                if let Some(domain) = owned
                    .iter()
                    .find(|domain| domain.record_type == RecordType::A)
                {
                    targets.push((domain, *ip, false));
                }
            }
            targets.push((domain, IpAddr::V6(ip), true));
        }
        None => {
            for ip in addresses {
                if let Some(domain) = owned
                    .iter()
                    .find(|domain| domain.record_type == RecordType::of(*ip))
                {
                    targets.push((domain, *ip, false));
                }
            }
            // Addresses sent, none of them for this host: say which family it has. (With a
            // prefix the request is for the host's network; its followers take it.)
            if let (true, Some(ip)) = (targets.is_empty() && prefix.is_none(), addresses.first()) {
                let error = check_family(first.record_type, *ip)
                    .expect_err("no domain of the address's family");
                return nothing(HostOutcome::WrongFamily(error));
            }
        }
    }
    let mut decision = nothing(HostOutcome::NoHost);
    for (domain, ip, from_prefix) in &targets {
        if domain.ip == Some(*ip) {
            decision.unchanged.push(domain.id);
        } else {
            decision.changes.push((domain, *ip, *from_prefix));
        }
    }
    let shown: Vec<IpAddr> = if targets.is_empty() {
        // Everything preserved: show what the host has.
        owned.iter().filter_map(|domain| domain.ip).collect()
    } else {
        targets.iter().map(|(_, ip, _)| *ip).collect()
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
    let prefix = plan.prefix.as_ref();
    // With a prefix, the hosts following the named ones move too. Every host and follower is
    // checked before anything is written: a prefix that fits one host but not another changes
    // nothing, and a host refused (nothing in the request for it) keeps its followers too, so
    // that a host answered 4xx has changed nothing.
    let mut following = Vec::new();
    if let Some(prefix) = prefix {
        let named: Vec<&str> = plan
            .hosts
            .iter()
            .flatten()
            .map(DomainName::as_str)
            .collect();
        let mut leading = Vec::with_capacity(named.len());
        for host in &named {
            let owned = find_owned_domains(conn, plan.user_id, host)?;
            match decide(&owned, &plan.addresses, Some(prefix)).outcome {
                HostOutcome::BadPrefix(error) => {
                    return Ok(refused(plan, HostOutcome::BadPrefix(error)));
                }
                HostOutcome::Changed(_) | HostOutcome::Unchanged(_) => leading.push(*host),
                _ => {}
            }
        }
        for follower in find_followers(conn, plan.user_id, &leading)? {
            if named.contains(&follower.fqdn.as_str()) {
                continue;
            }
            let Some(suffix) = follower.suffix else {
                continue;
            };
            match suffix.address(&prefix.prefix) {
                Ok(ip) => following.push((follower, IpAddr::V6(ip))),
                Err(error) => return Ok(refused(plan, HostOutcome::BadPrefix(error))),
            }
        }
    }

    if let Some(key_id) = plan.key_id {
        touch_key(conn, key_id, now)?;
    }
    let mut outcomes = Vec::with_capacity(plan.hosts.len());
    let mut stale = Vec::new();
    let mut change = |domain: &Domain, ip: IpAddr, from_prefix: bool| -> Result<(), StoreError> {
        change_address_from(
            conn,
            domain,
            ip,
            prefix.filter(|_| from_prefix),
            &plan.context,
            now,
        )?;
        stale.push(if domain.ip.is_none() {
            domain.zone.clone()
        } else {
            domain.fqdn.clone()
        });
        Ok(())
    };
    for host in &plan.hosts {
        let Some(host) = host else {
            outcomes.push(HostOutcome::Skipped);
            continue;
        };
        // Read after the writes of the hosts before: a host named twice is `nochg` the
        // second time.
        let owned = find_owned_domains(conn, plan.user_id, host.as_str())?;
        let decision = decide(&owned, &plan.addresses, prefix);
        for domain_id in decision.unchanged {
            touch_checked(conn, domain_id, now)?;
        }
        for (domain, ip, from_prefix) in decision.changes {
            change(domain, ip, from_prefix)?;
        }
        outcomes.push(decision.outcome);
    }
    for (follower, ip) in following {
        if follower.ip == Some(ip) {
            touch_checked(conn, follower.id, now)?;
        } else {
            change(&follower, ip, true)?;
        }
    }
    stale.sort();
    stale.dedup();
    Ok(Applied { outcomes, stale })
}

/// What a plan refused as a whole comes to: `outcome` for every host it names.
fn refused(plan: &UpdatePlan, outcome: HostOutcome) -> Applied {
    Applied {
        outcomes: plan
            .hosts
            .iter()
            .map(|host| match host {
                Some(_) => outcome.clone(),
                None => HostOutcome::Skipped,
            })
            .collect(),
        stale: Vec::new(),
    }
}

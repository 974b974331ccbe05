//! DDNS domains, and what an update asks of them and comes to, as the protocols and the store
//! both speak of them.

use std::net::IpAddr;

use super::audit::ChangeContext;
use super::{DomainName, HostSuffix, IpError, PrefixError, PrefixUpdate, RecordType};

/// A domain row, with its owner's and zone's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// Row id.
    pub id: i64,
    /// Name.
    pub fqdn: String,
    /// Owner's user id.
    pub user_id: i64,
    /// Owner's username.
    pub owner: String,
    /// Zone row id.
    pub zone_id: i64,
    /// Zone name.
    pub zone: String,
    /// `A` or `AAAA`.
    pub record_type: RecordType,
    /// Current address; None before the first update.
    pub ip: Option<IpAddr>,
    /// Creation time.
    pub created_at: String,
    /// Last address change.
    pub updated_at: String,
    /// Last authenticated update request, changed or not.
    pub last_checked_at: Option<String>,
    /// What an AAAA domain keeps when its network's prefix changes; None: it takes whole
    /// addresses only.
    pub suffix: Option<HostSuffix>,
    /// The name whose prefix updates this domain too (same owner), if any.
    pub follows: Option<String>,
}

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
    /// A network prefix for the hosts with an interface identifier (and those following the
    /// hosts named).
    pub prefix: Option<PrefixUpdate>,
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
    /// The prefix does not fit the host (or a host following it): nothing of the request
    /// changed.
    BadPrefix(PrefixError),
    /// Every address was already there; the addresses the host has now.
    Unchanged(Vec<IpAddr>),
    /// At least one address changed; the addresses the host has now.
    Changed(Vec<IpAddr>),
}

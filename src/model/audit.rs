//! What the audit trail and the admin's views record: the context of a change, the rows of
//! history, abuse episodes and login blocks.

use std::borrow::Cow;
use std::net::IpAddr;
use std::time::SystemTime;

use serde::Serialize;

use super::{AuthMethod, IpFacts};

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
    /// The TSIG key that signed it, for [`AuthMethod::Tsig`].
    pub tsig_key: Option<String>,
    /// Country and tags of `source_ip` (none for the admin CLI).
    pub source_facts: IpFacts,
    /// Country and tags of the addresses the change may set, found before the write so that
    /// no lookup runs inside the transaction. An address missing here is recorded with its
    /// special-purpose tags alone ([`IpFacts::special`]).
    pub address_facts: Vec<(IpAddr, IpFacts)>,
    /// Country and tags of the network of the update's IPv6 prefix, if any: what the audit
    /// rows of the addresses made from it record (one lookup for every host of the network).
    pub prefix_facts: IpFacts,
}

impl ChangeContext {
    /// The context of a change made with the admin CLI.
    pub fn admin() -> Self {
        Self {
            source_ip: None,
            peer_ip: None,
            user_agent: None,
            auth_method: AuthMethod::Admin,
            tsig_key: None,
            source_facts: IpFacts::default(),
            address_facts: Vec::new(),
            prefix_facts: IpFacts::default(),
        }
    }

    /// What is known of `ip`, a new address of the change.
    pub fn facts_of(&self, ip: IpAddr) -> Cow<'_, IpFacts> {
        self.address_facts
            .iter()
            .find(|(address, _)| *address == ip)
            .map_or_else(
                || Cow::Owned(IpFacts::special(ip)),
                |(_, facts)| Cow::Borrowed(facts),
            )
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
    /// Country of `new_ip` (ISO 3166-1 alpha-2).
    pub country_code: Option<String>,
    /// Tags of `new_ip`: special-purpose ranges, `asn:NUMBER`, the operator's lists.
    pub ip_tags: Vec<String>,
    /// Country of `source_ip`.
    pub source_country_code: Option<String>,
    /// Tags of `source_ip`.
    pub source_ip_tags: Vec<String>,
    /// Client software.
    pub user_agent: Option<String>,
    /// How the change was authenticated.
    pub auth_method: String,
    /// The TSIG key that signed it (auth method `tsig`).
    pub tsig_key: Option<String>,
}

/// Where a page of history starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageStart {
    /// The newest rows.
    Newest,
    /// The rows older than the row with this id.
    Before(i64),
    /// The rows newer than the row with this id (the page before, going back).
    After(i64),
}

/// The state of one episode, as the update path knows it: plain times, formatted only when
/// written (a flood refuses many requests a second, the row is written once a second).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Episode {
    /// The first refused request.
    pub started_at: SystemTime,
    /// The last refused request so far.
    pub last_refused_at: SystemTime,
    /// Requests refused so far.
    pub refused: u64,
    /// When the flag lifts unless more requests come above the rate.
    pub clears_at: SystemTime,
}

/// Who a block is against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Blocked {
    /// An account (by id): the failures named its username or email.
    Account(i64),
    /// A client address.
    Client(IpAddr),
}

/// A block as the service starts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginBlock {
    /// Who.
    pub subject: Blocked,
    /// Failures within the window that started it.
    pub failures: u32,
    /// When it started.
    pub blocked_at: SystemTime,
    /// When it ends unless lifted.
    pub blocked_until: SystemTime,
}

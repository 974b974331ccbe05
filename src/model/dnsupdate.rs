//! An RFC 2136 update as the store applies it: what the message's prerequisites ask of the
//! zone, and what its update section comes to per kind of record this service keeps.
//!
//! The RFC 2136 listener (`rfc2136/`) reads the message, checks each change against the key's
//! scope, and builds a [`DnsUpdatePlan`]; the store decides the prerequisites and writes every
//! change in one transaction, or nothing ([`DnsUpdateOutcome`]). Nothing here knows the wire
//! format.

use std::net::IpAddr;

use super::DomainName;
use super::audit::ChangeContext;
use super::rdata::{ServedType, StaticType};
use super::zone::ServedRecord;

/// A prerequisite (RFC 2136 §2.4), on a name inside the zone (lower case, no final dot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prerequisite {
    /// §2.4.4: the name has at least one record (else NXDOMAIN).
    NameInUse(String),
    /// §2.4.5: the name has no record (else YXDOMAIN).
    NameNotInUse(String),
    /// §2.4.1: an RRset of the type exists at the name (else NXRRSET).
    RrsetExists(String, ServedType),
    /// §2.4.3: no RRset of the type exists at the name (else YXRRSET).
    RrsetAbsent(String, ServedType),
    /// §2.4.2: the RRset of the type at the name is exactly these contents, in the
    /// presentation format the store serves (else NXRRSET).
    RrsetIs(String, ServedType, Vec<String>),
    /// A type this service never serves, whose RRset therefore never exists.
    UnservedExists(String),
}

/// Why a prerequisite failed: the RCODE the answer carries (RFC 2136 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrerequisiteFailure {
    /// A name that should not exist does (6).
    YxDomain,
    /// An RRset that should not exist does (7).
    YxRrset,
    /// A name that should exist does not (3).
    NxDomain,
    /// An RRset that should exist does not, or differs (8).
    NxRrset,
}

impl Prerequisite {
    /// The name it is about.
    pub fn name(&self) -> &str {
        match self {
            Self::NameInUse(name)
            | Self::NameNotInUse(name)
            | Self::RrsetExists(name, _)
            | Self::RrsetAbsent(name, _)
            | Self::RrsetIs(name, _, _)
            | Self::UnservedExists(name) => name,
        }
    }

    /// Checks it against `records`, every record served at its name.
    pub fn check(&self, records: &[ServedRecord]) -> Result<(), PrerequisiteFailure> {
        let of_type = |record_type: ServedType| {
            records
                .iter()
                .filter(move |record| record.record_type == record_type)
        };
        match self {
            Self::NameInUse(_) if records.is_empty() => Err(PrerequisiteFailure::NxDomain),
            Self::NameNotInUse(_) if !records.is_empty() => Err(PrerequisiteFailure::YxDomain),
            Self::RrsetExists(_, record_type) if of_type(*record_type).next().is_none() => {
                Err(PrerequisiteFailure::NxRrset)
            }
            Self::RrsetAbsent(_, record_type) if of_type(*record_type).next().is_some() => {
                Err(PrerequisiteFailure::YxRrset)
            }
            Self::RrsetIs(_, record_type, wanted) => {
                let mut served: Vec<&str> = of_type(*record_type)
                    .map(|record| record.content.as_str())
                    .collect();
                let mut wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
                served.sort_unstable();
                served.dedup();
                wanted.sort_unstable();
                wanted.dedup();
                if served.is_empty() || served != wanted {
                    Err(PrerequisiteFailure::NxRrset)
                } else {
                    Ok(())
                }
            }
            Self::UnservedExists(_) => Err(PrerequisiteFailure::NxRrset),
            _ => Ok(()),
        }
    }
}

/// What an update does to one address family of a DDNS host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FamilyChange {
    /// Nothing.
    #[default]
    Keep,
    /// Point it at this address (an RRset delete before it, as ddclient sends, included).
    Set(IpAddr),
    /// Remove its address: every one (None), or only this one. A DDNS host always holds an
    /// address, so this is refused unless it removes nothing (RFC 2136 §3.4.2.4: deleting a
    /// record that is not there is no change).
    Remove(Option<IpAddr>),
}

/// What an update does to a DDNS host of the key's account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostChange {
    /// The host.
    pub host: DomainName,
    /// Its A.
    pub v4: FamilyChange,
    /// Its AAAA.
    pub v6: FamilyChange,
}

/// What an update does to the ACME values at `_acme-challenge.<host>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChallengeChange {
    /// Add a value.
    Present(String),
    /// Remove a value, or every value (None).
    CleanUp(Option<String>),
}

/// What an update does to the static records of the zone (an admin's zone or subtree key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StaticChange {
    /// Add a record (RFC 2136 §3.4.2.2: one already there is no change).
    Add {
        /// Owner name.
        name: String,
        /// Type.
        record_type: StaticType,
        /// Content, in the presentation format the store keeps.
        content: String,
        /// TTL.
        ttl: u32,
    },
    /// Remove records at `name`: of `record_type` (None: every type the key may change), only
    /// the one with `content` when given.
    Remove {
        /// Owner name.
        name: String,
        /// Type, or every type of the key.
        record_type: Option<StaticType>,
        /// Content, or every record of the type.
        content: Option<String>,
    },
}

/// Who the update acts for, and what it may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateActor {
    /// An account's key: the account's hosts and ACME values.
    Account {
        /// The account.
        user_id: i64,
    },
    /// An admin's zone or subtree key: static records of these types.
    Zone {
        /// The types the key may change.
        types: Vec<StaticType>,
    },
}

/// Everything an RFC 2136 message asks, as the store applies it: all of it, or none.
#[derive(Debug, Clone)]
pub struct DnsUpdatePlan {
    /// The zone of the message's zone section.
    pub zone_id: i64,
    /// The TSIG key that signed it (its last use is recorded).
    pub key_id: i64,
    /// Who acts.
    pub actor: UpdateActor,
    /// Checked first, in order, inside the write's transaction.
    pub prerequisites: Vec<Prerequisite>,
    /// DDNS hosts (account keys).
    pub hosts: Vec<HostChange>,
    /// ACME values (account keys).
    pub challenges: Vec<(DomainName, ChallengeChange)>,
    /// Static records (zone keys).
    pub statics: Vec<StaticChange>,
    /// Until when ACME values added live.
    pub challenges_expire_at: String,
    /// The audit rows' context.
    pub context: ChangeContext,
}

/// What the store made of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsUpdateOutcome {
    /// Every change is written (or there was nothing to change): NOERROR.
    Applied {
        /// Names whose cached answers are now stale (the zone's, when its serial moved).
        stale: Vec<String>,
        /// Whether anything changed.
        changed: bool,
    },
    /// A prerequisite failed; nothing was written.
    Prerequisite(PrerequisiteFailure),
    /// A change cannot be made (a host the account does not hold, a family the host lacks, a
    /// record that does not fit); nothing was written. Why, for the log.
    Refused(String),
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::model::zone::RecordSource;

    fn record(record_type: StaticType, content: &str) -> ServedRecord {
        ServedRecord {
            name: "h.dyn.example".into(),
            record_type: ServedType::Stored(record_type),
            content: content.into(),
            ttl: 60,
            source: RecordSource::Static,
        }
    }

    #[test]
    fn prerequisites_answer_as_rfc_2136_section_3_2_says() {
        let name = || "h.dyn.example".to_string();
        let a = ServedType::Stored(StaticType::A);
        let txt = ServedType::Stored(StaticType::Txt);
        let served = [record(StaticType::A, "192.0.2.1")];
        let check =
            |prerequisite: Prerequisite, records: &[ServedRecord]| prerequisite.check(records);
        assert_eq!(check(Prerequisite::NameInUse(name()), &served), Ok(()));
        assert_eq!(
            check(Prerequisite::NameInUse(name()), &[]),
            Err(PrerequisiteFailure::NxDomain)
        );
        assert_eq!(
            check(Prerequisite::NameNotInUse(name()), &served),
            Err(PrerequisiteFailure::YxDomain)
        );
        assert_eq!(check(Prerequisite::RrsetExists(name(), a), &served), Ok(()));
        assert_eq!(
            check(Prerequisite::RrsetExists(name(), txt), &served),
            Err(PrerequisiteFailure::NxRrset)
        );
        assert_eq!(
            check(Prerequisite::RrsetAbsent(name(), a), &served),
            Err(PrerequisiteFailure::YxRrset)
        );
        assert_eq!(
            check(
                Prerequisite::RrsetIs(name(), a, vec!["192.0.2.1".into()]),
                &served
            ),
            Ok(())
        );
        assert_eq!(
            check(
                Prerequisite::RrsetIs(name(), a, vec!["192.0.2.2".into()]),
                &served
            ),
            Err(PrerequisiteFailure::NxRrset)
        );
        assert_eq!(
            check(Prerequisite::UnservedExists(name()), &served),
            Err(PrerequisiteFailure::NxRrset)
        );
    }
}

//! ACME DNS-01 challenge values: the name they live at, and what setting one came to.

use super::DomainName;
use super::ownership::OwnershipConflict;

/// The label a challenge name starts with (RFC 8555 §8.4).
pub const CHALLENGE_LABEL: &str = "_acme-challenge";

/// What a challenge request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChallengeOutcome {
    /// The user has no domain at that host name.
    NoHost,
    /// The value was added (and the oldest ones dropped beyond the limit), or removed.
    Changed {
        /// The name served (`_acme-challenge.<host>`), whose cached answers are now stale.
        name: String,
    },
    /// The value was there already (its expiry moved on), or was not there to remove.
    Unchanged,
    /// The host breaks the one-name-one-owner rule ([`crate::model::ownership`]): it is a
    /// zone apex, or another account holds a name at, above or beneath it (a store made
    /// before the rule). No value is set until an admin resolves it. Why, for the log (it
    /// names another account: never for the client).
    Disputed(OwnershipConflict),
}

/// The challenge name of `host`.
pub fn challenge_name(host: &DomainName) -> String {
    format!("{CHALLENGE_LABEL}.{}", host.as_str())
}

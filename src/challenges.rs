//! ACME DNS-01 challenge values, as every way in sets them: the ACME endpoints (`acme.rs`:
//! lego's `httpreq`, acme-dns) and `txt=` on the update endpoints (`dyndns`). One home for what
//! a value may be, the pace (a script flooding either is held to the pace of updates), the
//! write, its log line and the purge of pdns's caches.

use std::sync::Arc;
use std::time::Duration;

use crate::abuse::{Pace, UpdateRateGuard};
use crate::model::DomainName;
use crate::model::challenge::{CHALLENGE_LABEL, ChallengeOutcome, challenge_name};
use crate::purge::Purging;
use crate::served::Served;
use crate::served::StoreError;

/// The longest value taken: one TXT string (an ACME value has 43 characters).
const MAX_VALUE_LENGTH: usize = 255;

/// Whether `value` can be a DNS-01 value: base64url characters, 1 to 255 of them. Nothing
/// else is served, so no value needs escaping in a TXT record.
pub fn valid_value(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_VALUE_LENGTH
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

/// The host of a challenge name as lego sends it (`_acme-challenge.home.dyn.example.`, the
/// final dot optional, any case); None for any other name.
pub fn host_of(fqdn: &str) -> Option<DomainName> {
    let fqdn = fqdn.strip_suffix('.').unwrap_or(fqdn);
    let (label, host) = fqdn.split_once('.')?;
    if !label.eq_ignore_ascii_case(CHALLENGE_LABEL) {
        return None;
    }
    host.parse().ok()
}

/// Why values for a host are refused (one name, one owner), as every endpoint says it (403):
/// it does not say whose.
pub const DISPUTED: &str = "disputed: this host is a zone apex, or another account holds a name \
                            at, above or beneath it; ACME values are refused until an admin \
                            resolves it";

/// What a request asks of a host's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Add the value.
    Present(String),
    /// Remove the value, or every value (None).
    CleanUp(Option<String>),
}

/// Why a value was not changed.
#[derive(Debug, thiserror::Error)]
pub enum ChallengeError {
    /// The host's pace is exceeded: `abuse`.
    #[error("flagged for abuse")]
    Abuse,
    /// The store failed; nothing changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Sets and removes the values. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Challenges {
    /// The store, as `serve` holds it.
    served: Served,
    /// The update pace, shared with the update endpoints.
    rate_guard: Arc<UpdateRateGuard>,
    /// Purges pdns's caches after a change.
    purging: Purging,
}

impl Challenges {
    /// Values in `served`, paced by `rate_guard`, purged through `purging`.
    pub fn new(served: Served, rate_guard: Arc<UpdateRateGuard>, purging: Purging) -> Self {
        Self {
            served,
            rate_guard,
            purging,
        }
    }

    /// Applies `operation` to `user_id`'s `host` (values live `lifetime`), then purges the
    /// name from pdns's caches.
    pub async fn apply(
        &self,
        user_id: i64,
        host: DomainName,
        operation: Operation,
        lifetime: Duration,
    ) -> Result<ChallengeOutcome, ChallengeError> {
        let shown = host.to_string();
        let name = challenge_name(&host);
        if let Pace::Refused(episode) = self.rate_guard.admit(user_id, &name) {
            self.served.note_abuse(user_id, &name, &episode);
            return Err(ChallengeError::Abuse);
        }
        let (present, result) = match operation {
            Operation::Present(value) => (
                true,
                self.served
                    .present_challenge(user_id, host, value, lifetime)
                    .await,
            ),
            Operation::CleanUp(value) => (
                false,
                self.served.clean_up_challenge(user_id, host, value).await,
            ),
        };
        let outcome = result.inspect_err(|error| {
            tracing::error!(%error, "ACME challenge not changed: store failure");
        })?;
        if let ChallengeOutcome::Disputed(conflict) = &outcome {
            tracing::warn!(host = %shown, user_id, %conflict, "ACME value refused");
        }
        if let ChallengeOutcome::Changed { name } = &outcome {
            tracing::info!(
                host = %shown,
                user_id,
                "ACME challenge value {}",
                if present { "set" } else { "removed" }
            );
            self.purging.purge(vec![name.clone()]).await;
        }
        Ok(outcome)
    }

    /// Removes the values past their expiry, and purges their names.
    pub async fn expire(&self) {
        match self.served.expire_challenges().await {
            Ok(names) if names.is_empty() => {}
            Ok(names) => {
                tracing::debug!(names = names.len(), "expired ACME challenge values removed");
                self.purging.purge(names).await;
            }
            Err(error) => tracing::warn!(%error, "cannot remove expired ACME challenge values"),
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn only_challenge_names_and_base64url_values_are_taken() {
        assert_eq!(
            host_of("_acme-challenge.home.dyn.example.").map(|h| h.to_string()),
            Some("home.dyn.example".into())
        );
        assert_eq!(
            host_of("_ACME-Challenge.Home.Dyn.Example").map(|h| h.to_string()),
            Some("home.dyn.example".into())
        );
        for other in [
            "home.dyn.example.",
            "_acme-challenge.",
            "_acme-challengex.home.dyn.example.",
            "x._acme-challenge.home.dyn.example",
            "_acme-challenge.bad..name",
        ] {
            assert!(host_of(other).is_none(), "{other}");
        }
        assert!(valid_value("LHDhK3oGRvkiefQnx7OOczTY5Tic_xZ6HcMOc_gmtoM"));
        for bad in ["", "a b", "x\"y", "a;b", "é", &"a".repeat(256)] {
            assert!(!valid_value(bad), "{bad:?}");
        }
    }
}

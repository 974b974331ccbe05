//! Applying an update: authenticate, check the hosts and addresses, then write every change
//! with its audit row in one transaction.
//!
//! No hyper types here: [`Updater::apply`] takes a parsed `UpdateRequest` and the client's
//! addresses and returns an [`Answer`]. Store failures become `dnserr` here, logged with their
//! cause; the detail never reaches the client.
//!
//! Order, as the product spec gives it: credentials (`badauth`, once), the host list
//! (`notfqdn`/`numhost` once when unusable), the addresses (400 once when malformed), then per
//! host: name (`notfqdn`), pace (`abuse`), ownership (`nohost`), family (400), the write.

use std::net::IpAddr;
use std::sync::Arc;

use super::address::{AddressPlan, Target};
use super::request::{HostListError, ParsedUpdate};
use super::response::{AddressList, Answer, ReturnCode};
use crate::abuse::{Pace, UpdateRateGuard};
use crate::auth::{AuthError, Authenticator, Purpose};
use crate::http::client::ClientAddress;
use crate::intel::IpIntel;
use crate::model::PrefixUpdate;
use crate::model::audit::ChangeContext;
use crate::model::domain::{HostOutcome, UpdatePlan};
use crate::model::time::timestamp;
use crate::purge::Purging;
use crate::served::Served;

/// Applies updates against the store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Updater {
    /// The store, as `serve` holds it.
    served: Served,
    /// Checks credentials.
    authenticator: Authenticator,
    /// Update pace per user and host, shared by all clones.
    rate_guard: Arc<UpdateRateGuard>,
    /// Purges pdns's caches after changes.
    purging: Purging,
    /// Country and tags of addresses, for the audit rows of changes.
    intel: IpIntel,
}

impl Updater {
    /// An updater over `served`, authenticating with `authenticator`, within `[limits]`.
    pub fn new(
        served: Served,
        authenticator: Authenticator,
        rate_guard: Arc<UpdateRateGuard>,
    ) -> Self {
        Self {
            served,
            authenticator,
            rate_guard,
            purging: Purging::default(),
            intel: IpIntel::none(),
        }
    }

    /// Records in each change's audit row what `intel` knows of its addresses.
    pub fn with_intel(mut self, intel: IpIntel) -> Self {
        self.intel = intel;
        self
    }

    /// Purges pdns's caches through `purging` after each change.
    pub fn with_purging(mut self, purging: Purging) -> Self {
        self.purging = purging;
        self
    }

    /// Checks `credentials` for `purpose`: the acting user's id, or the answer to a failure
    /// (`badauth`, `911`, `dnserr`), under the same limits as updates.
    pub(super) async fn authenticate_for(
        &self,
        credentials: Option<crate::auth::Credentials>,
        client: ClientAddress,
        purpose: Purpose,
    ) -> Result<i64, ReturnCode> {
        self.authenticator
            .authenticate_user(credentials, client.source, purpose)
            .await
            .map_err(refusal)
    }

    /// Purges `names` from pdns's caches (see [`Purging::purge`]).
    async fn purge(&self, names: Vec<String>) {
        self.purging.purge(names).await;
    }

    /// Applies `limits` from now on (a reload, SIGHUP): the update pace here, authentication's
    /// in the authenticator. Hosts flagged stay flagged.
    pub fn reconfigure_limits(&self, limits: &crate::config::Limits) {
        self.rate_guard.set_rules(crate::abuse::pace_rules(limits));
        self.authenticator.reconfigure(limits);
    }

    /// Runs one update request to its answer.
    pub async fn apply(&self, request: ParsedUpdate, client: ClientAddress) -> Answer {
        // One look at the store's currency for all of this request's memoised reads.
        let stamp = self.served.read_stamp();
        let principal = match self
            .authenticator
            .authenticate(request.credentials, client.source, stamp, Purpose::Update)
            .await
        {
            Ok(principal) => principal,
            Err(error) => return Answer::once(refusal(error)),
        };
        let names = match request.hosts {
            Ok(names) => names,
            Err(HostListError::Missing) => return Answer::once(ReturnCode::Notfqdn),
            Err(HostListError::TooMany) => return Answer::once(ReturnCode::Numhost),
        };
        let addresses = match request.addresses {
            Ok(plan) => with_detected_address(plan, client.source).to_set(),
            Err(error) => return Answer::once(ReturnCode::BadAddress(error)),
        };
        let prefix = match request.prefix {
            Ok(prefix) => prefix,
            Err(error) => return Answer::once(ReturnCode::BadPrefix(error)),
        };
        // Per host, the answers that need no store (`notfqdn`, `abuse`); `None` for the hosts
        // left to the store.
        let early: Vec<Option<ReturnCode>> = names
            .iter()
            .map(|name| match name {
                None => Some(ReturnCode::Notfqdn),
                Some(host) => match self.rate_guard.admit(principal.user_id, host.as_str()) {
                    Pace::Admitted => None,
                    Pace::Refused(episode) => {
                        self.served
                            .note_abuse(principal.user_id, host.as_str(), &episode);
                        Some(ReturnCode::Abuse)
                    }
                },
            })
            .collect();
        if early.iter().all(Option::is_some) {
            // Nothing to look up: answer without touching the store, so floods stay cheap.
            return Answer::per_host(early.into_iter().flatten().collect());
        }
        let mut plan = UpdatePlan {
            user_id: principal.user_id,
            key_id: principal.key_id,
            hosts: names
                .into_iter()
                .zip(&early)
                .map(|(name, code)| name.filter(|_| code.is_none()))
                .collect(),
            addresses,
            prefix,
            context: ChangeContext {
                source_ip: Some(client.source),
                peer_ip: Some(client.peer),
                user_agent: request.user_agent,
                auth_method: principal.method,
                ..ChangeContext::admin()
            },
        };
        // Most requests change nothing (a router repeating its address): answer those from a
        // read, leaving the "last seen" times to the write-behind. A read that fails, or a host
        // that needs a change, goes to the writer, which decides again inside its transaction.
        if let Ok(Some((outcomes, checked))) = self.served.preview(&plan, stamp) {
            self.served
                .note_seen(principal.key_id, &checked, &timestamp());
            return Answer::per_host(answer_codes(&early, outcomes));
        }
        // A change is likely: what the audit row says of the addresses is found here, in this
        // request's task, so that the writer's transaction does no lookup.
        self.look_up_facts(&mut plan.context, &plan.addresses);
        self.look_up_prefix_facts(&mut plan.context, plan.prefix.as_ref());
        match self.served.apply(plan).await {
            Ok(applied) => {
                // A prefix that does not fit a host refuses the whole request, unchanged.
                if let Some(error) = applied.outcomes.iter().find_map(|outcome| match outcome {
                    HostOutcome::BadPrefix(error) => Some(*error),
                    _ => None,
                }) {
                    return Answer::once(ReturnCode::BadPrefix(error));
                }
                self.purge(applied.stale).await;
                Answer::per_host(answer_codes(&early, applied.outcomes))
            }
            Err(error) => {
                tracing::error!(%error, "update not applied: store failure");
                Answer::once(ReturnCode::Dnserr)
            }
        }
    }

    /// Fills in the country and tags of the client and of each address to set.
    fn look_up_facts(&self, context: &mut ChangeContext, addresses: &[IpAddr]) {
        let source = context.source_ip.map(|ip| (ip, self.intel.facts(ip)));
        context.address_facts = addresses
            .iter()
            .map(|ip| match &source {
                // Auto-detected: the client's own address, looked up once.
                Some((source_ip, facts)) if source_ip == ip => (*ip, facts.clone()),
                _ => (*ip, self.intel.facts(*ip)),
            })
            .collect();
        if let Some((_, facts)) = source {
            context.source_facts = facts;
        }
    }

    /// Fills in the country and tags of the network of `prefix`, for the addresses made
    /// from it.
    fn look_up_prefix_facts(&self, context: &mut ChangeContext, prefix: Option<&PrefixUpdate>) {
        if let Some(prefix) = prefix {
            context.prefix_facts = self.intel.facts(IpAddr::V6(prefix.prefix.network()));
        }
    }
}

/// The plan, completed with the client's own address when it names none to set: its family
/// is updated unless the client asked to `preserve` it.
fn with_detected_address(plan: AddressPlan, detected: IpAddr) -> AddressPlan {
    if !plan.to_set().is_empty() {
        return plan;
    }
    let preserved = if detected.is_ipv6() { plan.v6 } else { plan.v4 } == Some(Target::Preserve);
    if preserved {
        plan
    } else {
        let mut completed = AddressPlan::detected(detected);
        // Keep the other family's `preserve`, which changes nothing either way.
        completed.v4 = completed.v4.or(plan.v4);
        completed.v6 = completed.v6.or(plan.v6);
        completed
    }
}

/// The answer codes of a request: the early ones where there is one, else what the store
/// made of the host.
fn answer_codes(early: &[Option<ReturnCode>], outcomes: Vec<HostOutcome>) -> Vec<ReturnCode> {
    early
        .iter()
        .zip(outcomes)
        .map(|(early, outcome)| match (early, outcome) {
            (Some(code), _) => *code,
            // Never: the store skips exactly the hosts answered early.
            (None, HostOutcome::Skipped) => ReturnCode::Notfqdn,
            (None, HostOutcome::NoHost) => ReturnCode::Nohost,
            (None, HostOutcome::WrongFamily(error)) => ReturnCode::BadAddress(error),
            (None, HostOutcome::BadPrefix(error)) => ReturnCode::BadPrefix(error),
            (None, HostOutcome::Unchanged(shown)) => {
                ReturnCode::Nochg(AddressList::of(&shown).expect("at most one address per family"))
            }
            (None, HostOutcome::Changed(shown)) => {
                ReturnCode::Good(AddressList::of(&shown).expect("at most one address per family"))
            }
        })
        .collect()
}

/// The dyndns2 answer to a refused authentication: `badauth` (also while throttled), `911`
/// when the password checks are busy, `dnserr` (logged) when the store or the checks failed.
pub(super) fn refusal(error: AuthError) -> ReturnCode {
    match error {
        AuthError::Refused => ReturnCode::Badauth,
        AuthError::Throttled(seconds) => ReturnCode::Throttled(seconds),
        AuthError::Busy => ReturnCode::Busy,
        AuthError::Store(error) => {
            tracing::error!(%error, "authentication not possible: store failure");
            ReturnCode::Dnserr
        }
        AuthError::Broken => ReturnCode::Dnserr,
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_detected_address_fills_an_empty_plan_unless_its_family_is_preserved() {
        let detected = ip("192.0.2.9");
        assert_eq!(
            with_detected_address(AddressPlan::default(), detected).to_set(),
            [detected]
        );
        let v6_given = AddressPlan::detected(ip("2001:db8::1"));
        assert_eq!(with_detected_address(v6_given.clone(), detected), v6_given);
        let v4_preserved = AddressPlan {
            v4: Some(Target::Preserve),
            v6: None,
            order: vec![false],
        };
        assert!(
            with_detected_address(v4_preserved, detected)
                .to_set()
                .is_empty()
        );
        let v6_preserved = AddressPlan {
            v4: None,
            v6: Some(Target::Preserve),
            order: vec![true],
        };
        let completed = with_detected_address(v6_preserved, detected);
        assert_eq!(completed.to_set(), [detected]);
        assert_eq!(completed.v6, Some(Target::Preserve));
    }
}

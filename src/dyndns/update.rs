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
use std::time::Duration;

use super::abuse::{Pace, PaceRules, UpdateRateGuard};
use super::address::{AddressPlan, Target};
use super::client::ClientAddress;
use super::password::PasswordChecks;
use super::request::{Credentials, HostListError, ParsedUpdate};
use super::response::{AddressList, Answer, ReturnCode};
use super::throttle::{AuthThrottle, FailureKey, KnownClients, ThrottleRules};
use crate::auth::{self, PasswordCache};
use crate::intel::IpIntel;
use crate::model::{AuthMethod, SCOPE_ACME_UPDATE, SCOPE_DOMAINS_UPDATE};
use crate::purge::Purger;
use crate::served::{ReadStamp, Served};
use crate::store::audit::ChangeContext;
use crate::store::keys::ApiKey;
use crate::store::logins::{Blocked, LoginBlock};
use crate::store::updates::{HostOutcome, PrefixUpdate, UpdatePlan};
use crate::store::users::User;
use crate::store::{StoreError, timestamp};

/// An authenticated caller.
#[derive(Debug, Clone)]
struct Principal {
    /// The user acting.
    user_id: i64,
    /// The API key used, if any: its `last_used_at` is set.
    key_id: Option<i64>,
    /// How, for the audit trail.
    method: AuthMethod,
}

/// The in-memory guards of an [`Updater`].
#[derive(Debug)]
pub struct Guards {
    /// Recent successful password checks.
    pub password_cache: PasswordCache,
    /// Update pace per user and host.
    pub rate_guard: UpdateRateGuard,
    /// Authentication failures per client and login.
    pub auth_throttle: Arc<AuthThrottle>,
    /// The argon2 runs allowed at once, and the queue before them.
    pub password_checks: PasswordChecks,
    /// Clients that authenticated as a login before: exempt from its failure throttle.
    pub known_clients: KnownClients,
    /// How long revoked API keys stay, in seconds (`revoked-key-retention-days`).
    pub revoked_key_retention: std::sync::atomic::AtomicU64,
}

impl Guards {
    /// The guards `[limits]` asks for.
    pub fn new(limits: &crate::config::Limits) -> Self {
        Self {
            password_cache: PasswordCache::new(
                limits.password_cache_size,
                limits.password_cache_ttl,
            ),
            rate_guard: UpdateRateGuard::new(pace_rules(limits)),
            auth_throttle: Arc::new(AuthThrottle::new(
                limits.auth_failure_limit,
                limits.auth_failure_window,
                limits.auth_failure_cooldown,
            )),
            password_checks: PasswordChecks::new(
                limits.password_check_concurrency,
                limits.password_check_queue,
            ),
            known_clients: KnownClients::new(limits.auth_known_client),
            revoked_key_retention: limits.revoked_key_retention.as_secs().into(),
        }
    }

    /// How long revoked API keys stay.
    pub fn revoked_key_retention(&self) -> Duration {
        Duration::from_secs(
            self.revoked_key_retention
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Applies `limits` from now on (a reload, SIGHUP). What the guards learnt stays: hosts
    /// flagged, clients throttled or known, passwords remembered (as many as still fit).
    pub fn reconfigure(&self, limits: &crate::config::Limits) {
        self.password_cache
            .resize(limits.password_cache_size, limits.password_cache_ttl);
        self.rate_guard.set_rules(pace_rules(limits));
        self.auth_throttle.set_rules(ThrottleRules {
            limit: limits.auth_failure_limit,
            window: limits.auth_failure_window,
            cooldown: limits.auth_failure_cooldown,
        });
        self.password_checks.resize(
            limits.password_check_concurrency,
            limits.password_check_queue,
        );
        self.known_clients.set_lifetime(limits.auth_known_client);
        self.revoked_key_retention.store(
            limits.revoked_key_retention.as_secs(),
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}

/// The pace rules of `limits`; None when abuse detection is off.
fn pace_rules(limits: &crate::config::Limits) -> Option<PaceRules> {
    limits.abuse_detection.then_some(PaceRules {
        burst: limits.abuse_burst,
        refill: limits.abuse_refill,
        flag_after: limits.abuse_flag_after,
        cooldown: limits.abuse_cooldown,
    })
}

/// What a request authenticates for: it decides which API keys are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Moving addresses: keys with `domains:update`.
    Update,
    /// Answering ACME DNS-01 challenges: keys with `acme:update` (a key on a web server that
    /// cannot move the host), or `domains:update`.
    Acme,
}

/// Whether an API key is accepted in place of a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeysAccepted {
    /// Yes, with the scopes `Purpose` asks for: the update and ACME endpoints (the spec's
    /// "Your API key (recommended) or account password").
    For(Purpose),
    /// No: signing in to the account holder's pages takes the account password only.
    No,
}

/// A login and password to check, and how.
struct PasswordCredentials {
    /// How they came (for the audit trail).
    method: AuthMethod,
    /// Username or email.
    login: String,
    /// Password, or an API key where `keys` accepts one.
    password: String,
    /// Whether an API key is accepted as the password.
    keys: KeysAccepted,
}

/// Logins longer than this are refused before any lookup: an email address has at most 254
/// octets (RFC 5321), and a username fewer.
const MAX_LOGIN_BYTES: usize = 254;

/// Passwords longer than this are refused before any hashing.
const MAX_PASSWORD_BYTES: usize = 1024;

/// Applies updates against the store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Updater {
    /// The store, as `serve` holds it.
    served: Served,
    /// The in-memory guards, shared by all clones.
    guards: Arc<Guards>,
    /// Purges pdns's caches after changes, and how long an answer waits for it; shared by all
    /// clones, replaced by a reload (SIGHUP).
    purging: Arc<arc_swap::ArcSwapOption<(Purger, Duration)>>,
    /// Country and tags of addresses, for the audit rows of changes.
    intel: IpIntel,
}

impl Updater {
    /// An updater over `served` with `guards`.
    pub fn new(served: Served, guards: Guards) -> Self {
        Self {
            served,
            guards: Arc::new(guards),
            purging: Arc::default(),
            intel: IpIntel::none(),
        }
    }

    /// Records in each change's audit row what `intel` knows of its addresses.
    pub fn with_intel(mut self, intel: IpIntel) -> Self {
        self.intel = intel;
        self
    }

    /// Purges pdns's caches with `purger` after each change; an answer waits for the purge's
    /// first attempt at most `wait`.
    pub fn with_purger(self, purger: Purger, wait: Duration) -> Self {
        self.set_purging(Some((purger, wait)));
        self
    }

    /// The purger and wait in use, if any.
    pub fn purging(&self) -> Option<(Purger, Duration)> {
        self.purging.load_full().map(|purging| (*purging).clone())
    }

    /// Purges with `purging` from the next change on (None: no purges), in every clone.
    pub fn set_purging(&self, purging: Option<(Purger, Duration)>) {
        self.purging.store(purging.map(Arc::new));
    }

    /// Checks `credentials` for `purpose`: the acting user's id, or the answer to a failure
    /// (`badauth`, `911`, `dnserr`), under the same limits as updates.
    pub(super) async fn authenticate_for(
        &self,
        credentials: Option<Credentials>,
        client: ClientAddress,
        purpose: Purpose,
    ) -> Result<i64, ReturnCode> {
        let stamp = self.served.read_stamp();
        let principal = self
            .authenticate(credentials, client, stamp, purpose)
            .await?;
        // A key's last use is every successful use, whatever its scope (the update path notes
        // it with the hosts it checked); written behind, like those.
        if principal.key_id.is_some() {
            self.served.note_seen(principal.key_id, &[], &timestamp());
        }
        Ok(principal.user_id)
    }

    /// Counts a request of `user_id` for `name` against the update pace (see
    /// [`UpdateRateGuard`]): false when the name is flagged and the request must be answered
    /// `abuse`. The ACME endpoints use it with the challenge name, so a script that floods
    /// them is held to the pace of updates.
    pub(super) fn admit(&self, user_id: i64, name: &str) -> bool {
        match self.guards.rate_guard.admit(user_id, name) {
            Pace::Admitted => true,
            Pace::Refused(episode) => {
                self.served.note_abuse(user_id, name, &episode);
                false
            }
        }
    }

    /// The store, as `serve` holds it.
    pub(super) fn served(&self) -> &Served {
        &self.served
    }

    /// Purges `names` from pdns's caches, waiting at most `purge-wait-ms` for the first
    /// attempt (the purge goes on in the background if it takes longer).
    pub(super) async fn purge(&self, names: Vec<String>) {
        if let Some(purging) = self.purging.load_full() {
            let (purger, wait) = &*purging;
            let _ = tokio::time::timeout(*wait, purger.purge(names)).await;
        }
    }

    /// Deletes the API keys revoked longer ago than `revoked-key-retention-days`.
    pub async fn prune_revoked_keys(&self) {
        match self
            .served
            .prune_revoked_keys(self.revoked_key_retention())
            .await
        {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "revoked API keys past their retention deleted"),
            Err(error) => tracing::warn!(%error, "cannot delete old revoked API keys"),
        }
    }

    /// Writes the login blocks that started since the last call (for `user blocked`), and
    /// lifts those an admin asked to (`user unlock`): a read of the requests, and only while
    /// some block may be under way. `serve` calls it every second.
    pub async fn sync_login_blocks(&self) {
        let throttle = &self.guards.auth_throttle;
        let started: Vec<LoginBlock> = throttle
            .take_started()
            .into_iter()
            .filter_map(|block| {
                Some(LoginBlock {
                    subject: match block.key {
                        FailureKey::Account(user_id) => Blocked::Account(user_id),
                        FailureKey::Client(address) => Blocked::Client(address),
                        FailureKey::Login(_) => return None,
                    },
                    failures: block.failures,
                    blocked_at: block.at,
                    blocked_until: block.until,
                })
            })
            .collect();
        if !started.is_empty() {
            if let Err(error) = self.served.record_login_blocks(started).await {
                tracing::warn!(%error, "cannot note the login blocks for `user blocked`");
            }
        }
        if !throttle.any_blocked() {
            return;
        }
        let requests = match self.served.login_unlock_requests() {
            Ok(requests) if requests.is_empty() => return,
            Ok(requests) => requests,
            Err(error) => {
                tracing::warn!(%error, "cannot read the requests to lift login blocks");
                return;
            }
        };
        for subject in &requests {
            let key = match *subject {
                Blocked::Account(user_id) => FailureKey::Account(user_id),
                Blocked::Client(address) => FailureKey::Client(address),
            };
            let lifted = throttle.lift(&key);
            tracing::info!(?key, lifted, "login block lifted on request (user unlock)");
        }
        if let Err(error) = self.served.forget_login_blocks(requests).await {
            tracing::warn!(%error, "cannot note the login blocks lifted");
        }
    }

    /// Removes the ACME challenge values past their expiry, and purges their names.
    pub async fn expire_challenges(&self) {
        match self.served.expire_challenges().await {
            Ok(names) if names.is_empty() => {}
            Ok(names) => {
                tracing::debug!(names = names.len(), "expired ACME challenge values removed");
                self.purge(names).await;
            }
            Err(error) => tracing::warn!(%error, "cannot remove expired ACME challenge values"),
        }
    }

    /// How long revoked API keys stay (`revoked-key-retention-days`, as reloaded).
    pub fn revoked_key_retention(&self) -> Duration {
        self.guards.revoked_key_retention()
    }

    /// Applies `limits` to the guards from now on (see [`Guards::reconfigure`]).
    pub fn reconfigure_limits(&self, limits: &crate::config::Limits) {
        self.guards.reconfigure(limits);
    }

    /// Runs one update request to its answer.
    pub async fn apply(&self, request: ParsedUpdate, client: ClientAddress) -> Answer {
        // One look at the store's currency for all of this request's memoised reads.
        let stamp = self.served.read_stamp();
        let principal = match self
            .authenticate(request.credentials, client, stamp, Purpose::Update)
            .await
        {
            Ok(principal) => principal,
            Err(code) => return Answer::once(code),
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
                Some(host) => match self
                    .guards
                    .rate_guard
                    .admit(principal.user_id, host.as_str())
                {
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

    /// Checks the credentials: `Err` holds the answer for a failure.
    async fn authenticate(
        &self,
        credentials: Option<Credentials>,
        client: ClientAddress,
        stamp: ReadStamp,
        purpose: Purpose,
    ) -> Result<Principal, ReturnCode> {
        let throttle = &self.guards.auth_throttle;
        let client_key = FailureKey::Client(client.source);
        match credentials {
            None => Err(ReturnCode::Badauth),
            Some(Credentials::Malformed) => {
                throttle.record_failure(client_key);
                Err(ReturnCode::Badauth)
            }
            Some(Credentials::Bearer(key)) => {
                let hash = auth::looks_like_api_key(&key).then(|| auth::hash_api_key(&key));
                let found = match hash {
                    Some(hash) => self.served.key(&hash, stamp).map_err(store_failure)?,
                    None => None,
                };
                match found {
                    Some((key, user)) if key_may(&key, &user, purpose) => Ok(Principal {
                        user_id: user.id,
                        key_id: Some(key.id),
                        method: AuthMethod::Bearer,
                    }),
                    _ => {
                        throttle.record_failure(client_key);
                        Err(ReturnCode::Badauth)
                    }
                }
            }
            Some(Credentials::Password {
                method,
                login,
                password,
            }) => {
                self.check_login(
                    method,
                    login,
                    password,
                    client,
                    stamp,
                    KeysAccepted::For(purpose),
                )
                .await
            }
        }
    }

    /// Checks a login and password for the account holder's pages exactly as Basic
    /// authentication is checked (the same limits, throttle, known clients, cache and argon2
    /// threads), except that an API key is not a password here. `Err` holds what Basic
    /// authentication would answer: `badauth`, `911` (checks queue full) or `dnserr`.
    pub async fn sign_in(
        &self,
        login: String,
        password: String,
        client: ClientAddress,
    ) -> Result<i64, ReturnCode> {
        let stamp = self.served.read_stamp();
        self.check_login(
            AuthMethod::Basic,
            login,
            password,
            client,
            stamp,
            KeysAccepted::No,
        )
        .await
        .map(|principal| principal.user_id)
    }

    /// The checks of a login and password (or API key as password, when `keys` says so).
    async fn check_login(
        &self,
        method: AuthMethod,
        login: String,
        password: String,
        client: ClientAddress,
        stamp: ReadStamp,
        keys: KeysAccepted,
    ) -> Result<Principal, ReturnCode> {
        let client_key = FailureKey::Client(client.source);
        if login.len() > MAX_LOGIN_BYTES || password.len() > MAX_PASSWORD_BYTES {
            self.guards.auth_throttle.record_failure(client_key);
            return Err(ReturnCode::Badauth);
        }
        self.authenticate_password(
            PasswordCredentials {
                method,
                login,
                password,
                keys,
            },
            client.source,
            stamp,
        )
        .await
    }

    /// Checks a login with an account password or one of that user's API keys. A remembered
    /// (cached) password gets through at once; any other check that needs argon2 first takes
    /// its place in the failure throttle (refused without hashing while the client or the
    /// login is throttled, counting the checks already under way), then waits for a place in
    /// [`PasswordChecks`]. Failures are counted against the client's address and against the
    /// account the login names (whichever of its logins was typed: one guessing budget per
    /// account), or the login as typed when it names none. A known client (one that
    /// authenticated to this account before, see [`KnownClients`]) is held only to its own
    /// address's throttle, not the account's.
    async fn authenticate_password(
        &self,
        credentials: PasswordCredentials,
        client: IpAddr,
        stamp: ReadStamp,
    ) -> Result<Principal, ReturnCode> {
        let PasswordCredentials {
            method,
            login,
            password,
            keys,
        } = credentials;
        let key_hash = (keys != KeysAccepted::No && auth::looks_like_api_key(&password))
            .then(|| auth::hash_api_key(&password));
        let (user, key) = self
            .served
            .login(&login, key_hash.as_deref(), stamp)
            .map_err(store_failure)?;
        let account_key = match &user {
            Some(user) => FailureKey::Account(user.id),
            None => FailureKey::login(&login),
        };
        let known = self.guards.known_clients.knows(&account_key, client);
        let failure_keys = [FailureKey::Client(client), account_key];
        let throttle_keys: &[FailureKey] = if known {
            std::slice::from_ref(&failure_keys[0])
        } else {
            &failure_keys
        };
        let throttle = &self.guards.auth_throttle;
        let succeeded = |principal: Principal| {
            self.guards.known_clients.remember(&failure_keys[1], client);
            Ok(principal)
        };
        let fail = || {
            for key in &failure_keys {
                throttle.record_failure(key.clone());
            }
            Err(ReturnCode::Badauth)
        };

        // Refused unchecked while blocked (a remembered password still passes, below): said
        // as such, to the pages; `badauth` on the wire.
        let throttled = || {
            throttle
                .blocked_for(throttle_keys)
                .map(|wait| ReturnCode::Throttled(wait.as_secs().max(1)))
        };
        let Some(user) = user.filter(|user| user.is_active) else {
            if let Some(throttled) = throttled() {
                return Err(throttled);
            }
            // Spend the time of a real check, so that unknown users cannot be told apart.
            if let Some(_attempt) = throttle.begin(throttle_keys) {
                self.guards
                    .password_checks
                    .run(move || auth::verify_password_of_nobody(&password))
                    .await?;
            }
            return fail();
        };
        if let Some((key, owner)) = key.filter(|(key, _)| key.user_id == user.id) {
            let allowed = match keys {
                KeysAccepted::For(purpose) => key_may(&key, &owner, purpose),
                KeysAccepted::No => false,
            };
            return if allowed {
                succeeded(Principal {
                    user_id: user.id,
                    key_id: Some(key.id),
                    method,
                })
            } else {
                fail()
            };
        }
        let principal = Principal {
            user_id: user.id,
            key_id: None,
            method,
        };
        if self
            .guards
            .password_cache
            .contains(user.id, &password, &user.password_hash)
        {
            return succeeded(principal);
        }
        if let Some(throttled) = throttled() {
            return Err(throttled);
        }
        let checks = &self.guards.password_checks;
        let check_key = self.guards.password_cache.entry_key(user.id, &password);
        let guards = Arc::clone(&self.guards);
        let verified = checks
            .coalesced(check_key, async {
                // Only the check that runs takes a place in the throttle.
                let Some(_attempt) = throttle.begin(throttle_keys) else {
                    return Ok(false);
                };
                checks
                    .run(move || {
                        let verified = auth::verify_password(&password, &user.password_hash);
                        if verified {
                            guards
                                .password_cache
                                .insert(user.id, &password, &user.password_hash);
                        }
                        verified
                    })
                    .await
            })
            .await?;
        if verified {
            succeeded(principal)
        } else {
            fail()
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

/// Whether `key` of `owner` may be used for `purpose`: active key and user, a plan that
/// allows keys, and a scope for the purpose.
fn key_may(key: &ApiKey, owner: &User, purpose: Purpose) -> bool {
    let scoped = match purpose {
        Purpose::Update => key.has_scope(SCOPE_DOMAINS_UPDATE),
        Purpose::Acme => key.has_scope(SCOPE_ACME_UPDATE) || key.has_scope(SCOPE_DOMAINS_UPDATE),
    };
    key.is_active && owner.is_active && owner.plan.allows_api_keys() && scoped
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

/// Logs a store failure during authentication and answers `dnserr`.
fn store_failure(error: StoreError) -> ReturnCode {
    tracing::error!(%error, "authentication not possible: store failure");
    ReturnCode::Dnserr
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

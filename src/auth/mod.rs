//! Authentication, one home for every way in: the update endpoints (Bearer keys, Basic, query
//! parameters), the ACME endpoints, and the account holder's sign-in.
//!
//! [`Authenticator`] takes [`Credentials`] and a client address and answers who acts (a
//! [`Principal`]) or why not ([`AuthError`]); each protocol maps that error to its own wire
//! answer once (dyndns: `badauth`, `911`, `dnserr`; the pages: a message; ACME: its status).
//! What it holds, all bounded and in memory:
//!
//! * [`secrets`]: argon2id password hashes, API keys (only their SHA-256 stored), and the
//!   cache of recent successful password checks;
//! * [`checks`]: the argon2 threads and the queue before them, with identical checks run once;
//! * [`throttle`]: repeated failures per client address and per account, refused without a
//!   check for a cool-down; clients that authenticated before are known, so guessing from
//!   elsewhere cannot lock the owner's router out;
//! * the API keys' scopes and plan rules ([`Purpose`]).
//!
//! It reads accounts and keys through `Served` (memoised, never SQL here) and knows no HTTP.

pub mod checks;
pub mod credentials;
pub mod secrets;
pub mod throttle;
pub mod tsig;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

pub use credentials::{Credentials, header_credentials};
pub use secrets::*;

use self::checks::{CheckError, PasswordChecks};
use self::throttle::{AuthThrottle, FailureKey, KnownClients, ThrottleRules};
use crate::model::account::ApiKey;
use crate::model::account::User;
use crate::model::audit::{Blocked, LoginBlock};
use crate::model::time::timestamp;
use crate::model::{AuthMethod, SCOPE_ACME_UPDATE, SCOPE_DOMAINS_UPDATE};
use crate::served::StoreError;
use crate::served::{ReadStamp, Served};

/// Who acts, once authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    /// The user acting.
    pub user_id: i64,
    /// The API key used, if any.
    pub key_id: Option<i64>,
    /// How, for the audit trail.
    pub method: AuthMethod,
}

/// Why credentials were not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Missing, malformed or wrong credentials, a disabled account or key, a key without the
    /// scope or plan: nothing more is said to the client.
    #[error("credentials refused")]
    Refused,
    /// Refused without a check: the client or the account is throttled for this many more
    /// seconds (on the wire it is a refusal like any other; the pages say when to retry).
    #[error("throttled for {0} s")]
    Throttled(u64),
    /// The password checks' queue is full: retry later.
    #[error("password checks busy")]
    Busy,
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The password-check threads are gone (never in a healthy process).
    #[error("password check failed")]
    Broken,
}

impl From<CheckError> for AuthError {
    fn from(error: CheckError) -> Self {
        match error {
            CheckError::Busy => Self::Busy,
            CheckError::Broken => Self::Broken,
        }
    }
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

/// The in-memory state of authentication, shared by every clone of an [`Authenticator`].
#[derive(Debug)]
struct Guards {
    /// Recent successful password checks.
    password_cache: PasswordCache,
    /// Authentication failures per client and login.
    throttle: Arc<AuthThrottle>,
    /// The argon2 runs allowed at once, and the queue before them.
    checks: PasswordChecks,
    /// Clients that authenticated as a login before: exempt from its failure throttle.
    known_clients: KnownClients,
    /// How long revoked API keys stay, in seconds (`revoked-key-retention-days`).
    revoked_key_retention: std::sync::atomic::AtomicU64,
}

/// Checks credentials. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Authenticator {
    /// Accounts and keys.
    served: Served,
    /// What authentication has learnt, and its limits.
    guards: Arc<Guards>,
}

impl Authenticator {
    /// Checks credentials against `served`'s accounts, within `[limits]`.
    pub fn new(served: Served, limits: &crate::config::Limits) -> Self {
        Self {
            served,
            guards: Arc::new(Guards {
                password_cache: PasswordCache::new(
                    limits.password_cache_size,
                    limits.password_cache_ttl,
                ),
                throttle: Arc::new(AuthThrottle::new(
                    limits.auth_failure_limit,
                    limits.auth_failure_window,
                    limits.auth_failure_cooldown,
                )),
                checks: PasswordChecks::new(
                    limits.password_check_concurrency,
                    limits.password_check_queue,
                ),
                known_clients: KnownClients::new(limits.auth_known_client),
                revoked_key_retention: limits.revoked_key_retention.as_secs().into(),
            }),
        }
    }

    /// Applies `limits` from now on (a reload, SIGHUP). What was learnt stays: clients
    /// throttled or known, passwords remembered (as many as still fit).
    pub fn reconfigure(&self, limits: &crate::config::Limits) {
        let guards = &self.guards;
        guards
            .password_cache
            .resize(limits.password_cache_size, limits.password_cache_ttl);
        guards.throttle.set_rules(ThrottleRules {
            limit: limits.auth_failure_limit,
            window: limits.auth_failure_window,
            cooldown: limits.auth_failure_cooldown,
        });
        guards.checks.resize(
            limits.password_check_concurrency,
            limits.password_check_queue,
        );
        guards.known_clients.set_lifetime(limits.auth_known_client);
        guards.revoked_key_retention.store(
            limits.revoked_key_retention.as_secs(),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// How long revoked API keys stay (`revoked-key-retention-days`, as reloaded).
    pub fn revoked_key_retention(&self) -> Duration {
        Duration::from_secs(
            self.guards
                .revoked_key_retention
                .load(std::sync::atomic::Ordering::Relaxed),
        )
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
    /// lifts those an admin asked to (`user unlock`): a read of the requests, whatever this
    /// process holds (a request for a block it does not hold, one of the process before a
    /// restart, is answered too: its row goes). `serve` calls it every second.
    pub async fn sync_login_blocks(&self) {
        let throttle = &self.guards.throttle;
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

    /// Checks `credentials` from `client` for `purpose`, with the reads vouched for by
    /// `stamp` (one per request). A key's use is noted by the caller, with what it did.
    pub async fn authenticate(
        &self,
        credentials: Option<Credentials>,
        client: IpAddr,
        stamp: ReadStamp,
        purpose: Purpose,
    ) -> Result<Principal, AuthError> {
        let throttle = &self.guards.throttle;
        let client_key = FailureKey::Client(client);
        match credentials {
            None => Err(AuthError::Refused),
            Some(Credentials::Malformed) => {
                throttle.record_failure(client_key);
                Err(AuthError::Refused)
            }
            Some(Credentials::Bearer(key)) => {
                let hash = looks_like_api_key(&key).then(|| hash_api_key(&key));
                let found = match hash {
                    Some(hash) => self.served.key(&hash, stamp)?,
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
                        Err(AuthError::Refused)
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

    /// [`Authenticator::authenticate`] for a request that needs nothing else of the store's
    /// reads: the acting user's id; a key's use is noted (written behind).
    pub async fn authenticate_user(
        &self,
        credentials: Option<Credentials>,
        client: IpAddr,
        purpose: Purpose,
    ) -> Result<i64, AuthError> {
        let stamp = self.served.read_stamp();
        let principal = self
            .authenticate(credentials, client, stamp, purpose)
            .await?;
        // A key's last use is every successful use, whatever its scope (the update path notes
        // it with the hosts it checked).
        if principal.key_id.is_some() {
            self.served.note_seen(principal.key_id, &[], &timestamp());
        }
        Ok(principal.user_id)
    }

    /// Checks a login and password for the account holder's pages exactly as Basic
    /// authentication is checked (the same limits, throttle, known clients, cache and argon2
    /// threads), except that an API key is not a password here: the user's id.
    pub async fn sign_in(
        &self,
        login: String,
        password: String,
        client: IpAddr,
    ) -> Result<i64, AuthError> {
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
        client: IpAddr,
        stamp: ReadStamp,
        keys: KeysAccepted,
    ) -> Result<Principal, AuthError> {
        if login.len() > MAX_LOGIN_BYTES || password.len() > MAX_PASSWORD_BYTES {
            self.guards
                .throttle
                .record_failure(FailureKey::Client(client));
            return Err(AuthError::Refused);
        }
        self.authenticate_password(
            PasswordCredentials {
                method,
                login,
                password,
                keys,
            },
            client,
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
    ) -> Result<Principal, AuthError> {
        let PasswordCredentials {
            method,
            login,
            password,
            keys,
        } = credentials;
        let key_hash = (keys != KeysAccepted::No && looks_like_api_key(&password))
            .then(|| hash_api_key(&password));
        let (user, key) = self.served.login(&login, key_hash.as_deref(), stamp)?;
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
        let throttle = &self.guards.throttle;
        let succeeded = |principal: Principal| {
            self.guards.known_clients.remember(&failure_keys[1], client);
            Ok(principal)
        };
        let fail = || {
            for key in &failure_keys {
                throttle.record_failure(key.clone());
            }
            Err(AuthError::Refused)
        };

        // Refused unchecked while blocked (a remembered password still passes, below): said
        // as such, to the pages; `badauth` on the wire.
        let throttled = || {
            throttle
                .blocked_for(throttle_keys)
                .map(|wait| AuthError::Throttled(wait.as_secs().max(1)))
        };
        let Some(user) = user.filter(|user| user.is_active) else {
            if let Some(throttled) = throttled() {
                return Err(throttled);
            }
            // Spend the time of a real check, so that unknown users cannot be told apart.
            if let Some(_attempt) = throttle.begin(throttle_keys) {
                self.guards
                    .checks
                    .run(move || verify_password_of_nobody(&password))
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
        let checks = &self.guards.checks;
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
                        let verified = verify_password(&password, &user.password_hash);
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

/// Whether `key` of `owner` may be used for `purpose`: active key and user, a plan that
/// allows keys, and a scope for the purpose.
fn key_may(key: &ApiKey, owner: &User, purpose: Purpose) -> bool {
    let scoped = match purpose {
        Purpose::Update => key.has_scope(SCOPE_DOMAINS_UPDATE),
        Purpose::Acme => key.has_scope(SCOPE_ACME_UPDATE) || key.has_scope(SCOPE_DOMAINS_UPDATE),
    };
    key.is_active && owner.is_active && owner.plan.allows_api_keys() && scoped
}

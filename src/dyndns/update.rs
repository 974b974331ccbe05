//! Applying an update: authenticate, check the hosts and addresses, then write every change
//! with its audit row in one transaction.
//!
//! No hyper types here: [`Updater::apply`] takes a parsed [`UpdateRequest`] and the client's
//! addresses and returns an [`Answer`]. Store failures become `dnserr` here, logged with their
//! cause; the detail never reaches the client.
//!
//! Order, as the product spec gives it: credentials (`badauth`, once), the host list
//! (`notfqdn`/`numhost` once when unusable), the addresses (400 once when malformed), then per
//! host: name (`notfqdn`), pace (`abuse`), ownership (`nohost`), family (400), the write.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::abuse::{AuthThrottle, FailureKey, KnownClients, Pace, UpdateRateGuard};
use super::request::{
    AddressPlan, ClientAddress, Credentials, HostListError, ParsedUpdate, Target,
};
use super::response::{AddressList, Answer, ReturnCode};
use crate::auth::{self, PasswordCache};
use crate::model::{AuthMethod, SCOPE_DOMAINS_UPDATE};
use crate::purge::Purger;
use crate::served::{ReadStamp, Served};
use crate::store::audit::ChangeContext;
use crate::store::keys::ApiKey;
use crate::store::updates::{HostOutcome, UpdatePlan};
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
}

/// Logins longer than this are refused before any lookup: an email address has at most 254
/// octets (RFC 5321), and a username fewer.
const MAX_LOGIN_BYTES: usize = 254;

/// Passwords longer than this are refused before any hashing.
const MAX_PASSWORD_BYTES: usize = 1024;

/// Bounds the password checks (argon2id: about 19 MiB and 15 ms of CPU each): they run on
/// `concurrency` threads of their own, at most `queue` more wait, and a request beyond that is
/// answered `911` (503) at once, which ddclient and inadyn treat as "retry later". Only checks
/// that need argon2 come here: API keys and remembered passwords never wait behind it.
///
/// Threads of their own, not tokio's blocking pool: that pool grows to hundreds of threads,
/// and glibc gives threads their own malloc arenas, each keeping the 19 MiB it last held. A
/// burst of guesses then left the process at 500 MB; with a fixed few threads it stays at a
/// few times 19 MiB.
#[derive(Debug)]
pub struct PasswordChecks {
    /// One permit per check thread.
    permits: tokio::sync::Semaphore,
    /// Checks waiting for a permit now.
    waiting: std::sync::atomic::AtomicUsize,
    /// The most that may wait.
    queue: usize,
    /// Hands checks to the threads.
    jobs: std::sync::mpsc::Sender<PasswordJob>,
    /// Checks under way, by [`PasswordCache::entry_key`]: the same user and password asked
    /// again meanwhile (a router's A and AAAA requests, a script's burst) waits for that one
    /// result instead of hashing again, or counting as another guess.
    under_way:
        std::sync::Mutex<std::collections::HashMap<[u8; 32], Arc<tokio::sync::OnceCell<bool>>>>,
}

/// Takes a check's entry out of [`PasswordChecks::under_way`] when dropped, unless a newer
/// check already took its place.
struct UnderWayEntry<'a> {
    /// Where the entry is.
    checks: &'a PasswordChecks,
    /// Its key.
    key: [u8; 32],
    /// The cell this request shared.
    cell: Arc<tokio::sync::OnceCell<bool>>,
}

impl Drop for UnderWayEntry<'_> {
    fn drop(&mut self) {
        let mut under_way = self
            .checks
            .under_way
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if under_way
            .get(&self.key)
            .is_some_and(|current| Arc::ptr_eq(current, &self.cell))
        {
            under_way.remove(&self.key);
        }
    }
}

/// A password check for one of the check threads.
type PasswordJob = Box<dyn FnOnce() + Send>;

impl PasswordChecks {
    /// `concurrency` check threads (0: one per CPU core), `queue` waiting at most.
    pub fn new(concurrency: usize, queue: usize) -> Self {
        let concurrency = if concurrency == 0 {
            std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
        } else {
            concurrency
        };
        let (jobs, received) = std::sync::mpsc::channel::<PasswordJob>();
        let received = Arc::new(std::sync::Mutex::new(received));
        for number in 0..concurrency {
            let received = Arc::clone(&received);
            let spawned = std::thread::Builder::new()
                .name(format!("password-check-{number}"))
                .spawn(move || {
                    loop {
                        let job = received
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .recv();
                        match job {
                            // A panicking check fails its request (its answer is dropped), not
                            // the thread.
                            Ok(job) => {
                                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                            }
                            Err(_) => return,
                        }
                    }
                });
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a password-check thread");
            }
        }
        Self {
            permits: tokio::sync::Semaphore::new(concurrency),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            queue,
            jobs,
            under_way: std::sync::Mutex::default(),
        }
    }

    /// The result of the check identified by `key`, running `check` only if no identical
    /// check is under way (else waiting for that one's result). Errors are not shared: each
    /// waiter whose check could not run gets its own.
    async fn coalesced<F>(&self, key: [u8; 32], check: F) -> Result<bool, ReturnCode>
    where
        F: std::future::Future<Output = Result<bool, ReturnCode>>,
    {
        let cell = Arc::clone(
            self.under_way
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(key)
                .or_default(),
        );
        // The entry leaves when this request is done with it, however it ends (a result, an
        // error such as a full queue, or the client gone and this future dropped): the map
        // holds only checks under way. A request arriving after that starts a check of its own.
        let _leave = UnderWayEntry {
            checks: self,
            key,
            cell: Arc::clone(&cell),
        };
        cell.get_or_try_init(|| check).await.copied()
    }

    /// Runs `check` (argon2) on a check thread once a place is free; `Busy` when the queue
    /// is full.
    async fn run<T: Send + 'static>(
        &self,
        check: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ReturnCode> {
        use std::sync::atomic::Ordering;
        let permit = match self.permits.try_acquire() {
            Ok(permit) => permit,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.queue {
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                    return Err(ReturnCode::Busy);
                }
                let permit = self.permits.acquire().await;
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                permit.expect("the semaphore is never closed")
            }
        };
        let (done, result) = tokio::sync::oneshot::channel();
        let job: PasswordJob = Box::new(move || {
            let _ = done.send(check());
        });
        if self.jobs.send(job).is_err() {
            tracing::error!("no password-check thread is running");
            return Err(ReturnCode::Dnserr);
        }
        let result = result.await.map_err(|_| {
            tracing::error!("a password check failed");
            ReturnCode::Dnserr
        });
        drop(permit);
        result
    }
}

/// Applies updates against the store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Updater {
    /// The store, as `serve` holds it.
    served: Served,
    /// The in-memory guards, shared by all clones.
    guards: Arc<Guards>,
    /// Purges pdns's caches after changes, and how long an answer waits for it.
    purging: Option<(Purger, Duration)>,
}

impl Updater {
    /// An updater over `served` with `guards`.
    pub fn new(served: Served, guards: Guards) -> Self {
        Self {
            served,
            guards: Arc::new(guards),
            purging: None,
        }
    }

    /// Purges pdns's caches with `purger` after each change; an answer waits for the purge's
    /// first attempt at most `wait`.
    pub fn with_purger(mut self, purger: Purger, wait: Duration) -> Self {
        self.purging = Some((purger, wait));
        self
    }

    /// Runs one update request to its answer.
    pub async fn apply(&self, request: ParsedUpdate, client: ClientAddress) -> Answer {
        // One look at the store's currency for all of this request's memoised reads.
        let stamp = self.served.read_stamp();
        let principal = match self.authenticate(request.credentials, client, stamp).await {
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
        let plan = UpdatePlan {
            user_id: principal.user_id,
            key_id: principal.key_id,
            hosts: names
                .into_iter()
                .zip(&early)
                .map(|(name, code)| name.filter(|_| code.is_none()))
                .collect(),
            addresses,
            context: ChangeContext {
                source_ip: Some(client.source),
                peer_ip: Some(client.peer),
                user_agent: request.user_agent,
                auth_method: principal.method,
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
        match self.served.apply(plan).await {
            Ok(applied) => {
                if let Some((purger, wait)) = &self.purging {
                    // The purge goes on in the background if it takes longer than `wait`.
                    let _ = tokio::time::timeout(*wait, purger.purge(applied.stale)).await;
                }
                Answer::per_host(answer_codes(&early, applied.outcomes))
            }
            Err(error) => {
                tracing::error!(%error, "update not applied: store failure");
                Answer::once(ReturnCode::Dnserr)
            }
        }
    }

    /// Checks the credentials: `Err` holds the answer for a failure.
    async fn authenticate(
        &self,
        credentials: Option<Credentials>,
        client: ClientAddress,
        stamp: ReadStamp,
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
                    Some((key, user)) if key_may_update(&key, &user) => Ok(Principal {
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
                if login.len() > MAX_LOGIN_BYTES || password.len() > MAX_PASSWORD_BYTES {
                    throttle.record_failure(client_key);
                    return Err(ReturnCode::Badauth);
                }
                let login_key = FailureKey::login(&login);
                let known = self.guards.known_clients.knows(&login_key, client.source);
                let result = self
                    .authenticate_password(
                        method,
                        login,
                        password,
                        [client_key, login_key.clone()],
                        known,
                        stamp,
                    )
                    .await;
                if result.is_ok() {
                    self.guards
                        .known_clients
                        .remember(&login_key, client.source);
                }
                result
            }
        }
    }

    /// Checks a login with an account password or one of that user's API keys. A remembered
    /// (cached) password gets through at once; any other check that needs argon2 first takes
    /// its place in the failure throttle (refused without hashing while the client or the
    /// login is throttled, counting the checks already under way), then waits for a place in
    /// [`PasswordChecks`]. Failures are counted against both `failure_keys` (the client's,
    /// then the login's). A `known` client (one that authenticated as this login before, see
    /// [`KnownClients`]) is held only to its own address's throttle, not the login's.
    async fn authenticate_password(
        &self,
        method: AuthMethod,
        login: String,
        password: String,
        failure_keys: [FailureKey; 2],
        known: bool,
        stamp: ReadStamp,
    ) -> Result<Principal, ReturnCode> {
        let throttle_keys: &[FailureKey] = if known {
            std::slice::from_ref(&failure_keys[0])
        } else {
            &failure_keys
        };
        let key_hash = auth::looks_like_api_key(&password).then(|| auth::hash_api_key(&password));
        let (user, key) = self
            .served
            .login(&login, key_hash.as_deref(), stamp)
            .map_err(store_failure)?;
        let throttle = &self.guards.auth_throttle;
        let fail = || {
            for key in &failure_keys {
                throttle.record_failure(key.clone());
            }
            Err(ReturnCode::Badauth)
        };

        let Some(user) = user.filter(|user| user.is_active) else {
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
            return if key_may_update(&key, &owner) {
                Ok(Principal {
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
            return Ok(principal);
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
        if verified { Ok(principal) } else { fail() }
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

/// Whether `key`, owned by `owner`, may update domains: active key, active owner on a plan that
/// allows keys, scope `domains:update`.
fn key_may_update(key: &ApiKey, owner: &User) -> bool {
    key.is_active
        && owner.is_active
        && owner.plan.allows_api_keys()
        && key.has_scope(SCOPE_DOMAINS_UPDATE)
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

    #[tokio::test]
    async fn identical_checks_share_one_run_and_leave_nothing_behind() {
        let checks = PasswordChecks::new(1, 0);
        let runs = std::sync::atomic::AtomicUsize::new(0);
        let check = || async {
            runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(true)
        };
        let (first, second) = tokio::join!(
            checks.coalesced([1; 32], check()),
            checks.coalesced([1; 32], check())
        );
        assert_eq!((first, second), (Ok(true), Ok(true)));
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
        // A failed check (a full queue) and an abandoned one leave no entry either.
        assert_eq!(
            checks
                .coalesced([2; 32], async { Err(ReturnCode::Busy) })
                .await,
            Err(ReturnCode::Busy)
        );
        let abandoned = tokio::time::timeout(
            Duration::from_millis(5),
            checks.coalesced([3; 32], std::future::pending()),
        )
        .await;
        assert!(abandoned.is_err());
        assert!(checks.under_way.lock().unwrap().is_empty());
    }

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

//! Password guessing: repeated authentication failures from one client address, or for one
//! login, are answered `badauth` without running argon2 until a cool-down passes. Checks still
//! running count as failures-to-be ([`AuthThrottle::begin`]), so a burst of simultaneous
//! guesses is throttled before its hashes run, not after. Logins are kept only as a keyed hash
//! of fixed size ([`FailureKey::login`]): a flood of long junk logins costs the same few bytes
//! each, and no login as typed (a password typed into the username field) ever reaches memory
//! dumps or the log. Bounded like the other limits (`bounded.rs`).

use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use hmac::{KeyInit, Mac};

use crate::bounded::Bounded;

/// Who authentication failures are counted against.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum FailureKey {
    /// A client address.
    Client(IpAddr),
    /// A login that names no account, as typed: a keyed hash of it (see
    /// [`FailureKey::login`]).
    Login([u8; 16]),
    /// An account, whichever of its logins (username or email, any case) was typed: one
    /// guessing budget per account.
    Account(i64),
}

impl FailureKey {
    /// The key of a login (username or email, any case): HMAC-SHA-256 of its lower-case form
    /// under a key of this process, cut to 16 bytes. Fixed size, whatever the login's length,
    /// and never the login itself.
    pub fn login(login: &str) -> Self {
        /// The per-process HMAC key.
        static KEY: OnceLock<[u8; 32]> = OnceLock::new();
        let key = KEY.get_or_init(rand::random);
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(login.to_ascii_lowercase().as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut short = [0; 16];
        short.copy_from_slice(&digest[..16]);
        Self::Login(short)
    }
}

impl std::fmt::Debug for FailureKey {
    /// A client shows its address; a login only the start of its hash.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Client(address) => write!(f, "client {address}"),
            Self::Login(hash) => write!(
                f,
                "login #{:02x}{:02x}{:02x}{:02x}",
                hash[0], hash[1], hash[2], hash[3]
            ),
            Self::Account(id) => write!(f, "account {id}"),
        }
    }
}

/// Failures of one key.
#[derive(Debug)]
struct FailureState {
    /// Failures in the current window.
    count: u32,
    /// Checks of this key running now (each counts toward the limit until it ends).
    in_flight: u32,
    /// Start of the current window.
    window_start: Instant,
    /// End of the current block, if any.
    blocked_until: Option<Instant>,
}

impl FailureState {
    /// A key with no failures.
    fn new(now: Instant) -> Self {
        Self {
            count: 0,
            in_flight: 0,
            window_start: now,
            blocked_until: None,
        }
    }
}

/// Client addresses that authenticated successfully as a login, for a while (days): such a
/// client is exempt from that login's failure throttle, so that someone guessing the
/// password from elsewhere cannot lock the owner's router out. The per-address throttle
/// still applies to it, and an unknown client still gets the cheap `badauth` while the login
/// is under attack. Bounded like the other limiters; logins only as their keyed hash.
#[derive(Debug)]
pub struct KnownClients {
    /// How long a success is remembered, in milliseconds; zero turns the exemption off.
    /// Changed by a reload (SIGHUP).
    lifetime_ms: std::sync::atomic::AtomicU64,
    /// When each (login, client address) pair last authenticated.
    entries: Bounded<(FailureKey, IpAddr), Instant>,
}

impl KnownClients {
    /// Remembers successes for `lifetime` (zero: never).
    pub fn new(lifetime: Duration) -> Self {
        Self {
            lifetime_ms: crate::auth::millis(lifetime).into(),
            entries: Bounded::new(),
        }
    }

    /// Remembers successes for `lifetime` from now on (zero: no more exemptions).
    pub fn set_lifetime(&self, lifetime: Duration) {
        self.lifetime_ms.store(
            crate::auth::millis(lifetime),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// How long a success is remembered.
    fn lifetime(&self) -> Duration {
        Duration::from_millis(self.lifetime_ms.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Notes that `client` authenticated as `login` just now.
    pub fn remember(&self, login: &FailureKey, client: IpAddr) {
        if self.lifetime().is_zero() {
            return;
        }
        let now = Instant::now();
        self.entries
            .with((login.clone(), client), || now, |seen| *seen = now);
    }

    /// Whether `client` authenticated as `login` within the lifetime.
    pub fn knows(&self, login: &FailureKey, client: IpAddr) -> bool {
        let lifetime = self.lifetime();
        if lifetime.is_zero() {
            return false;
        }
        self.entries
            .peek(&(login.clone(), client), |seen| seen.elapsed() < lifetime)
            .unwrap_or(false)
    }
}

/// A password check under way: counts toward its keys' limits until dropped.
#[derive(Debug)]
#[must_use = "the attempt counts only while it is held"]
pub struct Attempt {
    /// The throttle, to give the count back.
    throttle: Arc<AuthThrottle>,
    /// The keys it counts against; empty when the throttle was off as it began.
    keys: Vec<FailureKey>,
}

impl Drop for Attempt {
    fn drop(&mut self) {
        // Whatever the limit is now (a reload may have changed it): what was counted is given
        // back.
        if self.keys.is_empty() {
            return;
        }
        let mut entries = self
            .throttle
            .states
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for key in &self.keys {
            if let Some(state) = entries.peek_mut(key) {
                state.in_flight = state.in_flight.saturating_sub(1);
            }
        }
    }
}

/// A block that started, for admins to see (`user blocked`) and lift (`user unlock`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedBlock {
    /// Who is blocked: a client address or an account (a login that names no account has
    /// nobody to lift it for, and is not noted).
    pub key: FailureKey,
    /// Failures that started it.
    pub failures: u32,
    /// When it started.
    pub at: SystemTime,
    /// When it ends unless lifted.
    pub until: SystemTime,
}

/// How many started blocks wait for [`AuthThrottle::take_started`] at most (it runs every
/// second; a flood of addresses each failing beyond the limit keeps only the first ones).
const STARTED_CAPACITY: usize = 10_000;

/// Refuses cheaply after repeated authentication failures.
#[derive(Debug)]
pub struct AuthThrottle {
    /// The rules, replaced by a reload (SIGHUP); the states stay.
    rules: arc_swap::ArcSwap<ThrottleRules>,
    /// State by key.
    states: Bounded<FailureKey, FailureState>,
    /// Blocks started, for admins, not yet taken.
    started: Mutex<Vec<StartedBlock>>,
}

/// When [`AuthThrottle`] blocks (config keys `auth-failure-*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleRules {
    /// Failures within a window that start a block; zero turns the throttle off.
    pub limit: u32,
    /// The counting window.
    pub window: Duration,
    /// How long a block lasts.
    pub cooldown: Duration,
}

impl AuthThrottle {
    /// A throttle blocking after `limit` failures within `window`, for `cooldown`.
    pub fn new(limit: u32, window: Duration, cooldown: Duration) -> Self {
        Self {
            rules: arc_swap::ArcSwap::from_pointee(ThrottleRules {
                limit,
                window,
                cooldown,
            }),
            states: Bounded::new(),
            started: Mutex::default(),
        }
    }

    /// Takes the blocks started since the last call (of client addresses and accounts).
    pub fn take_started(&self) -> Vec<StartedBlock> {
        std::mem::take(&mut *self.started_lock())
    }

    /// Lifts the block of `key` and forgets its failures (an admin's `user unlock`); whether
    /// there was a block under way.
    pub fn lift(&self, key: &FailureKey) -> bool {
        let now = Instant::now();
        self.states
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop(key)
            .is_some_and(|state| state.blocked_until.is_some_and(|until| now < until))
    }

    /// The started blocks, locked.
    fn started_lock(&self) -> std::sync::MutexGuard<'_, Vec<StartedBlock>> {
        self.started
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Applies `rules` from now on. Blocks under way last as long as they were given; counts
    /// go on toward the new limit.
    pub fn set_rules(&self, rules: ThrottleRules) {
        self.rules.store(Arc::new(rules));
    }

    /// The rules now.
    fn rules(&self) -> ThrottleRules {
        **self.rules.load()
    }

    /// Starts a password check against `keys`, unless one of them is blocked, or would reach
    /// the limit if every check under way failed: then None, and the caller answers without
    /// checking. The returned [`Attempt`] holds its place until dropped; a failure is counted
    /// with [`AuthThrottle::record_failure`] as before.
    pub fn begin(self: &Arc<Self>, keys: &[FailureKey]) -> Option<Attempt> {
        let rules = self.rules();
        if rules.limit == 0 {
            return Some(Attempt {
                throttle: Arc::clone(self),
                keys: Vec::new(),
            });
        }
        let attempt = Attempt {
            throttle: Arc::clone(self),
            keys: keys.to_vec(),
        };
        let now = Instant::now();
        let mut entries = self
            .states
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let full = keys.iter().any(|key| {
            entries.peek(key).is_some_and(|state| {
                state.blocked_until.is_some_and(|until| now < until)
                    || (now.duration_since(state.window_start) <= rules.window
                        && state.count + state.in_flight >= rules.limit)
                    || state.in_flight >= rules.limit
            })
        });
        if full {
            return None;
        }
        for key in keys {
            entries
                .get_or_insert_mut(key.clone(), || FailureState::new(now))
                .in_flight += 1;
        }
        Some(attempt)
    }

    /// How long the longest block among `keys` has still to run; None when none is blocked.
    pub fn blocked_for(&self, keys: &[FailureKey]) -> Option<Duration> {
        if self.rules().limit == 0 {
            return None;
        }
        let now = Instant::now();
        keys.iter()
            .filter_map(|key| {
                self.states
                    .peek(key, |state| state.blocked_until)
                    .flatten()
                    .filter(|until| now < *until)
                    .map(|until| until - now)
            })
            .max()
    }

    /// Whether `key` is blocked now.
    pub fn is_blocked(&self, key: &FailureKey) -> bool {
        if self.rules().limit == 0 {
            return false;
        }
        let now = Instant::now();
        self.states
            .peek(key, |state| {
                state.blocked_until.is_some_and(|until| now < until)
            })
            .unwrap_or(false)
    }

    /// Counts a failure against `key`, starting a block when the limit is reached.
    pub fn record_failure(&self, key: FailureKey) {
        let rules = self.rules();
        if rules.limit == 0 {
            return;
        }
        let now = Instant::now();
        let started = self.states.with(
            key.clone(),
            || FailureState::new(now),
            |state| {
                if state.blocked_until.is_some_and(|until| now < until) {
                    return None;
                }
                if state.blocked_until.is_some()
                    || now.duration_since(state.window_start) > rules.window
                {
                    *state = FailureState {
                        in_flight: state.in_flight,
                        ..FailureState::new(now)
                    };
                }
                state.count += 1;
                if state.count >= rules.limit {
                    state.blocked_until = Some(now + rules.cooldown);
                    return Some(state.count);
                }
                None
            },
        );
        if let Some(failures) = started {
            let mut started = self.started_lock();
            if !matches!(key, FailureKey::Login(_)) && started.len() < STARTED_CAPACITY {
                let at = SystemTime::now();
                started.push(StartedBlock {
                    key: key.clone(),
                    failures,
                    at,
                    until: at + rules.cooldown,
                });
            }
            drop(started);
            crate::metrics::metrics()
                .limiter_episodes
                .get_or_create(&crate::metrics::NameLabels {
                    name: "auth-failures",
                })
                .inc();
            tracing::warn!(
                ?key,
                limit = rules.limit,
                cooldown_secs = rules.cooldown.as_secs(),
                "repeated authentication failures; refusing without checking passwords during the \
                 cool-down (`certadns-ddns user blocked` lists the blocks, `user unlock` lifts one)"
            );
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn checks_under_way_count_toward_the_limit_before_they_fail() {
        let throttle = Arc::new(AuthThrottle::new(
            3,
            Duration::from_secs(60),
            Duration::from_secs(60),
        ));
        let client = FailureKey::Client("192.0.2.1".parse().unwrap());
        let keys = |login: &str| [client.clone(), FailureKey::login(login)];
        let running: Vec<Attempt> = (0..3)
            .map(|n| {
                throttle
                    .begin(&keys(&format!("user{n}")))
                    .expect("under the limit")
            })
            .collect();
        assert!(
            throttle.begin(&keys("user9")).is_none(),
            "a fourth simultaneous check from the client waits for none: refused"
        );
        drop(running);
        let attempt = throttle
            .begin(&keys("user9"))
            .expect("the three ended well");
        throttle.record_failure(client.clone());
        drop(attempt);
        assert!(
            throttle
                .begin(&[FailureKey::Client("192.0.2.2".parse().unwrap())])
                .is_some()
        );
    }

    #[test]
    fn clients_that_authenticated_are_known_for_a_while() {
        let known = KnownClients::new(Duration::from_millis(40));
        let bob = FailureKey::login("bob");
        let router: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(!known.knows(&bob, router));
        known.remember(&bob, router);
        assert!(known.knows(&bob, router));
        assert!(!known.knows(&bob, "192.0.2.2".parse().unwrap()));
        assert!(!known.knows(&FailureKey::login("alice"), router));
        std::thread::sleep(Duration::from_millis(50));
        assert!(!known.knows(&bob, router), "forgotten after the lifetime");
        let off = KnownClients::new(Duration::ZERO);
        off.remember(&bob, router);
        assert!(!off.knows(&bob, router));
    }

    #[test]
    fn login_keys_are_fixed_size_case_blind_and_never_the_login() {
        let long = "x".repeat(8000);
        assert_eq!(FailureKey::login("Alice"), FailureKey::login("alice"));
        assert_ne!(FailureKey::login("alice"), FailureKey::login("bob"));
        assert_eq!(
            std::mem::size_of_val(&FailureKey::login(&long)),
            std::mem::size_of::<FailureKey>()
        );
        let shown = format!("{:?}", FailureKey::login("hunter2-typed-as-login"));
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn failures_over_the_limit_block_until_the_cool_down_ends() {
        let throttle = AuthThrottle::new(3, Duration::from_secs(60), Duration::from_millis(40));
        let client = FailureKey::Client("192.0.2.1".parse().unwrap());
        for _ in 0..2 {
            throttle.record_failure(client.clone());
        }
        assert!(!throttle.is_blocked(&client));
        throttle.record_failure(client.clone());
        assert!(throttle.is_blocked(&client));
        assert!(!throttle.is_blocked(&FailureKey::login("alice")));
        std::thread::sleep(Duration::from_millis(50));
        assert!(!throttle.is_blocked(&client));
        throttle.record_failure(client.clone());
        assert!(
            !throttle.is_blocked(&client),
            "counting starts over after a block"
        );
        let off = AuthThrottle::new(0, Duration::from_secs(60), Duration::from_secs(60));
        off.record_failure(client.clone());
        assert!(!off.is_blocked(&client));
    }

    #[test]
    fn new_rules_apply_to_the_counts_and_attempts_give_back_only_what_they_took() {
        let throttle = Arc::new(AuthThrottle::new(
            0,
            Duration::from_secs(60),
            Duration::from_secs(60),
        ));
        let key = FailureKey::Client("192.0.2.1".parse().unwrap());
        // Begun while the throttle was off: counts nothing, so gives nothing back.
        let early = throttle.begin(std::slice::from_ref(&key)).unwrap();
        throttle.set_rules(ThrottleRules {
            limit: 2,
            window: Duration::from_secs(60),
            cooldown: Duration::from_secs(60),
        });
        let counted = throttle.begin(std::slice::from_ref(&key)).unwrap();
        drop(early);
        let second = throttle.begin(std::slice::from_ref(&key)).unwrap();
        assert!(
            throttle.begin(std::slice::from_ref(&key)).is_none(),
            "two under way reach the new limit"
        );
        drop((counted, second));
        throttle.record_failure(key.clone());
        assert!(!throttle.is_blocked(&key));
        throttle.record_failure(key.clone());
        assert!(throttle.is_blocked(&key), "blocked at the new limit");
        throttle.set_rules(ThrottleRules {
            limit: 0,
            window: Duration::from_secs(60),
            cooldown: Duration::from_secs(60),
        });
        assert!(!throttle.is_blocked(&key), "off again");
    }
}

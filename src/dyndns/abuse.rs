//! In-memory limits against clients that misbehave: update floods and password guessing.
//!
//! Clients retry forever (ddclient every 300 s even after `badauth` or `abuse`), so these never
//! ban for good: they make the misbehaviour cheap to answer for a cool-down, then forget. Both
//! are bounded LRU maps, so a flood of distinct keys cannot grow memory, and each logs once
//! when an episode starts, not once per request.
//!
//! * [`UpdateRateGuard`]: a host whose update requests stay above the allowed rate for a while
//!   (not a burst: a sustained flood) is flagged and answered `abuse` (429) until it has been
//!   quiet for a cool-down. Keyed by user as well as host, so nobody can get another user's
//!   host flagged.
//! * [`AuthThrottle`]: repeated authentication failures from one client address, or for one
//!   login, are answered `badauth` without running argon2 until a cool-down passes. Checks
//!   still running count as failures-to-be ([`AuthThrottle::begin`]), so a burst of
//!   simultaneous guesses is throttled before its hashes run, not after. Logins are kept only
//!   as a keyed hash of fixed size ([`FailureKey::login`]): a flood of long junk logins costs
//!   the same few bytes each, and no login as typed (a password typed into the username
//!   field) ever reaches memory dumps or the log.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use hmac::{KeyInit, Mac};

use crate::store::abuse::Episode;

/// How many keys each limiter remembers.
const CAPACITY: usize = 100_000;

/// A bounded map of per-key state.
#[derive(Debug)]
struct Bounded<K: Hash + Eq, V> {
    /// Least recently used keys are forgotten first.
    entries: Mutex<lru::LruCache<K, V>>,
}

impl<K: Hash + Eq, V> Bounded<K, V> {
    /// An empty map of [`CAPACITY`] keys.
    fn new() -> Self {
        Self {
            entries: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(CAPACITY).expect("non-zero"),
            )),
        }
    }

    /// Runs `read` on the state of `key`, if there is one, without touching its recency.
    fn peek<T>(&self, key: &K, read: impl FnOnce(&V) -> T) -> Option<T> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .peek(key)
            .map(read)
    }

    /// Runs `update` on the state of `key`, created with `default` if missing.
    fn with<T>(&self, key: K, default: impl FnOnce() -> V, update: impl FnOnce(&mut V) -> T) -> T {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        update(entries.get_or_insert_mut(key, default))
    }
}

/// The pace allowed to one host of one user, and what happens beyond it (config keys
/// `abuse-*`). The defaults let a router send a burst and any sane polling pace for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaceRules {
    /// Requests that may come at once: the bucket's size.
    pub burst: u32,
    /// One more request is allowed per this much time: the bucket's refill (not zero).
    pub refill: Duration,
    /// How long requests must stay above the rate before the host is flagged.
    pub flag_after: Duration,
    /// How long a flagged host must send nothing above the rate before the flag lifts.
    pub cooldown: Duration,
}

/// The pace of one host of one user: a token bucket, and the episode if flagged.
#[derive(Debug)]
struct PaceState {
    /// Requests that may come now without being above the rate (a fraction accrues).
    tokens: f64,
    /// When `tokens` was last brought up to date.
    at: Instant,
    /// Since when every request found the bucket empty; None when the last one did not.
    over_since: Option<Instant>,
    /// The last request that found the bucket empty.
    last_over: Option<Instant>,
    /// The episode under way, while flagged.
    episode: Option<Episode>,
}

/// What [`UpdateRateGuard::admit`] says of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pace {
    /// Go on.
    Admitted,
    /// Answer `abuse` and change nothing; the episode as it now stands.
    Refused(Episode),
}

/// Flags hosts whose update requests stay above the allowed rate, per user and host.
///
/// The product spec: "excessive update requests (e.g., more than once per second) may trigger
/// abuse detection". Clients do send bursts: a FRITZ!Box sends its IPv4 and IPv6 requests for
/// one host at the same moment, ddclient run twice in a row updates the same hosts again, a
/// script tries the examples one after another. So a bucket of [`PaceRules::burst`] requests,
/// refilled with one every [`PaceRules::refill`]: a request that finds no whole request in it
/// is above the rate, and empties it. Such requests are still served. Only when requests have
/// been above the rate for [`PaceRules::flag_after`] without a break (none in between found
/// the bucket refilled) is the host flagged: from then on its requests are answered `abuse`
/// (429) and change nothing, until it has sent nothing above the rate for
/// [`PaceRules::cooldown`]. A router polling at its usual pace meanwhile is refused but does
/// not extend the episode.
///
/// What this does not flag, by design: a client that pauses between bursts long enough to earn
/// a request back (say 8 requests every 4 s) is above the rate on average but never for
/// [`PaceRules::flag_after`] on end. The flag is for floods that would otherwise go on.
///
/// Keyed by user as well as host, so nobody can get another user's host flagged; another host
/// of the same user is unaffected. `nochg` and changing requests count alike.
#[derive(Debug)]
pub struct UpdateRateGuard {
    /// The rules; None turns the guard off.
    rules: Option<PaceRules>,
    /// State by (user id, host).
    states: Bounded<(i64, String), PaceState>,
}

impl UpdateRateGuard {
    /// A guard with `rules` (None: every request admitted).
    pub fn new(rules: Option<PaceRules>) -> Self {
        Self {
            rules,
            states: Bounded::new(),
        }
    }

    /// Counts an update request of `user_id` for `host`, now.
    pub fn admit(&self, user_id: i64, host: &str) -> Pace {
        self.admit_at(user_id, host, Instant::now(), SystemTime::now())
    }

    /// [`UpdateRateGuard::admit`] at `now` (`wall`: the same moment as the store writes it).
    fn admit_at(&self, user_id: i64, host: &str, now: Instant, wall: SystemTime) -> Pace {
        let Some(rules) = self.rules else {
            return Pace::Admitted;
        };
        let burst = f64::from(rules.burst.max(1));
        let (pace, started) = self.states.with(
            (user_id, host.to_string()),
            || PaceState {
                tokens: burst,
                at: now,
                over_since: None,
                last_over: None,
                episode: None,
            },
            |state| {
                let earned = now.saturating_duration_since(state.at).as_secs_f64()
                    / rules.refill.as_secs_f64();
                state.tokens = (state.tokens + earned).min(burst);
                state.at = now;
                let quiet_since_last = state
                    .last_over
                    .is_none_or(|last| now.saturating_duration_since(last) >= rules.cooldown);
                let above_rate = state.tokens < 1.0;
                if above_rate {
                    state.tokens = 0.0;
                    state.over_since.get_or_insert(now);
                    state.last_over = Some(now);
                } else {
                    state.tokens -= 1.0;
                    state.over_since = None;
                }
                if let Some(episode) = &mut state.episode {
                    if !above_rate && quiet_since_last {
                        state.episode = None;
                        return (Pace::Admitted, false);
                    }
                    episode.refused += 1;
                    episode.last_refused_at = wall;
                    if above_rate {
                        episode.clears_at = wall + rules.cooldown;
                    }
                    return (Pace::Refused(*episode), false);
                }
                match state.over_since {
                    Some(since) if now.saturating_duration_since(since) >= rules.flag_after => {
                        let episode = Episode {
                            started_at: wall,
                            last_refused_at: wall,
                            refused: 1,
                            clears_at: wall + rules.cooldown,
                        };
                        state.episode = Some(episode);
                        (Pace::Refused(episode), true)
                    }
                    _ => (Pace::Admitted, false),
                }
            },
        );
        if started {
            tracing::warn!(
                %host,
                user_id,
                above_rate_for_secs = rules.flag_after.as_secs(),
                cooldown_secs = rules.cooldown.as_secs(),
                "update requests for this host stay above one per {:?}: flagged, answering abuse until it is quiet for the cool-down",
                rules.refill
            );
        }
        pace
    }
}

/// Who authentication failures are counted against.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum FailureKey {
    /// A client address.
    Client(IpAddr),
    /// A login: a keyed hash of it (see [`FailureKey::login`]).
    Login([u8; 16]),
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
    /// How long a success is remembered; zero turns the exemption off.
    lifetime: Duration,
    /// When each (login, client address) pair last authenticated.
    entries: Bounded<(FailureKey, IpAddr), Instant>,
}

impl KnownClients {
    /// Remembers successes for `lifetime` (zero: never).
    pub fn new(lifetime: Duration) -> Self {
        Self {
            lifetime,
            entries: Bounded::new(),
        }
    }

    /// Notes that `client` authenticated as `login` just now.
    pub fn remember(&self, login: &FailureKey, client: IpAddr) {
        if self.lifetime.is_zero() {
            return;
        }
        let now = Instant::now();
        self.entries
            .with((login.clone(), client), || now, |seen| *seen = now);
    }

    /// Whether `client` authenticated as `login` within the lifetime.
    pub fn knows(&self, login: &FailureKey, client: IpAddr) -> bool {
        if self.lifetime.is_zero() {
            return false;
        }
        self.entries
            .peek(&(login.clone(), client), |seen| {
                seen.elapsed() < self.lifetime
            })
            .unwrap_or(false)
    }
}

/// A password check under way: counts toward its keys' limits until dropped.
#[derive(Debug)]
#[must_use = "the attempt counts only while it is held"]
pub struct Attempt {
    /// The throttle, to give the count back.
    throttle: Arc<AuthThrottle>,
    /// The keys it counts against.
    keys: Vec<FailureKey>,
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if self.throttle.limit == 0 {
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

/// Refuses cheaply after repeated authentication failures.
#[derive(Debug)]
pub struct AuthThrottle {
    /// Failures within a window that start a block; zero turns the throttle off.
    limit: u32,
    /// The counting window.
    window: Duration,
    /// How long a block lasts.
    cooldown: Duration,
    /// State by key.
    states: Bounded<FailureKey, FailureState>,
}

impl AuthThrottle {
    /// A throttle blocking after `limit` failures within `window`, for `cooldown`.
    pub fn new(limit: u32, window: Duration, cooldown: Duration) -> Self {
        Self {
            limit,
            window,
            cooldown,
            states: Bounded::new(),
        }
    }

    /// Starts a password check against `keys`, unless one of them is blocked, or would reach
    /// the limit if every check under way failed: then None, and the caller answers without
    /// checking. The returned [`Attempt`] holds its place until dropped; a failure is counted
    /// with [`AuthThrottle::record_failure`] as before.
    pub fn begin(self: &Arc<Self>, keys: &[FailureKey]) -> Option<Attempt> {
        let attempt = Attempt {
            throttle: Arc::clone(self),
            keys: keys.to_vec(),
        };
        if self.limit == 0 {
            return Some(attempt);
        }
        let now = Instant::now();
        let mut entries = self
            .states
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let full = keys.iter().any(|key| {
            entries.peek(key).is_some_and(|state| {
                state.blocked_until.is_some_and(|until| now < until)
                    || (now.duration_since(state.window_start) <= self.window
                        && state.count + state.in_flight >= self.limit)
                    || state.in_flight >= self.limit
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

    /// Whether `key` is blocked now.
    pub fn is_blocked(&self, key: &FailureKey) -> bool {
        if self.limit == 0 {
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
        if self.limit == 0 {
            return;
        }
        let now = Instant::now();
        let started = self.states.with(
            key.clone(),
            || FailureState::new(now),
            |state| {
                if state.blocked_until.is_some_and(|until| now < until) {
                    return false;
                }
                if state.blocked_until.is_some()
                    || now.duration_since(state.window_start) > self.window
                {
                    *state = FailureState {
                        in_flight: state.in_flight,
                        ..FailureState::new(now)
                    };
                }
                state.count += 1;
                if state.count >= self.limit {
                    state.blocked_until = Some(now + self.cooldown);
                    return true;
                }
                false
            },
        );
        if started {
            tracing::warn!(
                ?key,
                limit = self.limit,
                cooldown_secs = self.cooldown.as_secs(),
                "repeated authentication failures; refusing without checking passwords during the cool-down"
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

    /// The default rules: bursts of 5, one a second, flagged after 5 s, a minute's cool-down.
    fn default_rules() -> PaceRules {
        PaceRules {
            burst: 5,
            refill: Duration::from_secs(1),
            flag_after: Duration::from_secs(5),
            cooldown: Duration::from_secs(60),
        }
    }

    /// Requests at the given offsets from a start (ms); the verdicts' `abuse` flags.
    fn run(guard: &UpdateRateGuard, user: i64, host: &str, offsets_ms: &[u64]) -> Vec<bool> {
        let start = Instant::now();
        let wall = SystemTime::now();
        offsets_ms
            .iter()
            .map(|offset| {
                let at = Duration::from_millis(*offset);
                matches!(
                    guard.admit_at(user, host, start + at, wall + at),
                    Pace::Refused(_)
                )
            })
            .collect()
    }

    #[test]
    fn bursts_and_a_polling_pace_are_never_flagged() {
        let guard = UpdateRateGuard::new(Some(default_rules()));
        // A FRITZ!Box pair, the spec's three examples, ddclient twice and inadyn: at once.
        assert_eq!(run(&guard, 1, "h", &[0, 0, 0, 0, 0]), [false; 5]);
        // Bursts of 10 every 10 s for ten minutes.
        let bursts: Vec<u64> = (0..60).flat_map(|n| [n * 10_000; 10]).collect();
        assert!(run(&guard, 2, "h", &bursts).iter().all(|refused| !refused));
        // One a second for ten minutes.
        let steady: Vec<u64> = (0..600).map(|n| n * 1000).collect();
        assert!(run(&guard, 3, "h", &steady).iter().all(|refused| !refused));
        // Above the rate for less than the flag window, then a pause long enough to earn a
        // request back: not a sustained flood.
        let spurts: Vec<u64> = (0..20)
            .flat_map(|n| (0..40).map(move |k| n * 6_000 + k * 100))
            .collect();
        assert!(run(&guard, 4, "h", &spurts).iter().all(|refused| !refused));
    }

    #[test]
    fn a_sustained_flood_is_flagged_per_user_and_host_then_clears_when_quiet() {
        let guard = UpdateRateGuard::new(Some(default_rules()));
        let start = Instant::now();
        let wall = SystemTime::now();
        let at = |ms: u64| {
            (
                start + Duration::from_millis(ms),
                wall + Duration::from_millis(ms),
            )
        };
        // 20 a second for 6 s: admitted until above the rate for 5 s, then refused.
        let mut verdicts = Vec::new();
        for n in 0..120 {
            let (now, wall) = at(n * 50);
            verdicts.push(guard.admit_at(1, "h", now, wall));
        }
        let first_refused = verdicts
            .iter()
            .position(|pace| matches!(pace, Pace::Refused(_)))
            .expect("flagged");
        assert!((100..=110).contains(&first_refused), "{first_refused}");
        assert!(
            verdicts[first_refused..]
                .iter()
                .all(|pace| matches!(pace, Pace::Refused(_)))
        );
        let Pace::Refused(episode) = verdicts.last().unwrap() else {
            unreachable!()
        };
        assert_eq!(episode.refused, u64::try_from(120 - first_refused).unwrap());
        assert!(episode.started_at < episode.last_refused_at);
        assert!(episode.last_refused_at < episode.clears_at);

        // Other hosts of the user, and the same host of another user, are unaffected.
        let (now, wall) = at(6_000);
        assert_eq!(guard.admit_at(1, "other", now, wall), Pace::Admitted);
        assert_eq!(guard.admit_at(2, "h", now, wall), Pace::Admitted);
        // A request at a polling pace during the cool-down is refused, but does not extend it.
        let (now, wall) = at(36_000);
        let Pace::Refused(during) = guard.admit_at(1, "h", now, wall) else {
            panic!("still flagged")
        };
        assert_eq!(during.clears_at, episode.clears_at);
        // Quiet for the cool-down: admitted, and the bucket starts full again.
        for offset in [66_000, 66_000, 66_000] {
            let (now, wall) = at(offset);
            assert_eq!(guard.admit_at(1, "h", now, wall), Pace::Admitted);
        }
    }

    #[test]
    fn above_the_rate_while_flagged_extends_the_episode() {
        let guard = UpdateRateGuard::new(Some(default_rules()));
        let flood: Vec<u64> = (0..400).map(|n| n * 250).collect(); // 4 a second for 100 s
        let verdicts = run(&guard, 1, "h", &flood);
        assert!(verdicts[300..].iter().all(|refused| *refused));
        let off = UpdateRateGuard::new(None);
        assert!(run(&off, 1, "h", &[0; 100]).iter().all(|refused| !refused));
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
}

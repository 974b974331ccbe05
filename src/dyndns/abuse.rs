//! In-memory limits against clients that misbehave: update floods and password guessing.
//!
//! Clients retry forever (ddclient every 300 s even after `badauth` or `abuse`), so these never
//! ban for good: they make the misbehaviour cheap to answer for a cool-down, then forget. Both
//! are bounded LRU maps, so a flood of distinct keys cannot grow memory, and each logs once
//! when an episode starts, not once per request.
//!
//! * [`UpdateRateGuard`]: update requests for one host of one user closer together than the
//!   minimum interval put that host into cool-down (`abuse`, 429). Keyed by user as well as
//!   host, so nobody can get another user's host blocked. A router's dummy-then-real update
//!   (pfSense, OpenWRT: about 10 s apart) is well within the default of one per second.
//! * [`AuthThrottle`]: repeated authentication failures from one client address, or for one
//!   login, are answered `badauth` without running argon2 until a cool-down passes.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

    /// Runs `update` on the state of `key`, created with `default` if missing.
    fn with<T>(&self, key: K, default: impl FnOnce() -> V, update: impl FnOnce(&mut V) -> T) -> T {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        update(entries.get_or_insert_mut(key, default))
    }
}

/// When a host's updates come too fast.
#[derive(Debug)]
struct RateState {
    /// The last update request that was let through; None for a new entry.
    last: Option<Instant>,
    /// End of the current cool-down, if any.
    cooling_until: Option<Instant>,
}

/// Puts hosts whose updates come too fast into a cool-down.
#[derive(Debug)]
pub struct UpdateRateGuard {
    /// Requests for one host closer than this start a cool-down; zero turns the guard off.
    min_interval: Duration,
    /// How long a cool-down lasts.
    cooldown: Duration,
    /// State by (user id, host).
    states: Bounded<(i64, String), RateState>,
}

impl UpdateRateGuard {
    /// A guard with the given minimum interval and cool-down.
    pub fn new(min_interval: Duration, cooldown: Duration) -> Self {
        Self {
            min_interval,
            cooldown,
            states: Bounded::new(),
        }
    }

    /// Counts an update request of `user_id` for `host`; false means answer `abuse`.
    pub fn admit(&self, user_id: i64, host: &str) -> bool {
        if self.min_interval.is_zero() {
            return true;
        }
        let now = Instant::now();
        let (admitted, episode_started) = self.states.with(
            (user_id, host.to_string()),
            || RateState {
                last: None,
                cooling_until: None,
            },
            |state| {
                let Some(last) = state.last else {
                    state.last = Some(now);
                    return (true, false);
                };
                if let Some(until) = state.cooling_until {
                    if now < until {
                        return (false, false);
                    }
                    state.cooling_until = None;
                }
                if now.duration_since(last) < self.min_interval {
                    state.cooling_until = Some(now + self.cooldown);
                    return (false, true);
                }
                state.last = Some(now);
                (true, false)
            },
        );
        if episode_started {
            tracing::warn!(
                %host,
                user_id,
                cooldown_secs = self.cooldown.as_secs(),
                "updates for this host come faster than one per {:?}; answering abuse during the cool-down",
                self.min_interval
            );
        }
        admitted
    }
}

/// Who authentication failures are counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FailureKey {
    /// A client address.
    Client(IpAddr),
    /// A login (username or email, lower case).
    Login(String),
}

/// Failures of one key.
#[derive(Debug)]
struct FailureState {
    /// Failures in the current window.
    count: u32,
    /// Start of the current window.
    window_start: Instant,
    /// End of the current block, if any.
    blocked_until: Option<Instant>,
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

    /// Whether `key` is blocked now.
    pub fn is_blocked(&self, key: &FailureKey) -> bool {
        if self.limit == 0 {
            return false;
        }
        let now = Instant::now();
        let entries = self
            .states
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        entries
            .peek(key)
            .and_then(|state| state.blocked_until)
            .is_some_and(|until| now < until)
    }

    /// Counts a failure against `key`, starting a block when the limit is reached.
    pub fn record_failure(&self, key: FailureKey) {
        if self.limit == 0 {
            return;
        }
        let now = Instant::now();
        let started = self.states.with(
            key.clone(),
            || FailureState {
                count: 0,
                window_start: now,
                blocked_until: None,
            },
            |state| {
                if state.blocked_until.is_some_and(|until| now < until) {
                    return false;
                }
                if state.blocked_until.is_some()
                    || now.duration_since(state.window_start) > self.window
                {
                    *state = FailureState {
                        count: 0,
                        window_start: now,
                        blocked_until: None,
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
    fn a_second_update_within_the_interval_starts_a_cool_down() {
        let guard = UpdateRateGuard::new(Duration::from_secs(60), Duration::from_secs(60));
        assert!(guard.admit(1, "home.dyn.example"));
        assert!(!guard.admit(1, "home.dyn.example"));
        assert!(!guard.admit(1, "home.dyn.example"), "still cooling down");
        assert!(guard.admit(1, "other.dyn.example"), "per host");
        assert!(
            guard.admit(2, "home.dyn.example"),
            "per user: nobody blocks another's host"
        );
    }

    #[test]
    fn updates_at_the_allowed_pace_pass_and_a_cool_down_ends() {
        let guard = UpdateRateGuard::new(Duration::from_millis(20), Duration::from_millis(30));
        assert!(guard.admit(1, "h"));
        std::thread::sleep(Duration::from_millis(25));
        assert!(guard.admit(1, "h"));
        assert!(!guard.admit(1, "h"));
        std::thread::sleep(Duration::from_millis(35));
        assert!(guard.admit(1, "h"), "the cool-down is over");
        let off = UpdateRateGuard::new(Duration::ZERO, Duration::from_secs(60));
        assert!(off.admit(1, "h") && off.admit(1, "h"));
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
        assert!(!throttle.is_blocked(&FailureKey::Login("alice".into())));
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

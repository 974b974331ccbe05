//! Update floods: the pace of update requests per user and host, shared by the update
//! endpoints and the ACME ones (a script flooding either is held to the same pace).
//!
//! Clients retry forever (ddclient every 300 s even after `badauth` or `abuse`), so this never
//! bans for good: it makes the misbehaviour cheap to answer for a cool-down, then forgets
//! (password guessing has the same shape, in `auth::throttle`). The map is bounded
//! (`bounded.rs`), so a flood of distinct keys cannot grow memory, and an episode logs once
//! when it starts, not once per request.
//!
//! [`UpdateRateGuard`]: a host whose update requests stay above the allowed rate for a while
//! (not a burst: a sustained flood) is flagged and answered `abuse` (429) until it has been
//! quiet for a cool-down. Keyed by user as well as host, so nobody can get another user's host
//! flagged.

use std::time::{Duration, Instant, SystemTime};

use crate::bounded::Bounded;
use crate::model::audit::Episode;

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

/// The pace rules of `limits`; None when abuse detection is off.
pub fn pace_rules(limits: &crate::config::Limits) -> Option<PaceRules> {
    limits.abuse_detection.then_some(PaceRules {
        burst: limits.abuse_burst,
        refill: limits.abuse_refill,
        flag_after: limits.abuse_flag_after,
        cooldown: limits.abuse_cooldown,
    })
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
    /// The rules; None turns the guard off. Replaced by a reload (SIGHUP); the states stay.
    rules: arc_swap::ArcSwapOption<PaceRules>,
    /// State by (user id, host).
    states: Bounded<(i64, String), PaceState>,
}

impl UpdateRateGuard {
    /// A guard with `rules` (None: every request admitted).
    pub fn new(rules: Option<PaceRules>) -> Self {
        Self {
            rules: arc_swap::ArcSwapOption::from(rules.map(std::sync::Arc::new)),
            states: Bounded::new(),
        }
    }

    /// Applies `rules` from now on (None: every request admitted). The states stay: a host
    /// flagged stays flagged until it has been quiet for the new cool-down.
    pub fn set_rules(&self, rules: Option<PaceRules>) {
        self.rules.store(rules.map(std::sync::Arc::new));
    }

    /// Counts an update request of `user_id` for `host`, now.
    pub fn admit(&self, user_id: i64, host: &str) -> Pace {
        self.admit_at(user_id, host, Instant::now(), SystemTime::now())
    }

    /// [`UpdateRateGuard::admit`] at `now` (`wall`: the same moment as the store writes it).
    fn admit_at(&self, user_id: i64, host: &str, now: Instant, wall: SystemTime) -> Pace {
        let Some(rules) = self.rules.load().as_deref().copied() else {
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
            crate::metrics::metrics()
                .limiter_episodes
                .get_or_create(&crate::metrics::NameLabels { name: "abuse" })
                .inc();
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

#[cfg(test)]
mod test {
    use super::*;

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
}
